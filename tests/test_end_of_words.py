# SPDX-License-Identifier: GPL-3.0-or-later
"""The chat LLM's judgement of whether the wearer's words end there (``[vad] hold_below``), with the
real 1.5B: a sentence left hanging is doubted, a whole question trusted, and the answer after the
judgement reuses its evaluation without harm."""

from __future__ import annotations

import pytest
from helpers import words

from glasses_assistant.pipeline import Assistant

pytestmark = pytest.mark.models


def test_the_chat_llm_doubts_hanging_words_and_trusts_a_whole_question(assistant: Assistant) -> None:
    llm = assistant.engines.llm
    assert llm is not None
    system = {"role": "system", "content": assistant.config.llm.system_prompt}

    def judged(text: str) -> float:
        p = llm.end_probability([system, {"role": "user", "content": text}])
        assert p is not None and 0.0 <= p <= 1.0, (text, p)
        return p

    whole = judged("What is the capital of France?")
    assert whole >= assistant.config.vad.hold_below, whole  # not held: answered at once
    for hanging in ("What is the capital of", "Tell me about the", "Set a timer for"):
        assert judged(hanging) < 0.2, hanging
    assert judged("Remind me.") < assistant.config.vad.hold_below  # a request that usually goes on
    # The answer streams after a judgement of the same prompt (its KV cache reused) and is right.
    messages = [system, {"role": "user", "content": "What is the capital of France?"}]
    assert llm.end_probability(messages) == pytest.approx(whole, abs=0.05)
    # In one pass: the answer's whole prompt (the template's end and the reply's start) is cached,
    # so the answer samples at once instead of paying a pass of its own for those tokens.
    _tokens, _end, prompt = llm._prompt_split(messages, whole=True)  # type: ignore[attr-defined]
    assert prompt is not None and list(llm._llm.input_ids[: llm._llm.n_tokens]) == prompt  # type: ignore[attr-defined]
    assert "paris" in words(llm.stream(messages, lambda _piece: None, max_tokens=12))


def test_a_judgement_after_the_history_window_slid_is_still_one_pass(assistant: Assistant) -> None:
    """More new tokens than one batch (the history's window slid, so the prompt differs from its
    first exchange on): evaluated in batches, the last holding the judged position, and the
    answer's whole prompt cached for it all the same."""
    llm = assistant.engines.llm
    assert llm is not None
    system = {"role": "system", "content": assistant.config.llm.system_prompt}
    history = []
    for i in range(7):
        history += [{"role": "user", "content": f"Tell me fact number {i} about the ocean and its ships."},
                    {"role": "assistant", "content": f"Fact {i}: the ocean covers most of the planet, and ships "
                                                     "have crossed it for thousands of years."}]
    messages = [system, *history, {"role": "user", "content": "What is the capital of France?"}]
    llm.prefill([system, {"role": "user", "content": "Hi"}])  # the cache parts after the system prompt
    _tokens, _end, prompt = llm._prompt_split(messages, whole=True)  # type: ignore[attr-defined]
    assert prompt is not None
    assert len(prompt) - llm._cached_prefix(prompt) > llm._llm.n_batch  # type: ignore[attr-defined]
    p = llm.end_probability(messages)
    assert p is not None and p >= 0.5, p
    assert list(llm._llm.input_ids[: llm._llm.n_tokens]) == prompt  # type: ignore[attr-defined]
    assert "paris" in words(llm.stream(messages, lambda _piece: None, max_tokens=12))
