# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers shared by the tests that run the real loop."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from glasses_assistant.audio.io import WavSink, WavSource
from glasses_assistant.camera import Camera
from glasses_assistant.config import Config, load_config
from glasses_assistant.pipeline import Assistant
from glasses_assistant.trace import TurnTrace


async def until(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait (polling) until ``cond()`` holds; fail the test after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:g} s")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing what was said and heard."""
    return re.findall(r"[a-z0-9']+", text.lower())


def converse(
    assistant: Assistant, clips: list[np.ndarray], tmp_path: Path, *, realtime: bool = True,
    gap_s: float = 1.5, camera: Camera | None = None,
) -> tuple[list[TurnTrace], np.ndarray, int]:
    """Play clips into the loop as a microphone; return the traces and the reply audio."""
    assistant.conversation.clear()
    sink = WavSink(tmp_path / "reply.wav")
    source = WavSource.from_samples(clips, realtime=realtime, gap_s=gap_s)
    traces = asyncio.run(assistant.serve(source, sink, camera=camera))
    return traces, sink.audio, sink.sample_rate or 22050


def make_test_config(folder: Path) -> Config:
    """The default config with memory, timers and personas in ``folder``: never the wearer's home."""
    (folder / "personas").mkdir(parents=True, exist_ok=True)
    return load_config(overrides={"memory": {"path": str(folder / "memory.db")},
                                  "persona": {"dir": str(folder / "personas")},
                                  "vision": {"photo_dir": str(folder / "photos")}})
