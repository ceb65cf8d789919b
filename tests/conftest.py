"""Shared fixtures: the real assistant (loaded once per session) and spoken test audio."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from glasses_assistant.audio.io import SAMPLE_RATE, resample
from glasses_assistant.config import load_config
from glasses_assistant.pipeline import Assistant


@pytest.fixture(scope="session")
def assistant() -> Iterator[Assistant]:
    """The assistant on the real bundled models, loaded and warmed once."""
    a = Assistant(load_config())
    a.load()
    yield a
    a.close()


@pytest.fixture(scope="session")
def speak(assistant: Assistant):  # type: ignore[no-untyped-def]
    """Text -> 16 kHz speech, spoken by the real Piper voice."""
    cache: dict[str, np.ndarray] = {}

    def _speak(text: str) -> np.ndarray:
        if text not in cache:
            assert assistant.tts is not None
            cache[text] = resample(assistant.tts.synthesize(text), assistant.tts.sample_rate, SAMPLE_RATE)
        return cache[text]

    return _speak
