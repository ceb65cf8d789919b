# SPDX-License-Identifier: GPL-3.0-or-later
"""Prefill while the wearer speaks and preemptive generation, on fakes: what starts, what is kept,
what is dropped, and which transcripts never get an early answer (tools, a server, translation)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import make_test_config

from glasses_assistant.anticipate import MIN_PREFILL_MS
from glasses_assistant.config import with_overrides
from glasses_assistant.engines.stt import Transcript
from glasses_assistant.pipeline import Assistant


class FakeLlm:
    """Writes a fixed answer a piece at a time (slowly enough to be cancelled) and records prefills."""

    def __init__(self, pieces: tuple[str, ...] = ("Paris ", "is ", "the ", "capital ", "of ", "France.")) -> None:
        self.pieces = pieces
        self.prefilled: list[str] = []
        self.streamed: list[str] = []
        self.cancelled = threading.Event()

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        return sum(len(m["content"].split()) for m in messages)

    def prefill(self, messages: list[dict[str, str]], stop: Any = None) -> int:
        self.prefilled.append(messages[-1]["content"])
        return len(messages[-1]["content"].split())

    def end_probability(self, messages: list[dict[str, str]], stop: Any = None) -> float | None:
        self.streamed.append("judged: " + messages[-1]["content"])
        return 0.1 if messages[-1]["content"].endswith(("the", "of")) else 0.95

    def stream(self, messages: list[dict[str, str]], on_token: Any, *, cancel: Any = None,
               max_tokens: int | None = None) -> str:
        self.streamed.append(messages[-1]["content"])
        out = []
        for piece in self.pieces:
            if cancel is not None and cancel.is_set():
                self.cancelled.set()
                break
            time.sleep(0.02)
            out.append(piece)
            on_token(piece)
        return "".join(out)


@pytest.fixture
def assistant(tmp_path: Path):  # type: ignore[no-untyped-def]
    """An assistant with no model loaded: the fake LLM only (the routing table is the real one)."""
    a = Assistant(make_test_config(tmp_path))
    a.llm = FakeLlm()
    yield a
    a.close()


def _transcript(text: str) -> Transcript:
    return Transcript(text, "en", 0.1, 1.0)


def test_goes_to_chat_only_for_what_the_chat_answers(assistant: Assistant) -> None:
    chat = assistant.dispatcher.goes_to_chat
    assert chat("What is the capital of France?")
    assert chat("What day comes after Friday?")  # the calendar, not the clock: the chat model
    assert not chat("Set a timer for five minutes.")
    assert not chat("What time is it?")
    assert not chat("Remember that my car is on level 3.")
    assert not chat("Translate for me.")
    assert not chat("Translate this sign.")


def test_a_preemptive_answer_is_kept_for_the_same_prompt(assistant: Assistant) -> None:
    early, llm = assistant.early, assistant.llm

    async def main() -> tuple[str, list[str]]:
        early.paused(_transcript("What is the capital of France?"))
        assert early.preemption is not None
        messages = assistant.conversation.messages("What is the capital of France?", llm.count_tokens)
        pre = early.take(messages, threading.Event())
        assert pre is not None and pre.future is not None
        pieces = []
        while (piece := await pre.tokens.get()) is not None:
            pieces.append(piece)
        return await pre.future, pieces

    text, pieces = asyncio.run(main())
    assert text == "Paris is the capital of France." and "".join(pieces) == text
    assert llm.streamed == ["What is the capital of France?"]
    assert early.stats["kept"] == 1 and early.stats["dropped"] == 0


def test_another_prompt_drops_it_and_stops_the_model(assistant: Assistant) -> None:
    early, llm = assistant.early, assistant.llm

    async def main() -> None:
        early.paused(_transcript("What is the capital of"))
        pre = early.preemption
        assert pre is not None and pre.future is not None
        await asyncio.sleep(0.03)
        messages = assistant.conversation.messages("What is the capital of Spain?", llm.count_tokens)
        assert early.take(messages, threading.Event()) is None
        await asyncio.wait_for(asyncio.shield(pre.future), 2)

    asyncio.run(main())
    assert llm.cancelled.is_set()  # stopped between tokens, not run to the end
    assert early.preemption is None and early.stats["dropped"] == 1


def test_the_wearer_going_on_drops_it(assistant: Assistant) -> None:
    early, llm = assistant.early, assistant.llm

    async def main() -> None:
        early.paused(_transcript("What is the capital"))
        pre = early.preemption
        assert pre is not None and pre.future is not None
        early.resumed()
        await asyncio.wait_for(asyncio.shield(pre.future), 2)

    asyncio.run(main())
    assert llm.cancelled.is_set() and early.preemption is None


def test_the_turns_cancel_flag_stops_a_taken_answer(assistant: Assistant) -> None:
    early, llm = assistant.early, assistant.llm
    turn_cancel = threading.Event()

    async def main() -> str:
        early.paused(_transcript("What is the capital of France?"))
        messages = assistant.conversation.messages("What is the capital of France?", llm.count_tokens)
        pre = early.take(messages, turn_cancel)
        assert pre is not None and pre.future is not None
        turn_cancel.set()  # the wearer interrupted the reply
        return await pre.future

    assert asyncio.run(main()) != "Paris is the capital of France."
    assert llm.cancelled.is_set()


@pytest.mark.parametrize("text", ["Set a timer for five minutes.", "Ask the big model what the capital of France is."])
def test_no_early_answer_for_a_tool_or_the_server(tmp_path: Path, text: str) -> None:
    config = with_overrides(make_test_config(tmp_path), remote={"policy": "escalate", "url": "http://127.0.0.1:9/v1"})
    a = Assistant(config)
    a.llm = FakeLlm()
    try:
        async def main() -> None:
            a.early.paused(_transcript(text))
        asyncio.run(main())
        assert a.early.preemption is None and a.llm.streamed == []
    finally:
        a.close()


def test_preemptive_off(tmp_path: Path) -> None:
    a = Assistant(with_overrides(make_test_config(tmp_path), llm={"preemptive": False}))
    a.llm = FakeLlm()
    try:
        async def main() -> None:
            a.early.paused(_transcript("What is the capital of France?"))
        asyncio.run(main())
        assert a.early.preemption is None
    finally:
        a.close()


def test_prefill_while_speaking_transcribes_now_and_then(assistant: Assistant) -> None:
    early, llm = assistant.early, assistant.llm
    every = assistant.config.llm.prefill_every_ms
    heard: list[int] = []

    def transcribe(audio: np.ndarray, cancel: threading.Event) -> Transcript:
        heard.append(len(audio))
        return _transcript("What is the capital" if len(heard) == 1 else "What is the capital of France")

    async def main() -> None:
        speech = 0.0
        while speech < MIN_PREFILL_MS + 2 * every + 64:
            early.speaking(speech, lambda ms=speech: np.zeros(int(ms * 16), np.float32), transcribe)
            await asyncio.sleep(0.05)  # the partial's transcription and prefill complete meanwhile
            speech += 32.0

    asyncio.run(main())
    assert len(heard) == 3, heard  # at MIN_PREFILL_MS, then once every prefill_every_ms of speech
    assert llm.prefilled[:2] == ["What is the capital", "What is the capital of France"]
    assert early.stats["prefills"] == 3


def test_prefill_off_never_transcribes(tmp_path: Path) -> None:
    a = Assistant(with_overrides(make_test_config(tmp_path), llm={"prefill_every_ms": 0}))
    a.llm = FakeLlm()
    calls: list[int] = []
    try:
        async def main() -> None:
            for ms in range(0, 4000, 32):
                a.early.speaking(float(ms), lambda: np.zeros(16, np.float32),
                                 lambda audio, cancel: calls.append(1) or _transcript("x"))
        asyncio.run(main())
        assert calls == []
    finally:
        a.close()


def test_a_partial_overtaken_by_the_pause_gives_way(assistant: Assistant) -> None:
    """The speculative transcription and the answer must not wait behind a prefill that is now stale."""
    early, llm = assistant.early, assistant.llm
    release = threading.Event()

    def slow_transcribe(audio: np.ndarray, cancel: threading.Event) -> Transcript:
        release.wait(5)
        return _transcript("What is the capital")

    async def main() -> None:
        early.speaking(float(MIN_PREFILL_MS), lambda: np.zeros(16_000, np.float32), slow_transcribe)
        await asyncio.sleep(0.05)
        early.pausing()  # the wearer stopped: the speculative transcription starts now
        release.set()
        await asyncio.sleep(0.3)

    asyncio.run(main())
    assert llm.prefilled == [] and early.settle("What is the capital of France?") == {
        "prefills": 0, "prefilled_tokens": 0}


def test_the_end_of_the_words_is_judged_before_the_preemptive_answer(assistant: Assistant) -> None:
    """``[vad] hold_below``: the judgement goes first on the llm worker, so the answer reuses what it
    evaluated and it is known before the answer's first phrase. A tool's words are not judged (its
    turn is never held), nor is nothing."""
    early, llm = assistant.early, assistant.llm

    async def main() -> tuple[float | None, float | None]:
        judged = early.judge_end("What is the capital of France?")
        early.paused(_transcript("What is the capital of France?"))
        hanging = early.judge_end("Tell me about the")
        assert judged is not None and hanging is not None and early.preemption is not None
        assert early.preemption.future is not None
        await early.preemption.future
        return await judged, await hanging

    assert asyncio.run(main()) == (0.95, 0.1)
    assert llm.streamed[:2] == ["judged: What is the capital of France?", "What is the capital of France?"]
    assert early.judge_end("Set a timer for five minutes.") is None
    assert early.judge_end("   ") is None
