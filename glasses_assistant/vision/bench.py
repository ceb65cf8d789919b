"""Per-frame detection and OCR time at 640 px on this machine (median of N runs)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from .frames import fit

DARKNET = Path("/usr/share/darknet/data")


def _timed(fn, image: np.ndarray, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    fn(image)  # warm: allocations and the first-run graph optimisation are not per-frame cost
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(image)
        out.append(time.perf_counter() - t)
    return out


def bench_vision(detector: Any, reader: Any, images: list[np.ndarray], *, runs: int = 10, side: int = 640) -> dict:
    """Median / p90 milliseconds per frame for ``detector.detect`` and ``reader.read`` on frames scaled to ``side``."""
    frames = [fit(img, side) for img in images]
    result: dict[str, Any] = {"side_px": side, "frames": len(frames), "runs_per_frame": runs}
    for name, engine, method in (("detect", detector, "detect"), ("ocr", reader, "read")):
        if engine is None:
            continue
        times = [t for f in frames for t in _timed(getattr(engine, method), f, runs)]
        result[name] = {
            "median_ms": round(statistics.median(times) * 1000, 1),
            "p90_ms": round(float(np.percentile(times, 90)) * 1000, 1),
            "min_ms": round(min(times) * 1000, 1),
        }
        if name == "detect":
            result[name]["model"] = getattr(engine, "model_id", "?")
    return result


def sample_images() -> list[np.ndarray]:
    """Real photos for the benchmark: darknet's samples (apt-get install darknet)."""
    import cv2

    images = [cv2.imread(str(p)) for p in sorted(DARKNET.glob("*.jpg"))]
    return [im for im in images if im is not None]
