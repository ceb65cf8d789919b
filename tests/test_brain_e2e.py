# SPDX-License-Identifier: GPL-3.0-or-later
"""The default brain, end to end: spoken questions the tiny 135M gets wrong, answered right.

Real models and the real loop (Silero VAD, Whisper, the default chat model, Piper), the
questions spoken by the Piper voice in real time, the answers checked by the quality
benchmark's own scorer. Each question was answered wrongly by SmolLM2-135M (the tiny profile) in
`glasses-assistant quality-bench` (README, Models); the last has no possible answer, and the
honest answer is "I don't know".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import converse

from glasses_assistant.benches.quality import score
from glasses_assistant.pipeline import Assistant

pytestmark = pytest.mark.models

QUESTIONS = [  # what SmolLM2-135M said to each, typed, in quality-bench:
    ("Which animal is known as the king of the jungle?", "lion*"),  # "a creature known for its ability to survive"
    ("What is 25 times 4?", "100"),  # "25 times 4 is equal to 10."
    ("What month comes after June?", "july"),  # "The month after June is December."
    ("What is my neighbor's name?", "@unknown"),  # "I'm Sarah, a friendly AI assistant."
]


def test_the_default_brain_answers_what_the_tiny_one_gets_wrong(assistant: Assistant, speak, tmp_path: Path) -> None:
    assert assistant.model_ids["llm"] == "qwen2.5-coder-1.5b-q4_k_m"
    clips = [speak(q) for q, _ in QUESTIONS]
    # Real time, with room for each answer before the next question: as a wearer would ask them.
    traces, _, _ = converse(assistant, clips, tmp_path, gap_s=3.0)
    answered = [t for t in traces if t.outcome == "answered"]
    assert len(answered) == len(QUESTIONS), [(t.transcript, t.outcome, t.error) for t in traces]
    for (question, expected), t in zip(QUESTIONS, answered, strict=True):
        assert score(expected, t.reply), (question, t.transcript, t.reply)
    # The answers were ready early: generated from the pause's transcript before the turn ended.
    assert any(t.early and t.early.get("preemptive") == "kept" for t in answered), [t.early for t in answered]
