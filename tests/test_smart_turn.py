# SPDX-License-Identifier: GPL-3.0-or-later
"""Smart Turn's features against pipecat's own implementation, and the model itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glasses_assistant.audio.smart_turn import RATE, SmartTurn, fit_window, log_mel
from glasses_assistant.catalog import load_catalogue
from glasses_assistant.errors import ModelError


def chirp() -> np.ndarray:
    """2.5 s: a glide from 220 Hz and a quiet 3 kHz tone."""
    t = np.arange(int(RATE * 2.5)) / RATE
    return (0.3 * np.sin(2 * np.pi * (220 + 300 * t) * t) + 0.05 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)


# Computed by pipecat-ai 1.14.0's pipecat/audio/turn/smart_turn/_whisper_features.py
# (compute_whisper_log_mel_features) on fit_window(chirp()).
KNOWN = {(2, 560): 0.233695, (8, 600): 0.160357, (20, 650): 1.702001, (33, 700): 0.126893,
         (47, 720): -0.198413, (60, 780): -0.198413, (79, 799): 0.049334, (0, 100): -0.198413}


def test_features_match_pipecats() -> None:
    feats = log_mel(fit_window(chirp()))
    assert feats.shape == (80, 800) and feats.dtype == np.float32
    for (mel, frame), value in KNOWN.items():
        assert feats[mel, frame] == pytest.approx(value, abs=1e-5), (mel, frame)
    assert float(feats[:, 550:].mean()) == pytest.approx(0.038395, abs=1e-5)
    assert float(feats.max()) == pytest.approx(1.801587, abs=1e-5)


def test_window_keeps_the_end() -> None:
    short = fit_window(np.ones(RATE, np.float32))
    assert short.shape == (8 * RATE,) and short[:7 * RATE].max() == 0 and short[-RATE:].min() == 1
    long = np.arange(10 * RATE, dtype=np.float32)
    assert fit_window(long)[0] == 2 * RATE  # the last 8 s


def test_a_file_that_is_no_model_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "smart-turn.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="cannot load end-of-turn model"):
        SmartTurn(bad)


@pytest.mark.models
def test_the_real_model_gives_a_probability() -> None:
    path, model_id = load_catalogue().resolve("turn", None)
    assert model_id == "smart-turn-v3.2"
    model = SmartTurn(path)
    for audio in (np.zeros(RATE, np.float32), chirp(), np.zeros(0, np.float32)):
        p = model.probability(audio)
        assert 0.0 <= p <= 1.0


def test_a_model_that_fails_verification_falls_back_with_one_warning(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    from glasses_assistant.config import Config
    from glasses_assistant.engines.workers import Engines
    from glasses_assistant.listen import end_of_turn_policy

    folder = tmp_path / "smart-turn-v3.2"
    folder.mkdir()
    (folder / "smart-turn-v3.2-cpu.onnx").write_bytes(b"\0" * 1000)  # truncated
    engines = Engines(load_catalogue(cache_dir=tmp_path))
    config = Config()
    try:
        with caplog.at_level("WARNING"):
            engines._load_turn(config)
    finally:
        engines.close()
    assert engines.turn is None and "turn" not in engines.model_ids
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "ending turns by transcript and silence" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert end_of_turn_policy(config.vad, acoustic=engines.turn is not None).kind == "punctuation"
