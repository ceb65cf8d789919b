"""`glasses-assistant vision detect IMAGE | read IMAGE | bench`: the vision engines from the shell.

Wire into glasses_assistant/cli.py with ``add_vision_parser(sub)`` in build_parser()
and ``"vision": cmd_vision`` in COMMANDS.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..errors import AssistantError


def add_vision_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``vision`` command and its actions to the main parser's subparsers."""
    vision = subparsers.add_parser("vision", help="vision: detect objects | read text | bench, on image files")
    vsub = vision.add_subparsers(dest="vision_command", metavar="ACTION", required=True)
    detect = vsub.add_parser("detect", help="objects in an image (COCO detector)")
    detect.add_argument("image", type=Path)
    read = vsub.add_parser("read", help="text in an image (rapidocr)")
    read.add_argument("image", type=Path)
    bench = vsub.add_parser("bench", help="per-frame detection and OCR time at 640 px (median of N)")
    bench.add_argument("images", nargs="*", type=Path, help="photos (default: darknet's samples)")
    bench.add_argument("--runs", type=int, default=10, help="runs per photo (default 10)")
    bench.add_argument("--side", type=int, default=640, help="longest side of the frames (default 640)")
    for p in (detect, bench):
        p.add_argument("--model", help="catalogue id or path to a YOLO-style ONNX (default: the catalogue's)")
        p.add_argument("--threshold", type=float, default=0.3, help="minimum score (default 0.3)")
    for p in (detect, read, bench):
        p.add_argument("--threads", type=int, default=2, help="onnxruntime threads (default 2)")
        p.add_argument("--models-dir", help="model cache folder")
        p.add_argument("--json", action="store_true", help="print JSON")
    return vision


def _load_image(path: Path):  # type: ignore[no-untyped-def]
    from .frames import FrameProblem, load_image

    image = load_image(path)
    if isinstance(image, FrameProblem):
        raise AssistantError(f"{path}: {image.reason}")
    return image


def _detector(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ..catalog import load_catalogue
    from .detector import Detector

    cat = load_catalogue(cache_dir=Path(args.models_dir) if args.models_dir else None)
    return Detector.from_catalogue(cat, args.model, threads=args.threads, score_threshold=args.threshold)


def cmd_vision(args: argparse.Namespace) -> int:
    """Run ``glasses-assistant vision ACTION``; errors are AssistantError (one line)."""
    if args.vision_command == "detect":
        from .scene import describe_scene, spoken_scene

        image = _load_image(args.image)
        det = _detector(args)
        t = time.perf_counter()
        found = det.detect(image)
        ms = (time.perf_counter() - t) * 1000
        if args.json:
            print(json.dumps({"model": det.model_id, "ms": round(ms, 1),
                              "detections": [d.__dict__ for d in found]}, indent=2))
        else:
            for d in found:
                print(f"{d.label:<14} {d.score:.2f}  box {', '.join(f'{v:.3f}' for v in d.box_xyxy)}")
            print(f"facts:  {describe_scene(found)}\nspoken: {spoken_scene(found)}\n({det.model_id}, {ms:.0f} ms)")
        return 0
    if args.vision_command == "read":
        from .ocr import TextReader, spoken_text

        image = _load_image(args.image)
        reader = TextReader(threads=args.threads)
        t = time.perf_counter()
        lines = reader.read(image)
        ms = (time.perf_counter() - t) * 1000
        if args.json:
            print(json.dumps({"ms": round(ms, 1), "lines": [ln.__dict__ for ln in lines]}, indent=2))
        else:
            for ln in lines:
                print(f"{ln.score:.2f}  {ln.text}")
            print(f"spoken: {spoken_text(lines)}\n({ms:.0f} ms, first call)")
        return 0
    from .bench import bench_vision, sample_images
    from .ocr import TextReader

    if args.runs < 1:
        raise AssistantError(f"--runs must be at least 1 (got {args.runs})")
    images = [_load_image(p) for p in args.images] if args.images else sample_images()
    if not images:
        raise AssistantError("no photos to benchmark: name some, or apt-get install darknet for its samples")
    result = bench_vision(_detector(args), TextReader(threads=args.threads), images, runs=args.runs, side=args.side)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['frames']} photos at {result['side_px']} px, {result['runs_per_frame']} runs each")
        for k in ("detect", "ocr"):
            r = result[k]
            print(f"  {k:<6} median {r['median_ms']:.0f} ms  p90 {r['p90_ms']:.0f} ms  min {r['min_ms']:.0f} ms"
                  + (f"  ({r['model']})" if "model" in r else ""))
    return 0
