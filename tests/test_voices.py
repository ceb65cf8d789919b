# SPDX-License-Identifier: GPL-3.0-or-later
"""Voices other than the default Piper one: espeak-ng languages from piper-tts's data."""

from __future__ import annotations

import numpy as np
import pytest

from glasses_assistant.config import TtsConfig
from glasses_assistant.engines.voices import EspeakEngine, espeak_languages, open_voice
from glasses_assistant.errors import ModelError


def test_espeak_voices_for_the_travel_languages_ship_in_piper() -> None:
    assert {"fr", "de", "es", "it", "pt"} <= espeak_languages()


@pytest.mark.parametrize("lang,text", [("fr", "Où est la gare ?"), ("de", "Wo ist der Bahnhof?"),
                                       ("es", "¿Dónde está la estación?")])
def test_espeak_speaks_each_language(lang: str, text: str) -> None:
    voice = open_voice(f"espeak-ng:{lang}", None, TtsConfig())  # type: ignore[arg-type]
    audio = voice.synthesize(text)
    assert voice.sample_rate == 22_050
    assert audio.dtype == np.float32 and 0.5 < len(audio) / voice.sample_rate < 5
    assert 0.05 < float(np.abs(audio).max()) <= 1.0
    assert voice.synthesize("   ").size == 0


def test_unknown_language_is_one_line() -> None:
    with pytest.raises(ModelError, match="no espeak-ng voice for language 'xx'"):
        EspeakEngine("xx", TtsConfig())
