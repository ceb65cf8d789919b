# SPDX-License-Identifier: GPL-3.0-or-later
"""Whisper's text clean-ups, without loading a model."""

from __future__ import annotations

import pytest

from glasses_assistant.engines.stt import Transcript, collapse_repeats


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("What is the capital of France? What is the capital of", "What is the capital of France?"),
        ("What do bees make? What do bees make", "What do bees make?"),
        ("How many legs? How many legs?", "How many legs?"),
        ("It is cold. Take a coat.", "It is cold. Take a coat."),
        ("One sentence only.", "One sentence only."),
    ],
)
def test_collapse_repeats(raw: str, clean: str) -> None:
    assert collapse_repeats(raw) == clean


@pytest.mark.parametrize("text", ["", " you ", "Thank you.", "[BLANK_AUDIO]", "(music)", "...", "♪♪"])
def test_whisper_noise_transcripts_count_as_nothing_said(text: str) -> None:
    assert Transcript(text, "en", 1.0).is_empty


def test_real_words_are_not_empty() -> None:
    assert not Transcript("Thank you for the help, what time is it?", "en", 1.0).is_empty
