# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared helpers for the firmware_bridge tests.

Async tests use plain ``asyncio.run`` through :func:`run` so they need no
pytest plugin or global asyncio configuration.
"""

from __future__ import annotations

import asyncio
import struct
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: long-running decoder fuzz run (runs once in the default suite)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run ``coro`` with a hard time bound (a hang fails the test, it never blocks the suite)."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def write_wav(path: Path, samples: list[int] | bytes, rate: int = 16000, channels: int = 1) -> Path:
    """Write a PCM16 WAV (samples as ints or raw LE bytes)."""
    data = samples if isinstance(samples, bytes) else struct.pack(f"<{len(samples)}h", *samples)
    hdr = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    hdr += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    hdr += b"data" + struct.pack("<I", len(data))
    path.write_bytes(hdr + data)
    return path


async def take(it: AsyncIterator[T], n: int, timeout: float = 10.0) -> list[T]:
    """First ``n`` items of an async iterator, within ``timeout``."""
    out: list[T] = []

    async def go() -> None:
        async for x in it:
            out.append(x)
            if len(out) >= n:
                return

    await asyncio.wait_for(go(), timeout)
    return out


async def eventually(cond: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> None:
    """Wait until ``cond()`` is true or fail."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
