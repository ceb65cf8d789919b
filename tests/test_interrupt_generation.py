# SPDX-License-Identifier: GPL-3.0-or-later
"""An interrupted reply stops whatever is generating for it, not only the chat LLM.

A barge-in (or a tap during a reply) calls the reply's :class:`ReplyHandle.interrupt`; these
tests call it at the moment a real generation is under way and check that the generation
stopped at its next token and gave its worker back. The translator (the 1.5B Qwen) and the
tool-call LLM are the two that, before the reply handle, ran on to their token cap.

To interrupt *during* the generation on a machine of any speed, the test holds the model's
thread at its first piece until the interrupt has been delivered, then lets it go on: the
next token it would write must not come.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from glasses_assistant.audio.io import WavSink
from glasses_assistant.engines.llm import LlamaEngine
from glasses_assistant.pipeline import Assistant
from glasses_assistant.reply import ReplyHandle
from glasses_assistant.skill import Turn

pytestmark = pytest.mark.models

LONG_ENGLISH = ("Could you please tell me where the train station is, how long it takes to walk there from the "
                "old market square, and whether I need to buy a ticket before I get on the evening train to the "
                "airport or if I can pay the conductor on board?")


def _held_at_first_piece(llm: LlamaEngine, first: asyncio.Event, go_on: threading.Event,
                         loop: asyncio.AbstractEventLoop) -> Callable[..., str]:
    """``llm._drain`` that stops the model's thread at its first piece until ``go_on`` is set."""
    original = llm._drain

    def drain(stream: Any, on_token: Callable[[str], None], cancel: Any) -> str:
        def watch(piece: str) -> None:
            if not first.is_set():
                loop.call_soon_threadsafe(first.set)
                go_on.wait(30)
            on_token(piece)

        return original(stream, watch, cancel)

    return drain


async def _interrupt_during(assistant: Assistant, llm: LlamaEngine, worker: str, turn: Turn,
                            tmp_path: Path) -> float:
    """Answer ``turn``, interrupt its reply at the first generated piece; seconds until ``worker`` is free."""
    loop = asyncio.get_running_loop()
    first, go_on = asyncio.Event(), threading.Event()
    llm._drain = _held_at_first_piece(llm, first, go_on, loop)  # type: ignore[method-assign]
    try:
        handle = ReplyHandle(cancel=turn.cancel)
        handle.task = task = asyncio.ensure_future(
            assistant.dispatcher.answer(turn, WavSink(tmp_path / "reply.wav")))
        await asyncio.wait_for(first.wait(), 120)
        record = await handle.interrupt("speech", time.monotonic())
        assert record is not None and handle.cancel.is_set()
        go_on.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        t0 = time.monotonic()
        await assistant.engines.call(worker, lambda: None)  # queued behind the generation: runs once it stops
        return time.monotonic() - t0
    finally:
        go_on.set()
        del llm._drain


def test_an_interrupt_stops_the_translators_generation(assistant: Assistant, tmp_path: Path) -> None:
    assert asyncio.run(assistant.start_translation("fr", None)).startswith("Translating between French")
    try:
        engines = assistant.engines
        assert engines.translator is not None
        llm = engines.translator.llm
        assert isinstance(llm, LlamaEngine)
        # Uninterrupted, this sentence's translation is dozens of pieces long.
        full = asyncio.run(assistant.translate_text(LONG_ENGLISH, "en", "fr"))
        full_pieces = llm.last_pieces
        assert full.ok and full_pieces >= 20 and not llm.last_cancelled, (full, full_pieces)

        async def go() -> float:
            trace = assistant.dispatcher.new_trace(transcript=LONG_ENGLISH)
            return await _interrupt_during(assistant, llm, engines.mt_worker, Turn(LONG_ENGLISH, trace), tmp_path)

        freed_s = asyncio.run(go())
        assert llm.last_cancelled, "the translator ran on after the interrupt"
        assert llm.last_pieces <= 2 < full_pieces, (llm.last_pieces, full_pieces)
        assert freed_s < 2.0, freed_s  # the worker is free at once, not after the whole translation
    finally:
        assistant.stop_translation()


def test_an_interrupt_stops_the_tool_call_generation(assistant: Assistant, tmp_path: Path) -> None:
    llm = assistant.engines.llm
    assert isinstance(llm, LlamaEngine)
    text = "Remind me about the pasta timer in ten minutes"  # two candidate tools: the LLM writes the call
    decision = assistant.tools.decide(text)
    full_pieces = llm.last_pieces
    assert decision is not None and decision.how in ("llm", "rule-fallback") and full_pieces >= 5, decision

    async def go() -> float:
        trace = assistant.dispatcher.new_trace(transcript=text)
        return await _interrupt_during(assistant, llm, "llm", Turn(text, trace), tmp_path)

    freed_s = asyncio.run(go())
    assert llm.last_cancelled, "the tool-call LLM ran on after the interrupt"
    assert llm.last_pieces <= 2 < full_pieces, (llm.last_pieces, full_pieces)
    assert freed_s < 2.0, freed_s
    assert assistant.personal.memory is not None
    assert not [t for t in assistant.personal.memory.timers() if "pasta" in t.label], "the cut call set a timer"
