# SPDX-License-Identifier: GPL-3.0-or-later
"""Loopback benchmark: 720p JPEG at 30 fps + 16 kHz mic audio through the real client.

``python -m firmware_bridge.bench [--seconds 5] [--fps 30] [--json] [--in-process]``

The simulator runs as a separate process by default (``--in-process`` runs it
on the same event loop).  Latency is "added by the bridge": from the device
timestamp in the frame header at send time (camera) or the end of the audio
chunk (mic) to the moment the client hands the item to the assistant, both
on CLOCK_MONOTONIC.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .aio import cancel_and_wait
from .checksum import crc_backend
from .client import BridgeClient

__all__ = ["BenchResult", "make_test_jpeg", "run_bench", "run_bench_sync", "main"]


@dataclass
class BenchResult:
    """Benchmark figures.  Latencies in milliseconds, throughput in MB/s (10^6 B)."""

    seconds: float
    target_fps: float
    frames: int
    fps: float
    jpeg_bytes: int
    camera_mb_s: float
    total_mb_s: float
    camera_latency_p50_ms: float
    camera_latency_p99_ms: float
    audio_chunks: int
    audio_latency_p50_ms: float
    audio_latency_p99_ms: float
    audio_gaps_filled: int
    crc_backend: str
    in_process: bool
    stats: dict[str, int] = field(default_factory=dict)

    def table(self) -> str:
        """Human-readable summary."""
        rows = [
            ("duration", f"{self.seconds:.1f} s"),
            (
                "camera",
                f"{self.fps:.1f} fps of {self.target_fps:g} target ({self.frames} frames, "
                f"{self.jpeg_bytes / 1024:.0f} KiB JPEG 720p)",
            ),
            ("throughput", f"{self.total_mb_s:.2f} MB/s total, {self.camera_mb_s:.2f} MB/s camera"),
            ("camera latency", f"p50 {self.camera_latency_p50_ms:.2f} ms, p99 {self.camera_latency_p99_ms:.2f} ms"),
            ("audio", f"{self.audio_chunks} chunks, {self.audio_gaps_filled} gaps filled"),
            ("audio latency", f"p50 {self.audio_latency_p50_ms:.2f} ms, p99 {self.audio_latency_p99_ms:.2f} ms"),
            ("CRC32C backend", self.crc_backend),
            ("simulator", "in-process" if self.in_process else "subprocess"),
            (
                "dropped/repaired",
                ", ".join(f"{k}={v}" for k, v in self.stats.items() if v and _interesting(k)) or "none",
            ),
        ]
        w = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def _interesting(key: str) -> bool:
    return any(s in key for s in ("error", "drop", "superseded", "stale", "gaps", "resync", "skipped", "lost"))


def make_test_jpeg(width: int = 1280, height: int = 720, quality: int = 90, seed: int = 1) -> bytes:
    """A photo-like JPEG (smooth gradients, shapes, texture, sensor noise), ~100-200 KB at 720p."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    img[..., 0] = 90 + 80 * np.sin(xx / 170.0) * np.cos(yy / 230.0)  # sky-ish gradient
    img[..., 1] = 110 + 60 * np.cos((xx + yy) / 260.0)
    img[..., 2] = 120 + 70 * np.sin(yy / 120.0)
    for _ in range(40):  # "objects"
        c = tuple(float(v) for v in rng.uniform(20, 235, 3))
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), int(rng.uniform(10, 120)), c, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(img, (x, y), (x + int(rng.uniform(20, 250)), y + int(rng.uniform(20, 200))), c, -1)
    img = np.asarray(cv2.GaussianBlur(img, (0, 0), 3.0), dtype=np.float32)  # already float32: no copy
    texture = cv2.GaussianBlur(rng.normal(0, 18, (height, width)).astype(np.float32), (0, 0), 1.2)
    img += texture[..., None]
    img += rng.normal(0, 3.5, img.shape).astype(np.float32)  # sensor noise
    ok, buf = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf)


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


async def _start_subprocess_sim(jpeg_path: str, fps: float) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "firmware_bridge.sim",
        "--listen",
        "tcp://127.0.0.1:0",
        "--camera",
        jpeg_path,
        "--stream-camera",
        str(fps),
        "--no-stdin",
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    text = line.decode().strip()
    if not text.startswith("LISTENING "):
        proc.kill()
        raise RuntimeError(f"simulator did not start: {text!r}")
    return proc, text.split(" ", 1)[1]


async def run_bench(seconds: float = 5.0, fps: float = 30.0, *, in_process: bool = False) -> BenchResult:
    """Run the benchmark and return a :class:`BenchResult`."""
    from .sim import GlassesSim, SimConfig

    jpeg = make_test_jpeg()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.jpg")
        await asyncio.to_thread(Path(path).write_bytes, jpeg)
        sim: GlassesSim | None = None
        proc: asyncio.subprocess.Process | None = None
        if in_process:
            sim = GlassesSim(SimConfig(listen="tcp://127.0.0.1:0", camera=[path], stream_camera_fps=fps))
            url = await sim.start()
        else:
            proc, url = await _start_subprocess_sim(path, fps)
        try:
            client = BridgeClient(url, connect_timeout=10.0)
            await client.start()
            cam_lat: list[float] = []
            aud_lat: list[float] = []
            counts = {"frames": 0, "cam_bytes": 0, "audio": 0, "audio_bytes": 0}

            async def camera() -> None:
                async for f in client.camera_frames():
                    cam_lat.append((f.received_us - f.sent_time_us) / 1000.0)
                    counts["frames"] += 1
                    counts["cam_bytes"] += len(f.jpeg)

            async def audio() -> None:
                async for c in client.microphone():
                    if not c.filled:
                        end_us = c.device_time_us + int(c.duration_s * 1e6)
                        aud_lat.append((c.received_us - end_us) / 1000.0)
                    counts["audio"] += 1
                    counts["audio_bytes"] += len(c.pcm)

            tasks = [asyncio.create_task(camera()), asyncio.create_task(audio())]
            await client.set_capture_led(True)
            await asyncio.sleep(0.5)  # warm-up, not measured
            cam_lat.clear()
            aud_lat.clear()
            counts.update(frames=0, cam_bytes=0, audio=0, audio_bytes=0)
            gaps0 = client.stats.jitter.gaps_filled
            t0 = time.monotonic()
            await asyncio.sleep(seconds)
            elapsed = time.monotonic() - t0
            snapshot = dict(counts)
            lat_c, lat_a = list(cam_lat), list(aud_lat)
            gaps = client.stats.jitter.gaps_filled - gaps0
            await client.close()
            await cancel_and_wait(*tasks)
        finally:
            if sim is not None:
                await sim.stop()
            if proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), 5)
    total = snapshot["cam_bytes"] + snapshot["audio_bytes"]
    return BenchResult(
        seconds=elapsed,
        target_fps=fps,
        frames=snapshot["frames"],
        fps=snapshot["frames"] / elapsed,
        jpeg_bytes=len(jpeg),
        camera_mb_s=snapshot["cam_bytes"] / elapsed / 1e6,
        total_mb_s=total / elapsed / 1e6,
        camera_latency_p50_ms=_pct(lat_c, 50),
        camera_latency_p99_ms=_pct(lat_c, 99),
        audio_chunks=snapshot["audio"],
        audio_latency_p50_ms=_pct(lat_a, 50),
        audio_latency_p99_ms=_pct(lat_a, 99),
        audio_gaps_filled=gaps,
        crc_backend=crc_backend(),
        in_process=in_process,
        stats=client.stats.as_dict(),
    )


def run_bench_sync(seconds: float = 5.0, fps: float = 30.0, *, in_process: bool = False) -> BenchResult:
    """Blocking wrapper around :func:`run_bench`."""
    return asyncio.run(run_bench(seconds, fps, in_process=in_process))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m firmware_bridge.bench", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--in-process", action="store_true", help="run the simulator on the same event loop")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = p.parse_args(argv)
    res = run_bench_sync(a.seconds, a.fps, in_process=a.in_process)
    print(json.dumps(asdict(res), indent=2) if a.json else res.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
