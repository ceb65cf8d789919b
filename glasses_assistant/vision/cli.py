# SPDX-License-Identifier: GPL-3.0-or-later
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


def add_vision_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``vision`` command and its actions to the main parser's subparsers."""
    vision = subparsers.add_parser("vision", help="vision: detect objects | read text | bench, on image files")
    vsub = vision.add_subparsers(dest="vision_command", metavar="ACTION", required=True)
    detect = vsub.add_parser("detect", help="objects in an image (COCO detector)")
    detect.add_argument("image", type=Path)
    read = vsub.add_parser("read", help="text in an image (rapidocr)")
    read.add_argument("image", type=Path)
    bench = vsub.add_parser("bench", help="per-frame detection and OCR time at 640 px (median of N); --quality: "
                                          "precision and recall of the spoken objects on labelled photos")
    bench.add_argument("images", nargs="*", type=Path, help="photos (default: darknet's samples)")
    bench.add_argument("--runs", type=int, default=None, help="timed runs per photo (default 10; 3 with --quality)")
    bench.add_argument("--side", type=int, default=640, help="longest side of the frames (default 640)")
    bench.add_argument("--quality", action="store_true",
                       help="score the detectors on the labelled photo set (vision/photoset.toml), side by side")
    bench.add_argument("--models", help="with --quality: comma-separated catalogue ids or ONNX paths "
                                        "(default: every vision model of the catalogue)")
    bench.add_argument("--calibrate", action="store_true",
                       help="with --quality: also sweep each detector's maybe/sure bands on the photos")
    bench.add_argument("--phrasing", metavar="MODELS",
                       help="instead: how these chat GGUFs (comma-separated catalogue ids or paths) phrase what the "
                       "detector saw in each photo: sentences used, objects invented, time")
    for p in (detect, bench):
        p.add_argument("--model", help="catalogue id or path to a YOLO-style ONNX (default: the catalogue's)")
        p.add_argument("--threshold", type=float, default=None,
                       help="score below which an object is left out (default: the detector's calibrated one)")
        p.add_argument("--sure", type=float, default=None,
                       help="score from which an object is said as fact (default: the detector's calibrated one)")
    for p in (detect, read, bench):
        p.add_argument("--threads", type=int, default=2, help="onnxruntime threads (default 2)")
        p.add_argument("--models-dir", help="model cache folder")
        p.add_argument("--json", action="store_true", help="print JSON")
    return vision


def _load_image(path: Path):
    from .frames import FrameProblem, load_image

    image = load_image(path)
    if isinstance(image, FrameProblem):
        raise AssistantError(f"{path}: {image.reason}")
    return image


def _detector(args: argparse.Namespace, model: str | None = None):
    from ..catalog import load_catalogue
    from .detector import Detector

    for flag, value in (("--threshold", args.threshold), ("--sure", args.sure)):
        if value is not None and not 0.0 < value < 1.0:
            raise AssistantError(f"{flag} must be between 0 and 1 (got {value})")
    cat = load_catalogue(cache_dir=Path(args.models_dir) if args.models_dir else None)
    return Detector.from_catalogue(cat, model or args.model, threads=args.threads, score_threshold=args.threshold,
                                   sure_threshold=args.sure)


def _phrasing(args: argparse.Namespace, images: list) -> int:
    """`vision bench --phrasing MODELS`: each chat model phrasing the detector's facts."""
    from ..catalog import load_catalogue
    from ..config import DEFAULT_SYSTEM_PROMPT, LlmConfig
    from ..engines.llm import LlamaEngine
    from .bench import bench_phrasing

    cat = load_catalogue(cache_dir=Path(args.models_dir) if args.models_dir else None)
    detector = _detector(args)
    result: dict = {"models": {}}
    for model in (m.strip() for m in args.phrasing.split(",") if m.strip()):
        path, model_id = cat.resolve("llm", model)
        llm = LlamaEngine(path, LlmConfig(threads=args.threads), name=model_id)
        one = bench_phrasing(detector, {model_id: llm}, DEFAULT_SYSTEM_PROMPT, images,
                             progress=(lambda m: None) if args.json else print)
        result.update({k: v for k, v in one.items() if k != "models"})
        result["models"].update(one["models"])
        del llm  # one model in memory at a time
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"\n{result.get('scenes', 0)} photos x {len(result.get('questions', []))} questions, detector "
          f"{detector.model_id}")
    print(f"  {'model':<28}{'used':>7}{'used, honest':>14}{'invents':>9}{'reads back':>12}{'median ms':>11}")
    for m, r in result["models"].items():
        print(f"  {m[:27]:<28}{r['used'] * 100:>6.0f}%{r['used_and_honest'] * 100:>13.0f}%{r['invented'] * 100:>8.0f}%"
              f"{r['reads_back'] * 100:>11.0f}%{r['median_ms']:>11.0f}")
    print("  used: the sentence names a detected object, so it is said instead of the plain description; "
          "invents: it names an object the detector did not find; reads back: it repeats the facts as written "
          "(\"a dog (left)\") instead of saying them")
    return 0


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
                print(f"{d.label:<14} {d.score:.2f} {'sure ' if d.sure else 'maybe'}  "
                      f"box {', '.join(f'{v:.3f}' for v in d.box_xyxy)}")
            print(f"facts:  {describe_scene(found)}\nspoken: {spoken_scene(found)}\n"
                  f"({det.model_id}, {ms:.0f} ms; maybe from {det.confidence.maybe:.2f}, sure from "
                  f"{det.confidence.sure:.2f})")
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
    if args.quality:
        return _bench_quality(args)
    from .bench import bench_vision, sample_images
    from .ocr import TextReader

    args.runs = 10 if args.runs is None else args.runs
    if args.runs < 1:
        raise AssistantError(f"--runs must be at least 1 (got {args.runs})")
    images = [_load_image(p) for p in args.images] if args.images else sample_images()
    if not images:
        raise AssistantError("no photos to benchmark: name some, or apt-get install darknet for its samples")
    if args.phrasing:
        return _phrasing(args, images)
    result = bench_vision(_detector(args), TextReader(threads=args.threads), images, runs=args.runs, side=args.side,
                          threads=args.threads)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['frames']} photos at {result['side_px']} px, {result['runs_per_frame']} runs each")
        for k in ("detect", "ocr"):
            r = result[k]
            cpu = f"  cpu {r['cpu_median_ms']:.0f} ms" if "cpu_median_ms" in r else ""
            print(f"  {k:<6} median {r['median_ms']:.0f} ms  p90 {r['p90_ms']:.0f} ms  min {r['min_ms']:.0f} ms{cpu}"
                  + (f"  ({r['model']})" if "model" in r else ""))
    return 0


def _bench_quality(args: argparse.Namespace) -> int:
    """``vision bench --quality``: every detector over the labelled photos, side by side in one run."""
    import os

    from ..catalog import load_catalogue
    from . import quality

    runs = 3 if args.runs is None else args.runs
    if runs < 1:
        raise AssistantError(f"--runs must be at least 1 (got {runs})")
    if args.images:
        raise AssistantError("--quality scores the labelled photo set; it takes no photos of yours")
    cat = load_catalogue(cache_dir=Path(args.models_dir) if args.models_dir else None)
    say = (lambda _m: None) if args.json else (lambda m: print(m, flush=True))
    if args.models:
        names = [m.strip() for m in args.models.split(",") if m.strip()]
    else:
        # An optional detector (YOLOv8s) is not fetched by a plain set-up: leave it out with a
        # line rather than fail the whole run; a named one that is missing still fails.
        vision = [m for m in cat.models.values() if m.role == "vision"]
        unfetched = [m.id for m in vision if m.optional and cat.status(m) == "missing"]
        names = [m.id for m in vision if m.id not in unfetched]
        for mid in unfetched:
            say(f"leaving out {mid}: not fetched (`glasses-assistant models fetch {mid}` to include it)")
    say(f"loading {', '.join(names)} ...")
    detectors = [_detector(args, name) for name in names]  # first: a missing model fails before the photos load
    photos = quality.read_photos(quality.load_photoset())
    load = os.getloadavg()[0]
    results = quality.run_detectors(detectors, photos, runs=runs, side=args.side, progress=say)
    load = max(load, os.getloadavg()[0])
    chosen = quality.choose_default(results)
    default = cat.default_for("vision").id
    report: dict = {"photos": len(photos), "with_objects": sum(1 for p, _ in photos if p.expected),
                    "expected_labels": sum(len(p.expected) for p, _ in photos), "side_px": args.side,
                    "runs_per_photo": runs, "threads": args.threads, "load_average": round(load, 2),
                    "target_ms": quality.TARGET_S * 1000, "detectors": [r.summary() for r in results],
                    "best_within_target": chosen, "catalogue_default": default}
    if args.calibrate:
        calibrated = [quality.calibrate(r) for r in results]
        report["calibration"] = [info for _bands, info in calibrated]
        rescored = [r.with_bands(bands) for r, (bands, _info) in zip(results, calibrated, strict=True)]
        report["at_calibrated_bands"] = [r.summary() for r in rescored]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"\n{report['photos']} labelled photos ({report['with_objects']} with objects a person would name, "
          f"{report['expected_labels']} labels), frames of {args.side} px, {runs} timed runs each, "
          f"{args.threads} threads, load average {load:.1f}")
    print("facts: objects said as fact; +guesses: counting the \"there might also be\" ones as said\n")
    for line in quality.table(results):
        print("  " + line)
    for r in results:
        wrong = r.wrong_facts()
        if wrong:
            print(f"\n  {r.model} said as fact, wrongly: " + "; ".join(f"{lb} ({pid})" for pid, lb in wrong))
    if args.calibrate:
        print("\ncalibrated bands (sure: facts right >= 90 %; maybe: guesses right >= 50 %):")
        for c in report["calibration"]:
            print(f"  {c['model']:<16} maybe {c['maybe']:.2f}  sure {c['sure']:.2f}   "
                  f"({c['fact_labels']} fact labels, precision {c['fact_precision']:.2f}; "
                  f"{c['guess_labels']} guess labels, precision {c['guess_precision']:.2f})")
        print("\nthe same run scored at the calibrated bands (what vision/calibration.py should record):")
        for line in quality.table(rescored):
            print("  " + line)
    print(f"\nthe default by the rule (the fastest within {quality.TARGET_S * 1000:.0f} ms a frame, by its fastest "
          f"frame, whose facts F1 is within {quality.F1_TIE} of the best): {chosen or 'none'}"
          f"   (the catalogue's default: {default})")
    return 0
