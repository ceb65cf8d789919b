# SPDX-License-Identifier: GPL-3.0-or-later
"""The speaking side: a skill's reply to phrases to Piper to the sink, and the handle that stops it.

* :meth:`ReplySpeaker.deliver` is where every reply is said: a whole text (a tool's answer, a
  translation, the view) phrase by phrase, or the chat LLM's answer streamed token by token
  into phrases (the first phrase plays while the model writes the next), with the server's
  filler and the fallback to the local model when the server fails.
* :meth:`ReplySpeaker.say` is the one way to say a text; announcements (timers) use it too.
* :class:`ReplyHandle` is one reply in progress (livekit agents' ``SpeechHandle`` is the
  precedent): :meth:`ReplyHandle.interrupt` stops playback, drops what was synthesised but not
  played, cancels the task and sets the turn's cancel flag, so whatever is generating for the
  reply (the chat LLM, the translator, the tool-call LLM, the vision phrasing) stops between tokens.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .anticipate import Anticipator, Preemption
from .audio.echo import ReferenceSink
from .audio.io import AudioSink
from .captions import CaptionEvent
from .engines.remote import RemoteError
from .errors import AssistantError
from .phrases import PhraseChunker, clean_for_speech, is_speakable
from .router import REMOTE, Route, decide
from .skill import Reply, SkillContext, Turn
from .trace import TurnTrace

log = logging.getLogger(__name__)

NO_ANSWER = "Sorry, I don't have an answer to that."
REMOTE_LOST = "I lost the server, so here is my own answer."
"""Said when the server dies mid-answer after some of its phrases were spoken: the local model answers anew."""


class _Filler(str):
    """A phrase said while waiting for the server: spoken, but not part of the reply."""


@dataclass(frozen=True)
class _Fallback:
    """The server failed (``error``) after delivering ``delivered``: the local model answers now."""

    error: str
    delivered: str


class ReplyHandle:
    """One reply in progress: whether and when the wearer interrupted it, and how to stop it."""

    def __init__(self, sink: ReferenceSink | None = None, cancel: threading.Event | None = None) -> None:
        self.sink = sink
        self.cancel = cancel or threading.Event()
        """The turn's cancel flag: every generation for this reply checks it between tokens."""
        self.task: asyncio.Future[Any] | None = None
        self.interrupted = False
        self.reason = ""
        self.decided_t: float | None = None
        """Capture time of the chunk on which the barge-in was decided."""
        self.stopped_t: float | None = None
        """When playback was stopped (monotonic)."""
        self.flushed_t: float | None = None

    async def interrupt(self, reason: str, decided_t: float | None = None) -> dict[str, Any] | None:
        """Stop the reply: nothing more is played, playback stops, generation and the task are cancelled.

        Returns the record of the interruption (None if it was already interrupted)."""
        if self.interrupted:
            return None
        now = time.monotonic()
        self.interrupted, self.reason, self.decided_t = True, reason, decided_t
        self.cancel.set()  # the LLM, translator or tool call stops at its next token
        if self.sink is not None:
            self.sink.mute()  # a phrase synthesised from here on is dropped, never played
            self.sink.timeline.truncate(now)
        self.stopped_t = now
        if self.task is not None:
            self.task.cancel()
        if self.sink is not None:
            await self.sink.flush()
        self.flushed_t = time.monotonic()
        return {"reason": reason, "decided_t": decided_t, "stopped_t": now, "flushed_t": self.flushed_t}

    def cut(self, trace: TurnTrace) -> None:
        """Cut the trace's reply where playback stopped: only what the wearer heard, marked interrupted."""
        stopped = self.stopped_t if self.stopped_t is not None else time.monotonic()
        spoken: list[str] = []
        for track, label, start, end in trace.spans:
            if track != "speaker" or start >= stopped:
                continue
            if end <= stopped:
                spoken.append(label)
            else:  # the phrase being played: keep the words said so far (by time, word by word)
                words = label.split()
                spoken.append(" ".join(words[: int(len(words) * (stopped - start) / (end - start))]))
        trace.interrupted = True
        trace.outcome = "interrupted"
        trace.reply = " ".join(p for p in spoken if p)
        trace.reply_done = stopped
        trace.barge_in = {"reason": self.reason, "decided": self.decided_t, "stopped": stopped,
                          "generated": " ".join(trace.phrases)}


class ReplySpeaker:
    """Says replies: the phrasing, the voices, the volume, the server's filler and fallback."""

    def __init__(self, ctx: SkillContext, early: Anticipator | None = None) -> None:
        self.ctx = ctx
        self.early = early
        """Answers prepared before the turn ended (:mod:`.anticipate`); the chat takes one over."""

    # ------------------------------------------------------------------ one reply
    async def deliver(self, reply: Reply, turn: Turn, sink: AudioSink) -> None:
        """Say ``reply`` for ``turn`` (the one place a skill's answer becomes speech)."""
        trace = turn.trace
        if reply.chat:
            if turn.sequential:
                await self.chat_sequential(turn.text, sink, trace)
            else:
                await self.chat(turn.text, sink, trace, cancel=turn.cancel)
            return
        await self.say(reply.text, sink, trace, voice=reply.voice)
        trace.reply = trace.reply or " ".join(trace.phrases) or reply.text
        if reply.history:
            self.ctx.personal.conversation.add(turn.text, trace.reply)

    async def say(self, text: str, sink: AudioSink, trace: TurnTrace, *, voice: str | None = None) -> None:
        """Say a complete text phrase by phrase (the first phrase plays while the next is made), then drain.

        A voice that cannot be loaded (no espeak-ng voice for the language) falls back to the
        default voice rather than leaving the wearer with silence.
        """
        if voice is not None:
            try:
                await self.ctx.call("tts", self.ctx.engines.voice, voice, self.ctx.config)
            except AssistantError as err:
                log.warning("voice %s: %s; the default voice speaks", voice, err)
                voice = None
        if trace.first_token is None:
            trace.first_token = trace.first_phrase = time.monotonic()
        chunker = PhraseChunker(first_phrase_words=self.ctx.config.tts.first_phrase_words)
        for phrase in (chunker.push(text + " ") + chunker.flush()) or [text]:
            trace.phrases.append(phrase)
            await self._phrase(phrase, sink, trace, voice=voice)
        await sink.drain()
        trace.reply_done = time.monotonic()

    async def announce(self, text: str, sink: AudioSink, trace: TurnTrace) -> None:
        """A due timer or reminder, said between turns (not a reply: nothing goes into the history)."""
        trace.outcome = "announcement"
        await self._phrase(text, sink, trace)
        await sink.drain()
        trace.reply = text
        trace.phrases = [text]
        trace.reply_done = time.monotonic()

    async def _phrase(self, text: str, sink: AudioSink, trace: TurnTrace, *, filler: bool = False,
                      voice: str | None = None) -> None:
        """Synthesise one phrase and hand it to the sink (playback starts with the first).

        A ``filler`` is played but is not the answer: it does not count as the reply's first audio.
        ``voice`` names another voice than the persona's; the volume is applied.
        """
        engines, personal = self.ctx.engines, self.ctx.personal
        assert engines.tts is not None
        started = time.monotonic()
        voice = voice or personal.current_voice
        trace.voice = voice
        engine: Any = engines.tts if voice is None else await self.ctx.call(
            "tts", engines.voice, voice, self.ctx.config)
        audio = await self.ctx.call("tts", engine.synthesize, text)
        if personal.gain != 1.0 and audio.size:
            audio = np.clip(audio * personal.gain, -1.0, 1.0).astype(np.float32)
        now = time.monotonic()
        trace.span("tts", text, started, now)
        if audio.size == 0:
            return
        if trace.playback_end is None and trace.tool is None and isinstance(sink, ReferenceSink):
            # The turn ended early and the wearer may still go on: nothing is heard until the
            # listener says the turn stands (its take-back window closed), so it can be taken back.
            # A turn that chose a tool stands anyway (the tool may have acted): it never waits.
            held = await sink.ready()
            if held > 0.0:
                trace.held_ms = round(held * 1000.0, 1)
                # Its own track, not "speaker": ReplyHandle.cut reads speaker spans as the words heard.
                trace.span("hold", "held: the wearer may go on", now, now + held)
                self.ctx.stats.replies_held += 1
                now = time.monotonic()
        if trace.first_audio is None and not filler:
            trace.first_audio = now
        # Playback of this phrase begins once the previous phrase has finished playing.
        play_from = max(now, trace.playback_end or now)
        trace.playback_end = play_from + len(audio) / engine.sample_rate
        trace.span("speaker", text, play_from, trace.playback_end)
        if not filler and self.ctx.captions.listeners:
            await self.ctx.captions.emit(CaptionEvent("answer", text, "", final=False, turn=trace.turn))
        await sink.write(audio, engine.sample_rate)

    # ------------------------------------------------------------------ the chat LLM
    def route(self, question: str) -> Route:
        """Where ``question`` goes (see :mod:`.router`)."""
        return decide(question, self.ctx.config.remote)

    async def chat(self, question: str, sink: AudioSink, trace: TurnTrace, *,
                   cancel: threading.Event | None = None) -> TurnTrace:
        """Answer ``question`` aloud into ``sink``, streaming LLM -> phrases -> TTS."""
        engines, personal = self.ctx.engines, self.ctx.personal
        assert engines.llm is not None and engines.tts is not None, "call load() first"
        loop = asyncio.get_running_loop()
        route = self.route(question)
        question = route.question  # an explicit "ask the big model" is not part of the question
        now = time.monotonic()
        trace.span("route", f"{route.target}: {route.reason}", now, now)
        messages = personal.conversation.messages(question, engines.llm.count_tokens,
                                                  memories=personal.recalled(question))
        tokens: asyncio.Queue[str | _Fallback | None] = asyncio.Queue()
        cancel = cancel if cancel is not None else threading.Event()
        llm = engines.llm
        remote = engines.remote if route.target == REMOTE else None
        tts_cfg = self.ctx.config.tts
        remote_cfg = self.ctx.config.remote

        def emit(piece: str) -> None:
            loop.call_soon_threadsafe(tokens.put_nowait, piece)

        def generate() -> str:
            started = time.monotonic()
            try:
                if remote is not None:
                    try:
                        reply = remote.stream(messages, emit, cancel=cancel)
                        trace.span("llm", f"remote generation ({remote.endpoint})", started, time.monotonic())
                        return reply
                    except RemoteError as err:
                        trace.span("llm", f"remote failed: {err}", started, time.monotonic())
                        log.warning("turn %d: %s; the local model answers", trace.turn, err)
                        loop.call_soon_threadsafe(tokens.put_nowait, _Fallback(str(err), err.delivered))
                        if cancel.is_set():
                            return err.delivered
                        started = time.monotonic()
                try:
                    return llm.stream(messages, emit, cancel=cancel)
                finally:
                    trace.span("llm", "generation", started, time.monotonic())
            finally:
                loop.call_soon_threadsafe(tokens.put_nowait, None)

        phrases: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = asyncio.create_task(self._speak_queue(phrases, sink, trace))
        # The answer may already be on its way: generated since the pause for this very prompt.
        pre: Preemption | None = None
        if remote is None and self.early is not None:
            pre = self.early.take(messages, cancel)
        source: asyncio.Queue[Any] = tokens
        if pre is not None and pre.future is not None:
            source, generation = pre.tokens, pre.future
        else:
            pre = None
            generation = engines.start("llm", generate)
        chunker = PhraseChunker(first_phrase_words=tts_cfg.first_phrase_words)
        filler = (asyncio.create_task(self._filler(phrases, trace)) if remote is not None
                  and remote_cfg.filler_after_s > 0 else None)
        try:
            while (piece := await source.get()) is not None:
                if isinstance(piece, _Fallback):
                    now = time.monotonic()
                    trace.span("route", f"fallback to local: {piece.error}", now, now)
                    # What the server said but was not yet spoken is dropped; what was spoken stands,
                    # and the local model answers the question anew after saying why.
                    chunker = PhraseChunker(first_phrase_words=tts_cfg.first_phrase_words)
                    if trace.phrases:
                        await self._queue_phrase(REMOTE_LOST, phrases, trace)
                    continue
                if trace.first_token is None:
                    trace.first_token = time.monotonic()
                for phrase in chunker.push(piece):
                    await self._queue_phrase(phrase, phrases, trace)
            reply = await generation
            for phrase in chunker.flush():
                await self._queue_phrase(phrase, phrases, trace)
            if not trace.phrases:
                # The model said nothing speakable: say so rather than stay silent.
                reply = NO_ANSWER
                await self._queue_phrase(NO_ANSWER, phrases, trace)
            if filler is not None:
                filler.cancel()
            await phrases.put(None)
            await speaker
            await sink.drain()  # the turn ends when the wearer has heard it all
        except BaseException:
            cancel.set()
            speaker.cancel()
            if filler is not None:
                filler.cancel()
            raise
        if pre is not None:
            ended = pre.ended or time.monotonic()
            trace.span("llm", "preemptive generation", pre.started, ended)
            trace.early = {**(trace.early or {}), "preemptive": "kept",
                           "generated_before_turn_end_ms": round(max(0.0, min(ended, trace.end_detected or ended)
                                                                      - pre.started) * 1000, 1)}
        trace.reply = " ".join(trace.phrases) if trace.phrases else reply.strip()
        trace.reply_done = time.monotonic()
        personal.conversation.add(question, trace.reply)
        return trace

    async def _queue_phrase(self, phrase: str, phrases: asyncio.Queue[str | None], trace: TurnTrace) -> None:
        if trace.first_phrase is None:
            trace.first_phrase = time.monotonic()
        trace.phrases.append(phrase)
        await phrases.put(phrase)

    async def _filler(self, phrases: asyncio.Queue[str | None], trace: TurnTrace) -> None:
        """Say the filler ("One moment.") if the server's first token is late; nothing if it is on time."""
        await asyncio.sleep(self.ctx.config.remote.filler_after_s)
        if trace.first_token is None and trace.first_phrase is None:
            now = time.monotonic()
            trace.span("route", "filler", now, now)
            await phrases.put(_Filler(self.ctx.config.remote.filler))

    async def _speak_queue(self, phrases: asyncio.Queue[str | None], sink: AudioSink, trace: TurnTrace) -> None:
        while (phrase := await phrases.get()) is not None:
            await self._phrase(phrase, sink, trace, filler=isinstance(phrase, _Filler))

    async def chat_sequential(self, question: str, sink: AudioSink, trace: TurnTrace) -> TurnTrace:
        """The plain pipeline: whole reply from the LLM, then the whole reply through TTS."""
        engines, personal = self.ctx.engines, self.ctx.personal
        assert engines.llm is not None
        llm = engines.llm
        messages = personal.conversation.messages(question, llm.count_tokens, memories=personal.recalled(question))
        started = time.monotonic()
        reply = await self.ctx.call("llm", llm.stream, messages, lambda _piece: None)
        trace.first_token = trace.first_phrase = time.monotonic()
        trace.span("llm", "generation", started, trace.first_phrase)
        text = clean_for_speech(reply) if is_speakable(clean_for_speech(reply)) else NO_ANSWER
        trace.phrases = [text]
        await self._phrase(text, sink, trace)
        await sink.drain()
        trace.reply = text
        trace.reply_done = time.monotonic()
        personal.conversation.add(question, text)
        return trace
