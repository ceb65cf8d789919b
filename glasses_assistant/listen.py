# SPDX-License-Identifier: GPL-3.0-or-later
"""The listening side: microphone chunks to turns, and the worker that answers them in order.

For each 32 ms chunk the :class:`Listener` runs the wake word (when waiting for it), the VAD,
the echo guard (when the wearer may talk over the assistant) and the end-of-turn detector
(:mod:`.turn`); the turn controller (:mod:`.controller`) decides what opens a turn, what
counts, and when the wearer interrupts. At the first pause it starts a speculative
transcription and asks the acoustic end-of-turn model, and ends the turn as soon as the
end-of-turn policy (:mod:`.turn_policy`) judges the wearer finished, within a bounded patience.

What it hears becomes a typed item on one queue, answered one at a time by the turn worker:
:class:`SpokenTurn` (transcribed, then routed by :mod:`.dispatch`), :class:`ButtonTurn` (a tap
that asks about the view) and :class:`Announcement` (a due timer, said between replies, never
over one). A barge-in goes to the reply's :class:`~.reply.ReplyHandle`, which stops everything
generating for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import lifecycle
from .audio.echo import EchoGuard, ReferenceSink
from .audio.io import AudioSink, AudioSource, write_wav
from .audio.wake_verify import WAKE_CHECK_MS, WRITTEN, PeakWatch, judge, tuning
from .audio.wakeword import WakeWordDetector
from .camera import Camera
from .config import VadConfig
from .controller import Arm, AskView, BargeInPolicy, Disarm, EndTurn, Interrupt, TurnController, strip_wake_phrase
from .dispatch import Dispatcher
from .engines.stt import Transcript
from .errors import AssistantError
from .reply import ReplyHandle, ReplySpeaker
from .skill import SkillContext, Turn
from .trace import TurnTrace
from .turn import EndOfTurnDetector, SpeechPaused, SpeechResumed, SpeechStarted, TurnEnded, TurnEvent, sounds_finished
from .turn_policy import EndOfTurnPolicy, hangs
from .vision.skill import BUTTON_QUESTION, VisionSkill

log = logging.getLogger(__name__)

VOICE_ASK_CHUNKS = 1
"""Silent chunks after the last word at which Smart Turn is asked (for the doubtful hold, which asks
it at every pause) ahead of the pause, which comes at ``[vad] pause_ms`` (100 ms by default) or as
soon as Smart Turn hears the voice finished."""

Transcribe = Callable[[np.ndarray, threading.Event], Transcript]
"""The recogniser the loop uses now (blocking, on the stt worker): the translation skill's choice."""


# ---------------------------------------------------------------------------- the queue's items
@dataclass(frozen=True)
class Speculation:
    """A transcription started at the first pause, before the turn was known to end."""

    future: asyncio.Future[Transcript]
    cancel: threading.Event
    samples: int
    started: float

    def sounds_finished(self) -> bool:
        """Done, and its text reads as a finished sentence."""
        if not self.future.done() or self.future.cancelled() or self.future.exception() is not None:
            return False
        return sounds_finished(self.future.result().text)

    def text(self) -> str | None:
        """The transcript, once it is ready (None before, or if it failed or was cancelled)."""
        if not self.future.done() or self.future.cancelled() or self.future.exception() is not None:
            return None
        return self.future.result().text

    def discard(self) -> None:
        """The wearer went on speaking: stop it between segments and drop its result."""
        self.cancel.set()
        self.future.add_done_callback(lambda f: f.cancelled() or f.exception())


@dataclass(frozen=True)
class SpokenTurn:
    """The wearer finished speaking: the audio, and the speculative transcript if one is running."""

    ended: TurnEnded
    speech_start: float | None
    speculation: Speculation | None
    strip: str | None = None
    """The wake phrase to take off the transcript (the turn was opened by it)."""


@dataclass
class EarlyEnd:
    """A turn just ended early (the policy judged it finished): taken back if the wearer goes on
    before any of its reply is heard (:meth:`Listener._take_back`)."""

    item: SpokenTurn
    t: float
    silence_chunks: int
    """The pause so far when the turn ended (chunks since the wearer's last word)."""
    played_until: float
    """Where the speaker's timeline ended when the turn ended: audio written past it was heard."""
    since: list[np.ndarray] = dataclasses.field(default_factory=list)
    """Every chunk heard since, so that the resumed turn holds the pause too."""

    def pause_ms(self) -> float:
        """Audio since the wearer's last word (the pause, and any speech heard after it)."""
        return (self.silence_chunks + len(self.since)) * 32.0


@dataclass(frozen=True)
class ButtonTurn:
    """A tap that asks about the view (a question with no speech)."""

    question: str = BUTTON_QUESTION


@dataclass(frozen=True)
class Announcement:
    """A due timer or reminder, queued like a turn so that it is said between replies."""

    text: str
    timer_id: int


QueueItem = SpokenTurn | ButtonTurn | Announcement


@dataclass
class ListenOptions:
    """How one :meth:`Listener.run` treats its input (see :meth:`..pipeline.Assistant.serve`)."""

    on_turn: Callable[[TurnTrace], None] | None = None
    half_duplex: bool = False
    sequential: bool = False
    max_turns: int | None = None
    camera: Camera | None = None
    buttons: AsyncIterator[Any] | None = None
    listen_mode: str | None = None
    barge_in: bool = False


class Listener:
    """One listening session over ``source``, answering into ``sink`` (see the module docstring)."""

    def __init__(self, ctx: SkillContext, dispatcher: Dispatcher, speaker: ReplySpeaker, vision: VisionSkill,
                 transcribe: Transcribe, source: AudioSource, sink: AudioSink, options: ListenOptions,
                 interruptions: list[dict[str, Any]]) -> None:
        engines = ctx.engines
        assert engines.vad is not None and engines.stt is not None, "call load() first"
        self.ctx, self.dispatcher, self.speaker, self.vision = ctx, dispatcher, speaker, vision
        self.transcribe = transcribe
        self.source = source
        self.opts = options
        self.interruptions = interruptions
        """Every barge-in: reason, when it was decided (capture time) and when playback stopped."""
        config = ctx.config
        vcfg, lcfg, bcfg = config.vad, config.listen, config.bargein
        self.mode = options.listen_mode or (lcfg.mode if lcfg.mode != "auto" else "always")
        realtime = bool(getattr(source, "realtime", True))
        self.can_take_back = vcfg.take_back_ms > 0 and realtime
        """A file read faster than real time has no "before the reply is heard": its turns stand."""
        if not realtime and vcfg.end_policy in ("combined", "smart-turn"):
            # Nor can the models answer within its pauses in audio time (which runs ahead of them), so
            # which one answers first would be a race: the transcript and silence decide, as before.
            vcfg = dataclasses.replace(vcfg, end_policy="punctuation", patience_ms=vcfg.end_silence_ms)
        # The doubtful hold asks the voice too: Smart Turn at every pause, beside the speculative Whisper.
        ask = self._holds() == "doubtful" and vcfg.hold_voice_below > 0
        self.policy = end_of_turn_policy(vcfg, acoustic=engines.turn is not None, eager=self.can_take_back,
                                         ask_always=ask)
        self._acoustic: asyncio.Future[float] | None = None
        self._end_judged: tuple[Speculation, asyncio.Future[float | None] | None] | None = None
        """The chat LLM's judgement of whether the words end with a speculation's transcript
        (``[vad] hold_below``): asked when it is ready, read at the early end."""
        self._pause_audio: np.ndarray | None = None
        self._pause_end_t = 0.0
        self._voice_early: tuple[float, asyncio.Future[float]] | None = None
        """Smart Turn asked at the first silence of a pause (:meth:`_ask_voice_early`), keyed by the
        speech end it heard: the pause's own ask takes it over when the pause comes."""
        self._early: EarlyEnd | None = None
        self._taken_back: set[int] = set()
        """ids of queued turns taken back: the worker skips them, or stops answering them."""
        self._answering: SpokenTurn | None = None
        self._answer_trace: TurnTrace | None = None
        self.detector = EndOfTurnDetector(
            min_speech_ms=vcfg.min_speech_ms, pause_ms=vcfg.pause_ms,
            end_silence_ms=self.policy.max_silence_ms, pre_roll_ms=vcfg.pre_roll_ms,
            max_utterance_ms=int(vcfg.max_utterance_s * 1000),
        )
        self.controller = TurnController(
            self.mode, barge_in=BargeInPolicy(enabled=options.barge_in, min_speech_ms=bcfg.min_speech_ms,
                                              window_ms=bcfg.window_ms),
            follow_up_s=lcfg.follow_up_s, listen_timeout_s=lcfg.timeout_s, watchdog_s=lcfg.watchdog_s,
        )
        self.out = sink if isinstance(sink, ReferenceSink) else ReferenceSink(sink)
        self.guard = EchoGuard(self.out.timeline, max_delay_ms=bcfg.echo_max_delay_ms, margin_db=bcfg.echo_margin_db,
                               initial_coupling_db=bcfg.echo_initial_db) if options.barge_in else None
        self.wake: WakeWordDetector | None = engines.wake_detector(lcfg) if self.mode == "wake" else None
        self.wake_tuning = tuning(lcfg.wake_word, lcfg.wake_sensitivity)
        self._peak: PeakWatch | None = None
        """From a firing of a ``peak`` tuning until its probability peaks: the phrase is being said."""
        self._wake_fired_t = 0.0
        self.pre_roll_chunks = max(1, -(-lcfg.wake_pre_roll_ms // 32))
        self.check_chunks = -(-WAKE_CHECK_MS // 32) if lcfg.wake_verify else 0
        self.recent: deque[np.ndarray] = deque(maxlen=max(self.pre_roll_chunks, self.check_chunks))
        """The last chunks heard while waiting: the wake word and maybe the request's first words."""
        self.queue_mode = not options.barge_in and not options.half_duplex and self.mode == "always"
        """Files: speech heard during a reply is answered after it (nothing is dropped)."""
        self.traces: list[TurnTrace] = []
        self.turns: asyncio.Queue[QueueItem | None] = asyncio.Queue()
        self.busy = asyncio.Event()
        self.view_asked = False
        """A tap's question about the view is queued and not yet being answered."""
        self.speculation: Speculation | None = None
        self.speech_start: float | None = None
        self.reply: ReplyHandle | None = None

    # ------------------------------------------------------------------ the session
    async def run(self) -> list[TurnTrace]:
        """Listen until the source ends (or ``max_turns`` are answered); the traces of every turn."""
        engines, opts = self.ctx.engines, self.opts
        assert engines.vad is not None
        if self.wake is not None:
            await self.ctx.call("vad", self.wake.reset)
        await self.ctx.call("vad", engines.vad.reset)
        worker = asyncio.create_task(self._answer_turns())
        timer_task = asyncio.create_task(self._watch_timers()) if self.ctx.personal.memory is not None else None
        button_task = asyncio.create_task(self._listen_buttons()) if opts.buttons is not None else None
        last_t = time.monotonic()
        try:
            async for chunk in self.source.chunks():
                self.ctx.stats.chunks += 1
                lifecycle.beat()  # the service's watchdog pings only while this loop moves
                last_t = chunk.t_end
                if worker.done():
                    worker.result()  # re-raise a crash of the turn worker here
                await self._hear(chunk.samples, chunk.t_end)
            for event in self.detector.finish(last_t):
                if isinstance(event, TurnEnded):
                    self._submit(event, last_t)
        finally:
            self._stands()  # nothing more will be heard: a held reply may be said
            if button_task is not None:
                button_task.cancel()
            if timer_task is not None:
                timer_task.cancel()
            await self.turns.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        return self.traces

    async def _hear(self, samples: np.ndarray, t: float) -> None:
        """One microphone chunk (captured up to ``t``)."""
        engines, ctl, detector = self.ctx.engines, self.controller, self.detector
        assert engines.vad is not None
        vcfg = self.ctx.config.vad
        await self._act(ctl.tick(t), t)
        replying = self.busy.is_set() or not self.turns.empty()
        if self.opts.half_duplex and replying:
            self.ctx.stats.ignored_chunks += 1
            if detector.state != "idle":
                detector.reset()
                await self.ctx.call("vad", engines.vad.reset)
            return
        self.recent.append(samples)
        if not ctl.armed and not ctl.replying and not replying:
            # Waiting for the wake word or a tap: nothing heard now becomes a turn.
            if self.wake is not None and ctl.wants_wake_word:
                await self._listen_for_wake(t, samples)
            return
        self._peak = None
        prob = await self.ctx.call("vad", engines.vad, samples)
        voiced = prob >= vcfg.threshold
        if self.guard is not None:
            if voiced:
                voiced = self.guard.is_wearer(samples, t)
            else:
                self.guard.observe(samples, t)  # quiet chunks measure the echo path too
        if ctl.replying:
            await self._act(ctl.voice(t, voiced), t)
        if self._early is not None:
            if self._early.pause_ms() > self._take_back_window_ms():
                self._stands()  # a pause this long was the end of a turn: it stands
            else:
                self._early.since.append(samples)
                if voiced and self.out.timeline.end <= self._early.played_until:
                    # Maybe the wearer going on: the reply does not start over their voice while the
                    # detector decides (a cough delays it by this much at most, and is not a turn).
                    self.out.hold_at_least((vcfg.min_speech_ms + 32.0) / 1000.0)
                    self.ctx.stats.onset_holds += 1
        for event in detector.process(samples, voiced, t):
            if isinstance(event, SpeechStarted):
                self.speech_start = event.t
                ctl.speech_started(t)
                if self.speaker.early is not None:
                    self.speaker.early.turn_started()
            elif isinstance(event, SpeechPaused):
                self._paused(event)
            elif isinstance(event, SpeechResumed):
                self._drop_speculation()
            elif isinstance(event, TurnEnded):
                self._submit(event, t)
            self._judge(event)  # after the speculation started (or not): eager waits for its words
            if isinstance(event, SpeechStarted) and self._early is not None:
                await self._take_back(t)
        if voiced and detector.in_speech:
            self._prefill_while_speaking()
        else:
            self._ask_voice_early()
        self._end_early(t)

    async def _listen_for_wake(self, t: float, samples: np.ndarray) -> None:
        """One chunk for the wake word detector: on a firing (or, with a ``peak`` tuning, once the
        detector's probability has peaked after one), the check, then listening."""
        assert self.wake is not None
        fired = await self.ctx.call("vad", self.wake.process, samples)
        p = self.wake.last_probability
        if fired:
            self.ctx.stats.wake_words += 1
            self._wake_fired_t = t
            if self.wake_tuning.peak:
                self._peak = PeakWatch(p)
                return  # the phrase may still be going on ("Hey My-"): wait for its end
            top = p
        elif self._peak is not None and self._peak.step(p):
            top, self._peak = self._peak.top, None
        else:
            return
        if await self._wake_confirmed(self.wake_tuning.min_score_at(top)):
            await self._act(self.controller.wake(t), t)
            # From the capture of the chunk it first fired on (a peak tuning: its wait included).
            self.ctx.stats.wake_to_listening_s.append(time.monotonic() - self._wake_fired_t)

    async def _wake_confirmed(self, min_score: float) -> bool:
        """The detector fired: does the recogniser hear the wake phrase in the pre-roll too, with
        at least ``min_score`` (the tuning's bar for how sure the detector was)?

        A rejected firing is counted and forgotten: the pre-roll is dropped, nothing becomes a
        turn, and what was heard is neither logged nor kept (only the score is logged).
        The chunks that arrive meanwhile wait in the source's queue, so a request said in the
        same breath loses nothing.
        """
        assert self.wake is not None
        if not self.check_chunks:
            return True
        stt, stats = self.ctx.engines.stt, self.ctx.stats
        assert stt is not None
        clip = np.concatenate(list(self.recent)[-self.check_chunks:])
        t0 = time.monotonic()
        try:
            scores = await self.ctx.call("stt", stt.phrase_scores, clip, WRITTEN[self.wake.wake_word])
        except Exception:  # keep serving; unchecked, the firing does not wake (a tap still does)
            log.exception("the wake word's second stage failed: not waking")
            stats.errors += 1
            scores = []
        check = judge(scores, min_score, time.monotonic() - t0)
        stats.wake_check_s.append(check.elapsed_s)
        if check.accepted:
            return True
        stats.wake_rejected += 1
        self.recent.clear()
        log.info("wake word fired but the recogniser did not hear %r (score %.2f < %.2f): not waking",
                 self.wake.phrase, check.score, min_score)
        return False

    # ------------------------------------------------------------------ the answer prepared early
    def _anticipating(self) -> bool:
        """Whether the answer may be prepared before the turn ends (:mod:`.anticipate`): not in the
        plain sequential pipeline, and only while nothing else is being answered."""
        free = not self.busy.is_set() or (self.reply is not None and self.reply.interrupted)
        return self.speaker.early is not None and not self.opts.sequential and free and self.turns.empty()

    def _prefill_while_speaking(self) -> None:
        if self._anticipating():
            assert self.speaker.early is not None
            self.speaker.early.speaking(self.detector.speech_ms, self.detector.utterance, self.transcribe)

    # ------------------------------------------------------------------ end of turn
    def _paused(self, event: SpeechPaused) -> None:
        """Transcribe what we have now; if the wearer really has finished, the transcript is
        ready (or nearly) when the turn ends."""
        if self.speaker.early is not None:
            self.speaker.early.pausing()  # partial transcriptions and prefills give way to this one
        free = not self.busy.is_set() or (self.reply is not None and self.reply.interrupted)
        if not (self.ctx.config.stt.speculative and not self.opts.sequential and free and self.turns.empty()):
            return
        self.speculation = spec = self._speculate(event.audio)

        def ready(future: asyncio.Future[Transcript]) -> None:
            # Decide the moment the transcript is ready, not at the next chunk.
            if self.speculation is spec:
                if self._anticipating() and not future.cancelled() and future.exception() is None:
                    assert self.speaker.early is not None
                    text = future.result().text
                    if self._holds() == "doubtful" and not hangs(text):  # hanging: no early end to hold
                        self._end_judged = (spec, self.speaker.early.judge_end(text))  # first: the answer reuses it
                    self.speaker.early.paused(future.result())  # start answering it, not aloud yet
                self._end_early(time.monotonic())

        spec.future.add_done_callback(ready)

    def _speculate(self, audio: np.ndarray) -> Speculation:
        cancel = threading.Event()
        started = time.monotonic()
        future = self.ctx.engines.start("stt", self.transcribe, audio, cancel)
        self.ctx.stats.speculative_started += 1
        return Speculation(future, cancel, len(audio), started)

    def _drop_speculation(self) -> None:
        if self.speculation is not None:
            self.speculation.discard()
            if self.speaker.early is not None:
                self.speaker.early.resumed()  # an answer started for that pause is stale too
        self.speculation = None

    def _judge(self, event: TurnEvent) -> None:
        """Keep the end-of-turn policy abreast of the detector; at a pause, ask the acoustic model
        (on its own worker, beside the speculative transcription) whether the wearer has finished,
        unless the policy first wants the transcript's word."""
        policy = self.policy
        if isinstance(event, SpeechStarted):
            policy.started()
            self._acoustic = self._voice_early = None
        elif isinstance(event, SpeechResumed):
            policy.resumed(event.t)
        elif isinstance(event, SpeechPaused):
            self._pause_audio, self._pause_end_t = event.audio, event.speech_end_t
            spec = self.speculation
            if policy.paused(event.speech_end_t, self.detector.silence_chunks * 32.0,
                             transcribing=spec is not None and not spec.future.done()):
                self._ask_acoustic()

    def _ask_voice_early(self) -> None:
        """With the model asked at every pause (``ask_always``), ask it at the first silent chunk
        (:data:`VOICE_ASK_CHUNKS`), before the pause: on two threads it answers in about 25 ms, and
        when it hears the voice finished the pause starts at once (:meth:`EndOfTurnDetector.pause_now`),
        so the speculative Whisper starts about 40 ms sooner than ``pause_ms`` would start it, and
        never beside Smart Turn. (Asked at the pause, beside Whisper, it took up to 90 ms there and
        made the transcript up to 50 ms later; asked after it, beside the chat LLM's pass, it made the
        first token 50 ms later: on two cores a model beside another costs its whole run.) Its answer
        is the pause's: the pause takes it over. Wasted only when the wearer goes on at once."""
        detector, turn_model = self.detector, self.ctx.engines.turn
        if not self.policy.ask_always or turn_model is None or detector.silence_chunks != VOICE_ASK_CHUNKS:
            return
        end_t = detector.speech_end_t
        if self._voice_early is not None and self._voice_early[0] == end_t:
            return
        future = self.ctx.engines.start("turn", turn_model.probability, detector.utterance())
        self._voice_early = (end_t, future)
        self.ctx.stats.turn_model_calls += 1

        def heard(done: asyncio.Future[float]) -> None:
            if self._voice_early is None or self._voice_early[1] is not done or done.cancelled() \
                    or done.exception() is not None or done.result() < self.policy.threshold:
                return  # taken over by the pause, a new turn, a failure, or a voice that goes on
            if detector.speech_end_t != end_t:
                return  # the wearer spoke again meanwhile
            for event in detector.pause_now():
                self.ctx.stats.early_pauses += 1
                self._paused(event)
                self._judge(event)
                self._end_early(time.monotonic())

        future.add_done_callback(heard)

    def _ask_acoustic(self) -> None:
        """Smart Turn on the latest pause's audio (or the answer already asked at its first silence);
        its answer is decided on the moment it comes."""
        turn_model, audio, early = self.ctx.engines.turn, self._pause_audio, self._voice_early
        self._voice_early = None
        if turn_model is None or audio is None:
            self.policy.acoustic(None)
            return
        if early is not None and early[0] == self._pause_end_t:
            self._acoustic = future = early[1]
        else:
            self._acoustic = future = self.ctx.engines.start("turn", turn_model.probability, audio)
            self.ctx.stats.turn_model_calls += 1

        def judged(done: asyncio.Future[float]) -> None:
            if self._acoustic is not done:
                return  # a later pause (or turn) asked again: this answer is stale
            self._acoustic = None
            error = None if done.cancelled() else done.exception()
            if error is not None:
                log.warning("end-of-turn model failed, deciding by the transcript: %s", error)
            self.policy.acoustic(None if done.cancelled() or error is not None else done.result())
            self._end_early(time.monotonic())

        future.add_done_callback(judged)

    def _end_early(self, t_end: float) -> None:
        """End the turn during a pause if the end-of-turn policy says the wearer has finished."""
        silence = self.detector.silence_chunks
        if silence == 0:
            return  # speaking, or no turn: a turn is never cut while the wearer speaks
        spec = self.speculation
        verdict = self.policy.decide(silence * 32.0, spec.text() if spec is not None else None,
                                     transcribing=spec is not None and not spec.future.done())
        if verdict.reason == "ask":
            self._ask_acoustic()
        if not verdict.end:
            return
        ended = self.detector.end_now(t_end)
        if ended is not None:
            early = verdict.reason == "finished"
            self.ctx.stats.early_ends += early
            item = self._submit(dataclasses.replace(ended, early=early), t_end)
            if early and item is not None and self.can_take_back:
                self._early = EarlyEnd(item, t_end, silence, self.out.timeline.end)
                self._hold(spec, silence)

    def _holds(self) -> str:
        """Which replies to early ends wait for the take-back window: ``always`` (``[vad]
        hold_reply``), ``doubtful`` (``hold_below``: those whose words the chat LLM doubts end
        there) or ``never``. Half duplex hears nothing while replying, so it never holds."""
        vcfg = self.ctx.config.vad
        if not self.can_take_back or self.opts.half_duplex:
            return "never"
        return "always" if vcfg.hold_reply else "doubtful" if vcfg.hold_below > 0 else "never"

    def _hold(self, spec: Speculation | None, silence: int) -> None:
        """Hold the reply to the turn that just ended early until the take-back window closes
        (:meth:`_stands`); with ``doubtful``, let it go the moment the chat LLM judges that the
        words end there (its probability of the template's end of turn at least ``hold_below``),
        which it usually does before the answer's first phrase is ready, so a plain question
        costs nothing. The bound is only a guard against a listener that stops hearing."""
        mode = self._holds()
        judged = None
        if mode == "doubtful" and self._end_judged is not None and self._end_judged[0] is spec:
            judged = self._end_judged[1]
        if mode == "never" or (mode == "doubtful" and judged is None):
            return  # doubtful: nothing to judge (a tool, translation, the camera, a server): not held
        self.out.hold((self._take_back_window_ms() - silence * 32.0) / 1000.0 + 1.0)
        if judged is None:
            return  # always
        early, vcfg, stats = self._early, self.ctx.config.vad, self.ctx.stats
        # Let go when the words and the voice both sound finished (None: not known yet); one that
        # doubts keeps it held until the take-back window closes.
        trusted: dict[str, bool | None] = {"words": None, "voice": True}

        def let_go(kind: str, ok: bool) -> None:
            if self._early is not early:
                return
            trusted[kind] = ok
            if kind == "voice" and not ok:
                stats.voice_doubted += 1
            if all(trusted.values()):
                self.out.release()  # the words end there, and so did the voice: heard as soon as ready
                stats.holds_released += 1

        def words(f: asyncio.Future[float | None]) -> None:
            p = None if f.cancelled() or f.exception() is not None else f.result()
            if p is not None:
                stats.end_of_words_p.append(round(p, 4))
            log.debug("end of the words judged %s (hold below %.2f)", "unknown" if p is None else f"{p:.3f}",
                      vcfg.hold_below)
            let_go("words", p is not None and p >= vcfg.hold_below)

        def voice(f: asyncio.Future[float]) -> None:
            p = None if f.cancelled() or f.exception() is not None else f.result()
            let_go("voice", p is None or p >= vcfg.hold_voice_below)  # failed: the words decide

        if self.policy.ask_always:
            if self.policy.probability is not None:
                let_go("voice", self.policy.probability >= vcfg.hold_voice_below)
            elif self._acoustic is not None:
                trusted["voice"] = None
                self._acoustic.add_done_callback(voice)
        judged.add_done_callback(words)

    def _take_back_window_ms(self) -> float:
        """Audio after the last word within which the wearer heard going on takes the turn back: the
        pause (``take_back_ms``) plus the speech the detector needs to say so (``min_speech_ms``)."""
        vcfg = self.ctx.config.vad
        return vcfg.take_back_ms + vcfg.min_speech_ms

    def _stands(self) -> None:
        """The turn that ended early can no longer be taken back: its reply, if held, may be heard."""
        self._early = None
        self.out.release()

    async def _take_back(self, t: float) -> None:
        """The wearer speaks again soon after a turn ended early: if none of its reply has been heard
        yet, that turn is taken back (skipped, or its answer stopped) and goes on as this one, so a
        mid-sentence pause is answered once, as one question."""
        early = self._early
        assert early is not None
        self._stands()
        # The pause, from the last word to the first of the new speech (the detector heard
        # min_speech_ms of it before saying so): a longer one was the end of a turn.
        if early.pause_ms() > self._take_back_window_ms() or self.out.timeline.end > early.played_until:
            return
        item = early.item
        trace = self._answer_trace if self._answering is item else None
        if trace is not None and trace.tool is not None:
            return  # a tool was chosen and may have acted (a timer set): that turn stands
        self._taken_back.add(id(item))
        if self._answering is item and self.reply is not None:
            await self.reply.interrupt("taken back", t)
        self.ctx.stats.taken_back += 1
        if self.speaker.early is not None:
            self.speaker.early.resumed()  # an answer prepared for the first half is stale too
        self.detector.restore([item.ended.audio, *early.since])
        self.speech_start = item.speech_start
        log.info("turn taken back: the wearer went on after %.0f ms", (t - early.t) * 1000)

    def _submit(self, ended: TurnEnded, t: float) -> SpokenTurn | None:
        """A turn ended: answer it if the controller says it counts (the item queued, or None)."""
        ctl = self.controller
        by = ctl.armed_by
        item = None
        self._stands()  # a later turn ended: the one before stands
        if ctl.turn_ended(t) or self.queue_mode:
            strip = self.wake.phrase if self.wake is not None and by == "wake" else None
            item = SpokenTurn(ended, self.speech_start, self.speculation, strip)
            self.turns.put_nowait(item)
        else:
            self.ctx.stats.dropped_turns += 1  # heard while not listening (a cough over a reply)
            if self.speculation is not None:
                self.speculation.discard()
        self.speculation, self.speech_start = None, None
        return item

    # ------------------------------------------------------------------ the controller's actions
    async def _act(self, actions: list[Any], t: float) -> None:
        for action in actions:
            if isinstance(action, Arm):
                self._drop_speculation()
                self.speech_start = None
                # What was just heard (the wake word and maybe the request's first words) is pre-roll.
                self.detector.prime(list(self.recent)[-self.pre_roll_chunks:])
            elif isinstance(action, Disarm):
                self._drop_speculation()
                self.speech_start = None
                self.detector.reset()
            elif isinstance(action, Interrupt):
                await self._interrupt(action)
            elif isinstance(action, EndTurn):
                for event in self.detector.finish(t):
                    if isinstance(event, TurnEnded):
                        self._submit(event, t)
            elif isinstance(action, AskView) and self.ctx.engines.vision is not None and not self.view_asked:
                # One look at the view waiting is enough: a burst of taps (a stuck or hostile
                # button) must not queue minutes of captures ahead of the wearer's next question.
                self.view_asked = True
                self.turns.put_nowait(ButtonTurn())

    async def _interrupt(self, action: Interrupt) -> None:
        """The wearer talked over the reply or tapped: its handle stops everything it was doing."""
        if self.reply is None:
            return
        record = await self.reply.interrupt(action.reason, action.t)
        if record is not None:
            self.interruptions.append(record)

    async def _listen_buttons(self) -> None:
        assert self.opts.buttons is not None
        async for event in self.opts.buttons:
            kind = getattr(event, "kind", None)
            if isinstance(kind, str):
                await self._act(self.controller.button(kind, time.monotonic()), time.monotonic())

    async def _watch_timers(self) -> None:
        """Queue each due timer or reminder as an announcement, said between turns (never over a reply).

        Pending timers are in the database, so they are re-armed after a restart; those that fell
        due while the assistant was off are announced at once ("While I was off, ...").
        """
        personal = self.ctx.personal
        started = time.time()
        changed = personal.watch_timers()
        while True:
            now = time.time()
            for tid, text in await asyncio.to_thread(personal.due_announcements, now, started=started):
                personal.announced.add(tid)
                self.turns.put_nowait(Announcement(text, tid))
            nxt = await asyncio.to_thread(personal.next_due)
            wait = 60.0 if nxt is None else max(0.05, min(60.0, nxt - time.time()))
            changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)

    # ------------------------------------------------------------------ the turn worker
    async def _answer_turns(self) -> None:
        opts = self.opts
        while (item := await self.turns.get()) is not None:
            if isinstance(item, ButtonTurn):
                self.view_asked = False
            if id(item) in self._taken_back:  # the wearer went on: it is part of a later turn now
                self._taken_back.discard(id(item))
                self.controller.reply_done(time.monotonic())
                continue
            self.busy.set()
            handle = ReplyHandle(self.out)
            self.reply = handle
            self.out.unmute()
            handle.task = task = asyncio.ensure_future(self._answer(item, handle))
            self._answering = item if isinstance(item, SpokenTurn) else None
            try:
                trace = await task
            finally:
                self.busy.clear()
                self.reply, self._answering, self._answer_trace = None, None, None
            self.controller.reply_done(time.monotonic())
            if trace.outcome == "taken back":
                self._taken_back.discard(id(item))
                continue  # not an answer: the turn goes on as the next one
            self.traces.append(trace)
            if opts.on_turn is not None:
                opts.on_turn(trace)
            answered = sum(1 for t in self.traces if t.outcome != "announcement")
            if opts.max_turns is not None and answered >= opts.max_turns and trace.outcome != "announcement":
                await self.source.close()

    async def _answer(self, item: QueueItem, handle: ReplyHandle) -> TurnTrace:
        if isinstance(item, Announcement):
            try:
                return await announce(self.ctx, self.speaker, item, self.out, turn=self.dispatcher.turn_counter)
            except Exception as err:  # the speaker went away mid-sentence: the timer stays pending (next start)
                now = time.monotonic()
                log.error("timer announcement failed: %s", err)
                return TurnTrace(turn=self.dispatcher.turn_counter, transcript="", speech_end=now, end_detected=now,
                                 transcript_final=now, outcome="announcement", error=f"{type(err).__name__}: {err}")
        if isinstance(item, ButtonTurn):
            return await self._answer_button(item, handle)
        return await self._answer_spoken(item, handle)

    async def _answer_spoken(self, item: SpokenTurn, handle: ReplyHandle) -> TurnTrace:
        ended = item.ended
        self.ctx.stats.turns += 1
        trace = self.dispatcher.new_trace(
            speech_start=item.speech_start, speech_end=ended.speech_end_t, end_detected=ended.detected_t,
            capped=ended.capped, early_end=ended.early)
        self._answer_trace = trace
        if item.speech_start is not None:
            trace.span("microphone", "wearer speaking", item.speech_start, ended.speech_end_t)
        trace.span("microphone", "end-of-turn wait", ended.speech_end_t, ended.detected_t)
        lcfg = self.ctx.config.listen
        if lcfg.debug_recording:
            # Only when the wearer has turned debug recording on: otherwise no audio is kept.
            await asyncio.to_thread(record_turn, lcfg.debug_recording, trace.turn, ended.audio)
        try:
            transcript = await self._transcript(ended, item.speculation, trace, handle)
            if item.strip:
                transcript = dataclasses.replace(transcript, text=strip_wake_phrase(transcript.text, item.strip))
            trace.transcript, trace.language = transcript.text, transcript.language
            if self.speaker.early is not None:
                # An answer prepared for other words is dropped; the trace keeps what was prefilled.
                trace.early = self.speaker.early.settle(transcript.text)
            if transcript.is_empty:
                trace.outcome = "no-speech"
                return trace
            turn = Turn(transcript.text, trace, camera=self.opts.camera, transcript=transcript, audio=ended.audio,
                        sequential=self.opts.sequential, cancel=handle.cancel)
            await self.dispatcher.answer(turn, self.out)
        except asyncio.CancelledError:
            if not handle.interrupted:
                raise
            if handle.reason == "taken back":
                trace.outcome = "taken back"  # nothing was heard; the wearer's words go on in the next turn
                return trace
            # The wearer interrupted: keep what was actually heard, marked as interrupted.
            handle.cut(trace)
            if trace.transcript:
                self.ctx.personal.conversation.add(trace.transcript, trace.reply, interrupted=True)
            self.ctx.stats.interrupted += 1
        except AssistantError as err:
            trace.outcome, trace.error = "error", str(err)
            self.ctx.stats.errors += 1
            log.error("turn %d: %s", trace.turn, err)
        except Exception as err:  # keep serving: one bad turn must not end the assistant
            trace.outcome, trace.error = "error", f"{type(err).__name__}: {err}"
            self.ctx.stats.errors += 1
            log.exception("turn %d failed", trace.turn)
        return trace

    async def _transcript(self, ended: TurnEnded, speculation: Speculation | None, trace: TurnTrace,
                          handle: ReplyHandle) -> Transcript:
        if speculation is not None and not speculation.cancel.is_set():
            # Only silence was added since the pause, so the speculative text stands.
            trace.stt_start = speculation.started
            transcript = await speculation.future
            trace.speculative_stt = True
            self.ctx.stats.speculative_used += 1
        else:
            trace.stt_start = time.monotonic()
            transcript = await self.ctx.call("stt", self.transcribe, ended.audio, handle.cancel)
        trace.transcript_final = time.monotonic()
        trace.span("stt", "speculative transcription" if trace.speculative_stt else "transcription",
                   trace.stt_start, trace.transcript_final)
        return transcript

    async def _answer_button(self, item: ButtonTurn, handle: ReplyHandle) -> TurnTrace:
        self.ctx.stats.turns += 1
        now = time.monotonic()
        trace = self.dispatcher.new_trace(transcript=f"[tap] {item.question}", speech_end=now, end_detected=now,
                                          transcript_final=now)
        turn = Turn(item.question, trace, camera=self.opts.camera, cancel=handle.cancel)
        try:
            reply = await self.vision.look("describe", turn)
            await self.speaker.deliver(reply, turn, self.out)
        except asyncio.CancelledError:
            if not handle.interrupted:
                raise
            handle.cut(trace)  # a tap during the answer: what was heard stands
            self.ctx.stats.interrupted += 1
        except AssistantError as err:
            trace.outcome, trace.error = "error", str(err)
            self.ctx.stats.errors += 1
            log.error("turn %d: %s", trace.turn, err)
        except Exception as err:  # keep serving: a bad device (or a bug) must not end the loop
            trace.outcome, trace.error = "error", f"{type(err).__name__}: {err}"
            self.ctx.stats.errors += 1
            log.exception("turn %d (tap) failed", trace.turn)
        return trace


async def announce(ctx: SkillContext, speaker: ReplySpeaker, item: Announcement, sink: AudioSink, *,
                   turn: int) -> TurnTrace:
    """Say a due timer or reminder between turns, then mark it done (said at least once)."""
    now = time.monotonic()
    trace = TurnTrace(turn=turn, transcript="", speech_end=now, end_detected=now, transcript_final=now)
    await speaker.announce(item.text, sink, trace)
    await asyncio.to_thread(ctx.personal.timer_said, item.timer_id)
    return trace


async def say_due_timers(ctx: SkillContext, speaker: ReplySpeaker, sink: AudioSink, *, wait_s: float,
                         started: float | None = None, turn: int = 0) -> list[TurnTrace]:
    """Without the loop (`run --text`): say what is due now, then wait up to ``wait_s`` for timers
    falling due in that time and say them too. Later ones stay pending for the next start."""
    personal = ctx.personal
    started = time.time() if started is None else started
    deadline = time.time() + wait_s
    said: list[TurnTrace] = []
    while True:
        for tid, text in await asyncio.to_thread(personal.due_announcements, time.time(), started=started):
            personal.announced.add(tid)
            said.append(await announce(ctx, speaker, Announcement(text, tid), sink, turn=turn))
        nxt = await asyncio.to_thread(personal.next_due)
        if nxt is None or nxt > deadline:
            return said
        await asyncio.sleep(max(0.05, nxt - time.time()))


def end_of_turn_policy(vcfg: VadConfig, *, acoustic: bool, eager: bool = False,
                       ask_always: bool = False) -> EndOfTurnPolicy:
    """The policy ``[vad]`` asks for; without the acoustic model (``acoustic`` False: missing, failed
    its check) the combined and smart-turn policies fall back to the transcript and silence. With the
    take-back on, a finished transcript need not wait for the model: a wrong early end costs little
    (``ask_always``: the model is asked all the same, for the doubtful hold)."""
    return EndOfTurnPolicy(vcfg.end_policy, min_end_ms=vcfg.min_end_silence_ms, end_silence_ms=vcfg.end_silence_ms,
                           patience_ms=vcfg.patience_ms, threshold=vcfg.turn_threshold, burst_ms=vcfg.burst_ms,
                           acoustic_available=acoustic, eager=eager, ask_always=ask_always)


def record_turn(folder: str, turn: int, audio: np.ndarray) -> None:
    """Debug recording (opt-in): one turn's microphone audio as a WAV."""
    path = Path(folder).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    write_wav(path / f"turn-{turn:04d}.wav", audio, 16_000)
