# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures: the real assistant (loaded once per session) and spoken test audio."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from helpers import make_test_config

from glasses_assistant.audio.io import SAMPLE_RATE, resample
from glasses_assistant.pipeline import Assistant


@pytest.fixture(scope="session", autouse=True)
def _private_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Memory, timers and personas of every test (and the CLIs they start) live in a temporary
    folder, never in the wearer's ~/.local/share or ~/.config (models stay in ~/.cache)."""
    import os

    base = tmp_path_factory.mktemp("xdg")
    saved = {k: os.environ.get(k) for k in ("XDG_DATA_HOME", "XDG_CONFIG_HOME")}
    os.environ["XDG_DATA_HOME"], os.environ["XDG_CONFIG_HOME"] = str(base / "data"), str(base / "config")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def assistant(tmp_path_factory: pytest.TempPathFactory, _private_home: None) -> Iterator[Assistant]:
    """The assistant on the real bundled models, loaded and warmed once (memory in a temporary folder)."""
    a = Assistant(make_test_config(tmp_path_factory.mktemp("assistant-home")))
    a.load()
    yield a
    a.close()


@pytest.fixture(scope="session")
def speak(assistant: Assistant):  # type: ignore[no-untyped-def]
    """Text -> 16 kHz speech, spoken by the real Piper voice with its random variation off.

    Piper adds random noise to every synthesis; with it, a question could be heard
    differently from one run to the next ("What" as "Why"). The wearer's test voice is
    made repeatable so that a test passes or fails for the same reason every time.
    """
    from glasses_assistant.config import with_overrides
    from glasses_assistant.engines.tts import PiperEngine

    config = with_overrides(assistant.config, tts={"noise_scale": 0.0, "noise_w": 0.0})
    voice = PiperEngine(assistant.model_paths["tts"], config.tts)
    cache: dict[str, np.ndarray] = {}

    def _speak(text: str) -> np.ndarray:
        if text not in cache:
            cache[text] = resample(voice.synthesize(text), voice.sample_rate, SAMPLE_RATE)
        return cache[text]

    return _speak
