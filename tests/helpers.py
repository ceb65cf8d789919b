"""Helpers shared by the tests that run the real loop."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np

from glasses_assistant.audio.io import WavSink, WavSource
from glasses_assistant.camera import Camera
from glasses_assistant.pipeline import Assistant
from glasses_assistant.trace import TurnTrace


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
