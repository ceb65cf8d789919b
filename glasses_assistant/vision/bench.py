# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-frame detection and OCR time at 640 px on this machine (median of N runs)."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from .frames import fit

DARKNET = Path("/usr/share/darknet/data")


def _timed(fn, image: np.ndarray, runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``runs`` calls (CPU: this thread's time, see :func:`bench_vision`)."""
    fn(image)  # warm: allocations and the first-run graph optimisation are not per-frame cost
    wall, cpu = [], []
    for _ in range(runs):
        c, t = time.thread_time(), time.perf_counter()
        fn(image)
        wall.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    return wall, cpu


def bench_vision(detector: Any, reader: Any, images: list[np.ndarray], *, runs: int = 10, side: int = 640,
                 threads: int = 2) -> dict:
    """Median / p90 milliseconds per frame for ``detector.detect`` and ``reader.read`` on frames scaled to ``side``.

    With one onnxruntime thread the whole inference runs on the calling thread, so its CPU
    time (``cpu_median_ms``) is what a frame costs one core, and other load on a shared
    machine hardly changes it, while it stretches the wall time. With more threads part of
    the work is on onnxruntime's pool, which this thread's CPU time does not see: no CPU
    figure then.
    """
    frames = [fit(img, side) for img in images]
    result: dict[str, Any] = {"side_px": side, "frames": len(frames), "runs_per_frame": runs}
    for name, engine, method in (("detect", detector, "detect"), ("ocr", reader, "read")):
        if engine is None:
            continue
        wall: list[float] = []
        cpu: list[float] = []
        for f in frames:
            w, c = _timed(getattr(engine, method), f, runs)
            wall += w
            cpu += c
        result[name] = {
            "median_ms": round(statistics.median(wall) * 1000, 1),
            "p90_ms": round(float(np.percentile(wall, 90)) * 1000, 1),
            "min_ms": round(min(wall) * 1000, 1),
        }
        if threads == 1:
            result[name]["cpu_median_ms"] = round(statistics.median(cpu) * 1000, 1)
        if name == "detect":
            result[name]["model"] = getattr(engine, "model_id", "?")
    return result


def sample_images() -> list[np.ndarray]:
    """Real photos for the benchmark: darknet's samples (apt-get install darknet)."""
    import cv2

    images = [cv2.imread(str(p)) for p in sorted(DARKNET.glob("*.jpg"))]
    return [im for im in images if im is not None]


PHRASING_QUESTIONS = ("What am I looking at?", "What do you see?")


def bench_phrasing(detector: Any, llms: dict[str, Any], system_prompt: str, images: list[np.ndarray],
                   progress: Any = lambda _m: None) -> dict[str, Any]:
    """How each chat model phrases what the detector saw: how often its sentence is used (it names a
    detected object, see :func:`.scene.mentions_any`), how often it names an object that is not
    there, and how long it takes; the same frames and questions for every model."""
    from .scene import describe_prompt, describe_scene, invented_objects, mentions_any, spoken_scene

    scenes = []
    for img in images:
        frame = fit(img, 640)
        dets = detector.detect(frame)
        if dets:
            h, w = frame.shape[:2]
            scenes.append((describe_scene(dets, w, h), spoken_scene(dets, w, h), sorted({d.label for d in dets})))
    result: dict[str, Any] = {"scenes": len(scenes), "questions": list(PHRASING_QUESTIONS), "models": {}}
    for model, llm in llms.items():
        rows = []
        for facts, plain, labels in scenes:
            for question in PHRASING_QUESTIONS:
                messages = [{"role": "system", "content": system_prompt},
                            {"role": "user", "content": describe_prompt(facts, question)}]
                t = time.perf_counter()
                reply = llm.stream(messages, lambda _p: None)
                ms = (time.perf_counter() - t) * 1000
                invented = invented_objects(reply, labels)
                rows.append({"facts": facts, "question": question, "reply": reply, "plain": plain, "ms": round(ms),
                             "used": mentions_any(reply, labels), "invented": invented,
                             # the facts read back as written ("a dog (left)"), not put into words
                             "reads_back": bool(re.search(r"\(|\bcamera\b.*\bsees\b", reply, re.IGNORECASE))})
                progress(f"  {model}: {'used ' if rows[-1]['used'] else 'plain'} {reply[:80]!r}"
                         + (f" (names {', '.join(invented)}: not seen)" if invented else ""))
        n = len(rows) or 1
        result["models"][model] = {
            "used": round(sum(r["used"] for r in rows) / n, 3),
            "used_and_honest": round(sum(r["used"] and not r["invented"] for r in rows) / n, 3),
            "invented": round(sum(bool(r["invented"]) for r in rows) / n, 3),
            "reads_back": round(sum(r["reads_back"] for r in rows) / n, 3),
            "median_ms": round(statistics.median(r["ms"] for r in rows), 1) if rows else None,
            "rows": rows,
        }
    return result
