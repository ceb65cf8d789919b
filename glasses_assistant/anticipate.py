# SPDX-License-Identifier: GPL-3.0-or-later
"""Getting the answer ready before the wearer has finished: prefill and preemptive generation.

Two techniques on the chat LLM, each undone by anything unexpected, each switched by its
own setting so the benchmark can measure it on and off (``bench --ablate``):

* **prefill while the wearer speaks** (``[llm] prefill_every_ms``): every so much speech, the
  audio so far is transcribed and the question so far evaluated into the LLM's KV cache (the
  prompt's tokens only; nothing is generated). llama.cpp re-evaluates only the tokens after the
  longest common prefix, so when the turn ends only the last words and the template's end of
  turn are left to evaluate.
* **preemptive generation** (``[llm] preemptive``): at the first pause, as soon as the
  speculative transcript is ready, the answer is generated (not spoken). If the turn ends with
  that same transcript, which is the usual case since only silence followed, the speaking side
  takes over the tokens already made (:meth:`Anticipator.take`); if the wearer goes on
  speaking, or the final prompt differs, the generation is cancelled between tokens and
  dropped. livekit agents' ``preemptive_generation`` is the precedent.

Both only start for a transcript that would reach the local chat LLM (no tool, no translation,
no vision, no server: :meth:`~.dispatch.Dispatcher.goes_to_chat` and the router say so), and
only while nothing else is being answered. The listener calls :meth:`Anticipator.speaking`,
:meth:`Anticipator.paused`, :meth:`Anticipator.resumed` and :meth:`Anticipator.settle`; the
speaking side calls :meth:`Anticipator.take`. Nothing here speaks or decides a route.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .engines.stt import Transcript
from .router import LOCAL, decide
from .skill import SkillContext

log = logging.getLogger(__name__)

Message = dict[str, str]
Transcribe = Callable[[np.ndarray, threading.Event], Transcript]
MIN_PREFILL_MS = 600
"""No partial transcription before this much speech: too few words to be worth a Whisper pass."""


class AnyFlag:
    """A cancel flag set when any of its events is: the preemptive generation's own, and (once the
    speaking side has taken it over) the turn's, which an interruption sets."""

    def __init__(self) -> None:
        self.own = threading.Event()
        self._linked: list[threading.Event] = []

    def link(self, event: threading.Event) -> None:
        self._linked.append(event)

    def set(self) -> None:
        self.own.set()

    def is_set(self) -> bool:
        return self.own.is_set() or any(e.is_set() for e in self._linked)


@dataclass
class Preemption:
    """An answer being generated for the transcript of a pause, before the turn is known to end."""

    text: str
    messages: list[Message]
    cancel: AnyFlag
    tokens: asyncio.Queue[str | None]
    """The pieces as the model writes them, then None (filled from the llm worker)."""
    future: asyncio.Future[str] | None = None
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    ended: float | None = None

    def drop(self) -> None:
        """Stop it between tokens; its tokens are never spoken."""
        self.cancel.set()
        if self.future is not None:
            self.future.add_done_callback(lambda f: f.cancelled() or f.exception())


class Anticipator:
    """Prefill and preemptive generation for one assistant (see the module docstring)."""

    def __init__(self, ctx: SkillContext) -> None:
        self.ctx = ctx
        self.wants: Callable[[str], bool] = lambda _text: True
        """Whether a transcript would reach the chat LLM (set by the composition root to the
        dispatcher's ``goes_to_chat``)."""
        self.preemption: Preemption | None = None
        self._partial_at_ms = 0.0
        self._partial: asyncio.Future[Transcript | None] | None = None
        self._prefilling = False
        self._judged: tuple[str, list[Message]] | None = None
        """The last text judged (:meth:`judge_end`) and its prompt, for the answer to it."""
        self._epoch = 0
        """Bumped at each turn's start and end: a partial transcript of an older turn is ignored."""
        self._stale = threading.Event()
        """Set at the pause: partial transcriptions and prefills still queued or running give way to
        the speculative transcription and the answer (a new one is made when speech starts again)."""
        self.stats = {"prefills": 0, "prefilled_tokens": 0, "preempted": 0, "kept": 0, "dropped": 0}
        self._turn = {"prefills": 0, "prefilled_tokens": 0}
        """The prefills of the utterance in progress (for its trace)."""

    # ------------------------------------------------------------------ settings
    @property
    def _llm(self) -> Any:
        return self.ctx.engines.llm

    def _local_chat(self, text: str) -> bool:
        """The transcript would be answered by the local chat LLM."""
        if not text.strip() or self._llm is None:
            return False
        if decide(text, self.ctx.config.remote).target != LOCAL:
            return False
        return self.wants(text)

    def _messages(self, text: str) -> list[Message]:
        personal = self.ctx.personal
        return personal.conversation.messages(text, self._llm.count_tokens, memories=personal.recalled(text))

    # ------------------------------------------------------------------ the listener's side
    def speaking(self, speech_ms: float, audio: Callable[[], np.ndarray], transcribe: Transcribe) -> None:
        """The wearer is speaking (called for each chunk of speech with its length so far): now and
        then transcribe what was said so far and prefill the LLM with it."""
        every = self.ctx.config.llm.prefill_every_ms
        if every <= 0 or speech_ms < MIN_PREFILL_MS or self._partial is not None or self._prefilling:
            return
        if speech_ms - self._partial_at_ms < every:
            return
        self._partial_at_ms = speech_ms
        epoch, stale = self._epoch, self._stale
        samples = audio()

        def partial() -> Transcript | None:
            # Queued behind other work and overtaken by the pause: the speculative transcription
            # of the whole utterance is what matters now, so this one is not run at all.
            return None if stale.is_set() else transcribe(samples, stale)

        self._partial = future = self.ctx.engines.start("stt", partial)

        def done(f: asyncio.Future[Transcript | None]) -> None:
            self._partial = None
            if f.cancelled() or f.exception() is not None or epoch != self._epoch:
                return
            result = f.result()
            if result is not None and not stale.is_set():
                self._prefill(result.text)

        future.add_done_callback(done)

    def _prefill(self, text: str) -> None:
        """Evaluate the question so far into the KV cache (on the llm worker; one at a time)."""
        if self._prefilling or self.preemption is not None or not self._local_chat(text):
            return
        messages = self._messages(text)
        self._prefilling = True
        llm, stale = self._llm, self._stale

        def prefill() -> int:
            return 0 if stale.is_set() else int(llm.prefill(messages, stale))

        def done(f: asyncio.Future[int]) -> None:
            self._prefilling = False
            if not f.cancelled() and f.exception() is None and f.result():
                for counts in (self.stats, self._turn):
                    counts["prefills"] += 1
                    counts["prefilled_tokens"] += f.result()
            elif not f.cancelled():
                log.debug("prefill failed: %s", f.exception())

        self.ctx.engines.start("llm", prefill).add_done_callback(done)

    def pausing(self) -> None:
        """The wearer paused (the speculative transcription is about to start): partial work gives way."""
        self._stale.set()

    def judge_end(self, text: str) -> asyncio.Future[float | None] | None:
        """The chat LLM's probability that the wearer's words end with ``text``; None when the
        local chat model would not answer them (a tool, the camera, a server). Queued on the llm
        worker before the preemptive answer, so it comes first and the answer reuses its
        evaluation of the question: it costs one pass through the model."""
        llm = self._llm
        if not hasattr(llm, "end_probability") or not self._local_chat(text):
            return None  # a tool's turn is never held; a server's or the camera's is slow anyway
        messages = self._messages(text)
        self._judged = (text, messages)  # the preemptive answer's prompt: recalled once, not twice
        return self.ctx.engines.start("llm", llm.end_probability, messages)

    def paused(self, transcript: Transcript) -> None:
        """The speculative transcript of the first pause is ready: start answering it (not aloud)."""
        self.drop()
        judged, self._judged = self._judged, None  # judged just now (this pause), or stale
        if not self.ctx.config.llm.preemptive or not self._local_chat(transcript.text):
            return
        loop = asyncio.get_running_loop()
        messages = judged[1] if judged is not None and judged[0] == transcript.text else self._messages(transcript.text)
        pre = Preemption(transcript.text, messages, AnyFlag(), asyncio.Queue())
        llm = self._llm

        def emit(piece: str) -> None:
            if pre.first_token is None:
                pre.first_token = time.monotonic()
            loop.call_soon_threadsafe(pre.tokens.put_nowait, piece)

        def generate() -> str:
            pre.started = time.monotonic()
            try:
                return str(llm.stream(messages, emit, cancel=pre.cancel))
            finally:
                pre.ended = time.monotonic()
                loop.call_soon_threadsafe(pre.tokens.put_nowait, None)

        pre.future = self.ctx.engines.start("llm", generate)
        self.preemption = pre
        self.stats["preempted"] += 1

    def resumed(self) -> None:
        """The wearer went on speaking: what was started for the pause is stale."""
        self.drop()
        self._stale = threading.Event()  # partial transcripts may feed the prefill again

    def settle(self, text: str) -> dict[str, object]:
        """The turn's final transcript is known: a preemption for another text is dropped now, so
        that whatever answers this turn (a tool's LLM call, say) does not wait behind it. Returns
        what was prefilled while the wearer spoke, for the turn's trace."""
        self._epoch += 1
        self._partial_at_ms = 0.0
        if self.preemption is not None and self.preemption.text != text:
            self.drop()
        report: dict[str, object] = dict(self._turn)
        self._turn = {"prefills": 0, "prefilled_tokens": 0}
        return report

    def turn_started(self) -> None:
        """A new utterance began: partial transcripts of the last one are stale."""
        self._epoch += 1
        self._partial_at_ms = 0.0
        self._turn = {"prefills": 0, "prefilled_tokens": 0}
        self._stale.set()
        self._stale = threading.Event()

    def drop(self) -> None:
        """Cancel the preemptive generation, if any."""
        if self.preemption is not None:
            self.preemption.drop()
            self.stats["dropped"] += 1
            self.preemption = None

    # ------------------------------------------------------------------ the speaking side's
    def take(self, messages: list[Message], cancel: threading.Event) -> Preemption | None:
        """The preemptive generation for exactly ``messages``, now the turn's (``cancel`` stops it
        too); None if there is none or it was for another prompt (then it is dropped)."""
        pre, self.preemption = self.preemption, None
        if pre is None:
            return None
        if pre.messages != messages or pre.cancel.is_set():
            pre.drop()
            self.stats["dropped"] += 1
            return None
        pre.cancel.link(cancel)
        self.stats["kept"] += 1
        return pre
