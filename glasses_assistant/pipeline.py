"""The voice loop: audio source -> VAD/end of turn -> Whisper -> llama.cpp -> phrases -> Piper -> sink.

Each model is loaded once and kept warm. Every model call runs in a worker
thread of its own (one per engine, so calls to one model never overlap and the
event loop never blocks); the loop only moves small records between them.
Streaming: the LLM's tokens are cut into phrases as they arrive and each phrase
is synthesised and handed to the sink while the model is still writing the next.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .audio.echo import EchoGuard, ReferenceSink
from .audio.io import AudioSink, AudioSource, write_wav
from .audio.vad import SileroVad
from .audio.wakeword import WakeWordDetector
from .camera import Camera
from .catalog import Catalogue, ModelEntry, load_catalogue
from .config import DEFAULT_SYSTEM_PROMPT, Config, RemoteConfig
from .controller import Arm, AskView, BargeInPolicy, Disarm, EndTurn, Interrupt, TurnController, strip_wake_phrase
from .conversation import Conversation
from .engines.llm import LlamaEngine
from .engines.remote import RemoteError, RemoteLlm
from .engines.stt import Transcript, WhisperEngine
from .engines.tts import PiperEngine
from .engines.voices import Voice, open_voice
from .memory import MemoryStore, MemoryStoreError
from .persona import Persona, PersonaError, find_persona, persona_files
from .tools import TOOLS, ToolRunner
from .tools.runner import flip_person, timer_name

if TYPE_CHECKING:
    from .vision import VisionService
from .errors import AssistantError, ModelError
from .phrases import PhraseChunker, clean_for_speech, is_speakable
from .router import REMOTE, Route, decide
from .trace import TurnTrace
from .translate.intents import match_translate_intent
from .translate.mode import TranslationMixin
from .turn import EndOfTurnDetector, SpeechPaused, SpeechResumed, SpeechStarted, TurnEnded, sounds_finished
from .vision.intents import match_vision_intent

log = logging.getLogger("glasses_assistant")

DEFAULT_VOLUME = 80
NO_ANSWER = "Sorry, I don't have an answer to that."
BUTTON_QUESTION = "What am I looking at?"
REMOTE_LOST = "I lost the server, so here is my own answer."
"""Said when the server dies mid-answer after some of its phrases were spoken: the local model answers anew."""


def resolve_model(catalogue: Catalogue, role: str, wanted: str | None) -> tuple[Path, str]:
    """A catalogue id (verified by sha256) or a user's own path (checked to exist)."""
    if wanted is None:
        entry: ModelEntry = catalogue.default_for(role)
        return catalogue.verify(entry), entry.id
    if wanted in catalogue.models:
        entry = catalogue.get(wanted)
        if entry.role != role:
            raise ModelError(f"model {wanted!r} is a {entry.role} model, not a {role} model")
        return catalogue.verify(entry), entry.id
    path = Path(wanted).expanduser()
    if not path.exists():
        raise ModelError(f"{role} model {wanted!r} is neither a catalogue id nor an existing path")
    return path, str(path)


@dataclass
class LoopStats:
    """Counters for what the loop did with its input."""

    chunks: int = 0
    turns: int = 0
    ignored_chunks: int = 0
    speculative_started: int = 0
    speculative_used: int = 0
    early_ends: int = 0
    errors: int = 0
    wake_words: int = 0
    dropped_turns: int = 0
    """Speech heard while not listening (over a reply, below the barge-in bar): not answered."""
    interrupted: int = 0
    load_s: dict[str, float] = field(default_factory=dict)


class Assistant(TranslationMixin):
    """The loaded models plus the state of one conversation (and live translation: see :mod:`.translate.mode`)."""

    def __init__(self, config: Config, catalogue: Catalogue | None = None) -> None:
        self.config = config
        self.catalogue = catalogue or load_catalogue(
            cache_dir=Path(config.models_dir).expanduser() if config.models_dir else None
        )
        self.vad: SileroVad | None = None
        self.stt: WhisperEngine | None = None
        self.llm: LlamaEngine | None = None
        self.remote: RemoteLlm | None = None
        """The server's LLM when ``[remote] policy`` is not local; None means nothing is ever sent."""
        self.configure_remote(config.remote)
        self.tts: PiperEngine | None = None
        self._voices: dict[str, Voice] = {}
        self.vision: VisionService | None = None
        self.model_ids: dict[str, str] = {}
        self.model_paths: dict[str, Path] = {}
        self.stats = LoopStats()
        self._base_remote = config.remote
        self.persona: Persona = self._persona(config.persona.name)
        self.current_voice: str | None = self.persona.voice or None
        """The voice replies are spoken in (set by the persona; None: the [tts] voice)."""
        self.volume = DEFAULT_VOLUME
        """Speaking volume 0..100 (the volume tool); the TTS gain is volume / DEFAULT_VOLUME."""
        self.bridge: Any = None
        """The glasses' BridgeClient when running with --device/--sim (battery and status)."""
        self.conversation = Conversation(
            self._prompt(self.persona), history_turns=config.llm.history_turns,
            context=config.llm.context, max_tokens=config.llm.max_tokens,
        )
        self.memory: MemoryStore | None = None
        self.memory_error: str | None = None
        if config.memory.enabled:
            try:
                self.memory = MemoryStore(config.memory.file)
            except (MemoryStoreError, OSError) as err:
                # Keep serving without memory; every memory request says why.
                self.memory_error = str(err)
                log.error("memory is off: %s", err)
        self.conversation.on_add = self._log_turn
        self.tools = ToolRunner(self)
        self._timers_changed: asyncio.Event | None = None
        self._announced: set[int] = set()
        self._apply_persona_remote(self.persona)
        # One worker per engine: a model is never called from two threads at once.
        self._pools = {
            name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ga-{name}")
            for name in ("vad", "stt", "llm", "tts", "vision", "memory")
        }
        self._init_translation()
        self._turn_counter = 0
        self._wake: WakeWordDetector | None = None
        self.controller: TurnController | None = None
        self.echo_guard: EchoGuard | None = None
        self.interruptions: list[dict[str, Any]] = []
        """Every barge-in: reason, when it was decided (capture time) and when playback stopped."""

    # ------------------------------------------------------------------ loading
    def load(self, progress: Callable[[str], None] = lambda _m: None, *, camera: bool = False) -> dict[str, float]:
        """Verify and load every model, then warm each one (blocking; seconds per stage).

        The vision models load when ``[vision] enabled`` is on, or auto and ``camera``.
        """
        steps: list[tuple[str, Callable[[], None]]] = [
            ("vad", lambda: self._load_vad()),
            ("stt", lambda: self._load_stt()),
            ("llm", lambda: self._load_llm()),
            ("tts", lambda: self._load_tts()),
        ]
        enabled = self.config.vision.enabled
        if enabled == "on" or (enabled == "auto" and camera):
            steps.append(("vision", lambda: self._load_vision()))
        for name, step in steps:
            t0 = time.perf_counter()
            step()
            self.stats.load_s[name] = round(time.perf_counter() - t0, 3)
            progress(f"loaded {name:<3} {self.model_ids[name]} in {self.stats.load_s[name]:.2f} s")
        return dict(self.stats.load_s)

    def _load_vad(self) -> None:
        path, self.model_ids["vad"] = resolve_model(self.catalogue, "vad", self.config.vad.model)
        self.model_paths["vad"] = path
        self.vad = SileroVad(path)
        self.vad(np.zeros(512, np.float32))
        self.vad.reset()

    def _load_stt(self) -> None:
        path, self.model_ids["stt"] = resolve_model(self.catalogue, "stt", self.config.stt.model)
        self.model_paths["stt"] = path
        self.stt = WhisperEngine(path, self.config.stt)
        self.stt.transcribe(np.zeros(16_000, np.float32))  # first call initialises CTranslate2

    def _load_llm(self) -> None:
        path, self.model_ids["llm"] = resolve_model(self.catalogue, "llm", self.config.llm.model)
        self.model_paths["llm"] = path
        self.llm = LlamaEngine(path, self.config.llm)
        self.llm.warm([{"role": "system", "content": self.config.llm.system_prompt},
                       {"role": "user", "content": "Hello."}])

    def _load_tts(self) -> None:
        path, self.model_ids["tts"] = resolve_model(self.catalogue, "tts", self.config.tts.voice)
        self.model_paths["tts"] = path
        self.tts = PiperEngine(path, self.config.tts)
        self.tts.synthesize("Ready.")

    def _load_vision(self) -> None:
        from .vision import VisionService

        vcfg = self.config.vision
        self.vision = VisionService.load(
            self.catalogue, model=vcfg.model, threads=vcfg.threads, ocr=vcfg.ocr, photo_dir=vcfg.photo_dir,
            score_threshold=vcfg.threshold,
        )
        detector = self.vision.detector
        self.model_ids["vision"] = (getattr(detector, "model_id", None) or "detector") + (
            " + rapidocr" if vcfg.ocr else "")

    def voice(self, spec: str | None) -> Voice:
        """The voice ``spec`` names (see :mod:`.engines.voices`), loaded once; None is the default voice.

        Blocking (a Piper voice takes a few tenths of a second to load): call it on the tts worker.
        """
        assert self.tts is not None, "call load() first"
        if spec is None or spec == self.model_ids.get("tts"):
            return self.tts
        if spec not in self._voices:
            self._voices[spec] = open_voice(spec, self.catalogue, self.config.tts)
        return self._voices[spec]

    # ------------------------------------------------------------------ persona, memory, volume
    def _persona(self, name: str) -> Persona:
        persona = find_persona(name, self.config.persona.folder, set(TOOLS))
        return persona

    def _prompt(self, persona: Persona) -> str:
        """The persona's system prompt; a changed ``[llm] system_prompt`` still wins for the default persona."""
        if persona.name == "default" and self.config.llm.system_prompt != DEFAULT_SYSTEM_PROMPT:
            return self.config.llm.system_prompt
        return persona.prompt

    def persona_names(self) -> tuple[str, ...]:
        return tuple(sorted(persona_files(self.config.persona.folder)))

    def _apply_persona_remote(self, persona: Persona) -> None:
        """A persona's ``remote`` preference, when a server is configured at all."""
        cfg = self._base_remote
        if persona.remote and cfg.url:
            cfg = dataclasses.replace(cfg, policy=persona.remote)
        if cfg != self.config.remote:
            self.configure_remote(cfg)

    async def switch_persona(self, name: str) -> str:
        """Become persona ``name``: prompt, voice, tools, remote preference. The sentence to say.

        A persona with an error (or a voice that does not load) leaves the current one in place.
        """
        try:
            persona = self._persona(name)
            if persona.voice and self.tts is not None:
                await self._call("tts", self.voice, persona.voice)  # load it now: fail before switching
        except (PersonaError, AssistantError) as err:
            log.error("persona switch to %s failed: %s", name, err)
            return f"I couldn't switch to {name}, so I'm still {self.persona.name}."
        self.persona = persona
        self.current_voice = persona.voice or None
        self.conversation.system_prompt = self._prompt(persona)
        self.conversation.clear()  # the old persona's replies would colour the new one's
        self._apply_persona_remote(persona)
        return f"Okay, this is the {persona.name} persona."

    def set_volume(self, change: str, level: int | None) -> str:
        if change == "up":
            self.volume = min(100, self.volume + 20)
        elif change == "down":
            self.volume = max(0, self.volume - 20)
        else:
            self.volume = int(level or 0)
        return "Muted." if self.volume == 0 else f"Volume {self.volume}."

    def memory_off_reason(self) -> str:
        if not self.config.memory.enabled:
            return "Memory is turned off."
        return "My memory isn't working right now, so I can't do that."

    def _log_turn(self, question: str, reply: str) -> None:
        """The searchable text log of turns (never audio); a storage problem is logged, not raised.

        Written on the memory worker (in order), so the commit's fsync never holds up the loop.
        """
        if self.memory is None or not self.config.memory.log_turns or not reply:
            return
        store = self.memory

        def write() -> None:
            try:
                store.log_turn(question, reply)
            except MemoryStoreError as err:
                log.error("turn log: %s", err)

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            write()
            return
        self._pools["memory"].submit(write)

    def recalled(self, question: str) -> list[str]:
        """Memories matching ``question``, for the prompt (empty if none or memory is off)."""
        if self.memory is None or self.config.memory.recall_k == 0:
            return []
        try:
            return [m.text for m in self.memory.recall(question, self.config.memory.recall_k)]
        except MemoryStoreError as err:
            log.error("recall: %s", err)
            return []

    def timers_changed(self) -> None:
        """A timer was added or cancelled: the watcher looks again now."""
        if self._timers_changed is not None:
            self._timers_changed.set()

    def due_announcements(self, now: float, *, started: float) -> list[tuple[int, str]]:
        """Timers and reminders due at ``now`` not yet announced: (id, sentence). Pure given the store."""
        if self.memory is None:
            return []
        try:
            pending = self.memory.timers()
        except MemoryStoreError as err:
            log.error("timers: %s", err)
            return []
        out = []
        for t in pending:
            if t.due > now or t.id in self._announced:
                continue
            while_off = t.due < started
            if t.kind == "timer":
                text = (f"While I was off, your {timer_name(t.kind, t.label)} went off." if while_off
                        else f"Your {timer_name(t.kind, t.label)} is done.")
            else:
                text = ("While I was off, " if while_off else "") + f"Reminder: {flip_person(t.label)}."
                text = text[:1].upper() + text[1:]
            out.append((t.id, text))
        return out

    def next_due(self) -> float | None:
        if self.memory is None:
            return None
        try:
            pending = [t for t in self.memory.timers() if t.id not in self._announced]
        except MemoryStoreError:
            return None
        return min((t.due for t in pending), default=None)

    async def say_reply(self, question: str, text: str, sink: AudioSink, trace: TurnTrace) -> None:
        """Say a whole reply known in advance (a tool's answer, the view) as the turn's reply, phrase by phrase."""
        trace.first_token = trace.first_phrase = time.monotonic()
        await self.say_whole(text, sink, trace)
        trace.reply = " ".join(trace.phrases)
        self.conversation.add(question, trace.reply)

    async def say_whole(self, text: str, sink: AudioSink, trace: TurnTrace, *, voice: str | None = None) -> None:
        """Say a complete text phrase by phrase (the first phrase plays while the next is made), then drain."""
        if trace.first_token is None:
            trace.first_token = trace.first_phrase = time.monotonic()
        chunker = PhraseChunker(first_phrase_words=self.config.tts.first_phrase_words)
        for phrase in (chunker.push(text + " ") + chunker.flush()) or [text]:
            trace.phrases.append(phrase)
            await self._say(phrase, sink, trace, voice=voice)
        await sink.drain()
        trace.reply_done = time.monotonic()

    async def _act_on_intent(self, text: str, sink: AudioSink, trace: TurnTrace, camera: Camera | None) -> bool:
        """The tools (timers, memory, photo, persona...): True if ``text`` was one and was answered."""
        if not self.config.tools.enabled:
            return False
        return await self.tools.act(text, sink, trace, camera)

    async def _announce(self, item: _Announcement, sink: AudioSink) -> TurnTrace:
        """Say a due timer or reminder between turns, then mark it done (said at least once)."""
        now = time.monotonic()
        trace = TurnTrace(turn=self._turn_counter, transcript="", speech_end=now, end_detected=now,
                          transcript_final=now)
        trace.outcome = "announcement"
        await self._say(str(item), sink, trace)
        await sink.drain()
        trace.reply = str(item)
        trace.phrases = [str(item)]
        trace.reply_done = time.monotonic()
        if self.memory is not None:
            try:
                await asyncio.to_thread(self.memory.set_timer_state, item.timer_id, "done")
            except MemoryStoreError as err:
                log.error("timer %d: %s", item.timer_id, err)
        return trace

    def configure_remote(self, cfg: RemoteConfig) -> None:
        """Use these ``[remote]`` settings from the next turn on (nothing connects until a question is routed)."""
        self.config = dataclasses.replace(self.config, remote=cfg)
        self.remote = None if cfg.policy == "local" or not cfg.url else RemoteLlm(
            cfg, temperature=self.config.llm.temperature)

    def route(self, question: str) -> Route:
        """Where ``question`` goes (see :mod:`.router`)."""
        return decide(question, self.config.remote)

    def close(self) -> None:
        self._pools["memory"].shutdown(wait=True)  # the turn log's last writes land first
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        if self.memory is not None:
            self.memory.close()

    async def _call(self, engine: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pools[engine], lambda: fn(*args, **kwargs))

    # ------------------------------------------------------------------ serving
    async def serve(
        self,
        source: AudioSource,
        sink: AudioSink,
        *,
        on_turn: Callable[[TurnTrace], None] | None = None,
        half_duplex: bool = False,
        sequential: bool = False,
        max_turns: int | None = None,
        camera: Camera | None = None,
        buttons: AsyncIterator[Any] | None = None,
        listen_mode: str | None = None,
        barge_in: bool = False,
    ) -> list[TurnTrace]:
        """Listen to ``source`` until it ends, answering each turn into ``sink``.

        What happens to audio heard while a reply is produced and played:

        * ``barge_in`` (live input): the wearer may talk over the assistant. The
          echo guard tells their voice from the assistant's own (the playback is
          the reference); once ``[bargein] min_speech_ms`` of it is heard, playback
          stops, the reply's LLM and TTS work is cancelled, the history keeps what
          was spoken (marked interrupted) and what the wearer says is the next turn;
        * ``half_duplex``: the microphone is ignored while replying, so the
          assistant never answers its own voice;
        * neither (files): it is listened to and its turn answered after the current one.

        ``listen_mode`` (``wake``, ``tap``, ``always``; default ``[listen] mode``,
        where auto is always) says what opens a turn: see :mod:`.controller`.

        ``sequential`` is the plain pipeline the benchmark compares against: a
        fixed silence timeout (``end_silence_ms``), then transcribe the whole
        utterance, generate the whole reply, synthesise the whole reply.

        ``max_turns`` closes the source once that many turns have been answered.
        ``camera`` answers "what am I looking at", "read this" and "take a photo"
        (with a frame captured after the question); a tap on ``buttons`` asks
        about the current view in always mode (a double tap in the other modes,
        where a tap means "listen", a long press "listen while held", and a tap
        during a reply stops it).
        """
        assert self.vad is not None and self.stt is not None, "call load() first"
        vcfg, lcfg, bcfg = self.config.vad, self.config.listen, self.config.bargein
        mode = listen_mode or (lcfg.mode if lcfg.mode != "auto" else "always")
        detector = EndOfTurnDetector(
            min_speech_ms=vcfg.min_speech_ms, pause_ms=vcfg.pause_ms,
            end_silence_ms=vcfg.end_silence_ms, pre_roll_ms=vcfg.pre_roll_ms,
            max_utterance_ms=int(vcfg.max_utterance_s * 1000),
        )
        ctl = TurnController(
            mode, barge_in=BargeInPolicy(enabled=barge_in, min_speech_ms=bcfg.min_speech_ms,
                                         window_ms=bcfg.window_ms),
            follow_up_s=lcfg.follow_up_s, listen_timeout_s=lcfg.timeout_s, watchdog_s=lcfg.watchdog_s,
        )
        self.controller = ctl
        out = sink if isinstance(sink, ReferenceSink) else ReferenceSink(sink)
        guard = EchoGuard(out.timeline, max_delay_ms=bcfg.echo_max_delay_ms, margin_db=bcfg.echo_margin_db,
                          initial_coupling_db=bcfg.echo_initial_db) if barge_in else None
        self.echo_guard = guard
        wake = self.wake_detector() if mode == "wake" else None
        if wake is not None:
            await self._call("vad", wake.reset)
        recent: deque[np.ndarray] = deque(maxlen=max(1, -(-lcfg.wake_pre_roll_ms // 32)))
        queue_mode = not barge_in and not half_duplex and mode == "always"
        await self._call("vad", self.vad.reset)
        traces: list[TurnTrace] = []
        turns: asyncio.Queue[tuple[TurnEnded | str, float | None, _Speculation | None, str | None] | None] = (
            asyncio.Queue())
        busy = asyncio.Event()
        state = _ListenState()

        async def answer_turns() -> None:
            while (item := await turns.get()) is not None:
                busy.set()
                reply = _Reply()
                state.reply = reply
                out.unmute()
                task = asyncio.ensure_future(self._answer(
                    *item, sink=out, sequential=sequential, camera=camera, reply=reply))
                state.task = task
                try:
                    trace = await task
                finally:
                    busy.clear()
                    state.reply, state.task = None, None
                ctl.reply_done(time.monotonic())
                traces.append(trace)
                if on_turn is not None:
                    on_turn(trace)
                answered = sum(1 for t in traces if t.outcome != "announcement")
                if max_turns is not None and answered >= max_turns and trace.outcome != "announcement":
                    await source.close()

        def submit(ended: TurnEnded | str, t: float) -> None:
            """A turn ended: answer it if the controller says it counts."""
            if isinstance(ended, str):
                turns.put_nowait((ended, None, None, None))
                return
            by = ctl.armed_by
            if ctl.turn_ended(t) or queue_mode:
                strip = wake.phrase if wake is not None and by == "wake" else None
                turns.put_nowait((ended, state.speech_start, state.speculation, strip))
            else:
                self.stats.dropped_turns += 1  # heard while not listening (a cough over a reply)
                if state.speculation is not None:
                    state.speculation.discard()
            state.speculation, state.speech_start = None, None

        async def interrupt(action: Interrupt) -> None:
            """Stop the reply: nothing more is played, playback stops, the work is cancelled."""
            reply = state.reply
            if reply is None or reply.interrupted:
                return
            now = time.monotonic()
            reply.interrupted, reply.reason, reply.decided_t = True, action.reason, action.t
            out.mute()  # a phrase synthesised from here on is dropped, never played
            out.timeline.truncate(now)
            reply.stopped_t = now
            if state.task is not None:
                state.task.cancel()
            await out.flush()
            reply.flushed_t = time.monotonic()
            self.interruptions.append({"reason": action.reason, "decided_t": action.t, "stopped_t": now,
                                       "flushed_t": reply.flushed_t})

        async def act(actions: list[Any], t: float) -> None:
            for action in actions:
                if isinstance(action, Arm):
                    if state.speculation is not None:
                        state.speculation.discard()
                    state.speculation, state.speech_start = None, None
                    # What was just heard (the wake word and maybe the request's first words) is pre-roll.
                    detector.prime(list(recent))
                elif isinstance(action, Disarm):
                    if state.speculation is not None:
                        state.speculation.discard()
                    state.speculation, state.speech_start = None, None
                    detector.reset()
                elif isinstance(action, Interrupt):
                    await interrupt(action)
                elif isinstance(action, EndTurn):
                    for event in detector.finish(t):
                        if isinstance(event, TurnEnded):
                            submit(event, t)
                elif isinstance(action, AskView) and self.vision is not None:
                    submit(BUTTON_QUESTION, t)

        async def listen_buttons() -> None:
            assert buttons is not None
            async for event in buttons:
                kind = getattr(event, "kind", None)
                if isinstance(kind, str):
                    await act(ctl.button(kind, time.monotonic()), time.monotonic())

        worker = asyncio.create_task(answer_turns())
        timer_task = asyncio.create_task(self._watch_timers(turns)) if self.memory is not None else None
        button_task = asyncio.create_task(listen_buttons()) if buttons is not None else None
        min_end_chunks = -(-vcfg.min_end_silence_ms // 32)  # ceil: at least that much silence

        def end_early(t_end: float) -> None:
            """End the turn now if the pause's transcript reads as a finished sentence."""
            spec = state.speculation
            if spec is None or detector.silence_chunks < min_end_chunks or not spec.sounds_finished():
                return
            ended = detector.end_now(t_end)
            if ended is not None:
                self.stats.early_ends += 1
                submit(dataclasses.replace(ended, early=True), t_end)

        last_t = time.monotonic()
        try:
            async for chunk in source.chunks():
                self.stats.chunks += 1
                last_t = t = chunk.t_end
                if worker.done():
                    worker.result()  # re-raise a crash of the turn worker here
                await act(ctl.tick(t), t)
                replying = busy.is_set() or not turns.empty()
                if half_duplex and replying:
                    self.stats.ignored_chunks += 1
                    if detector.state != "idle":
                        detector.reset()
                        await self._call("vad", self.vad.reset)
                    continue
                if not ctl.armed and not ctl.replying and not replying:
                    # Waiting for the wake word or a tap: nothing heard now becomes a turn.
                    recent.append(chunk.samples)
                    if wake is not None and ctl.wants_wake_word:
                        if await self._call("vad", wake.process, chunk.samples):
                            self.stats.wake_words += 1
                            await act(ctl.wake(t), t)
                    continue
                recent.append(chunk.samples)
                prob = await self._call("vad", self.vad, chunk.samples)
                voiced = prob >= vcfg.threshold
                if guard is not None and voiced:
                    voiced = guard.is_wearer(chunk.samples, t)
                if ctl.replying:
                    await act(ctl.voice(t, voiced), t)
                for event in detector.process(chunk.samples, voiced, t):
                    if isinstance(event, SpeechStarted):
                        state.speech_start = event.t
                        ctl.speech_started(t)
                    elif isinstance(event, SpeechPaused):
                        # Transcribe what we have now; if the wearer really has finished,
                        # the transcript is ready (or nearly) when the turn ends.
                        free = (not busy.is_set() or (state.reply is not None and state.reply.interrupted))
                        if self.config.stt.speculative and not sequential and free and turns.empty():
                            state.speculation = spec = self._speculate(event.audio)
                            # Decide the moment the transcript is ready, not at the next chunk.
                            spec.future.add_done_callback(
                                lambda _f, spec=spec: state.speculation is spec and end_early(time.monotonic())
                            )
                    elif isinstance(event, SpeechResumed):
                        if state.speculation is not None:
                            state.speculation.discard()
                            state.speculation = None
                    elif isinstance(event, TurnEnded):
                        submit(event, t)
                end_early(t)
            for event in detector.finish(last_t):
                if isinstance(event, TurnEnded):
                    submit(event, last_t)
        finally:
            if button_task is not None:
                button_task.cancel()
            if timer_task is not None:
                timer_task.cancel()
            await turns.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        return traces

    async def run_timers(self, sink: AudioSink, *, wait_s: float, started: float | None = None) -> list[TurnTrace]:
        """Without the loop (`run --text`): say what is due now, then wait up to ``wait_s`` for timers
        falling due in that time and say them too. Later ones stay pending for the next start."""
        started = time.time() if started is None else started
        deadline = time.time() + wait_s
        said: list[TurnTrace] = []
        while True:
            for tid, text in await asyncio.to_thread(self.due_announcements, time.time(), started=started):
                self._announced.add(tid)
                said.append(await self._announce(_Announcement(text, tid), sink))
            nxt = await asyncio.to_thread(self.next_due)
            if nxt is None or nxt > deadline:
                return said
            await asyncio.sleep(max(0.05, nxt - time.time()))

    async def _watch_timers(self, turns: asyncio.Queue[Any]) -> None:
        """Queue each due timer or reminder as an announcement, said between turns (never over a reply).

        Pending timers are in the database, so they are re-armed after a restart; those that fell
        due while the assistant was off are announced at once ("While I was off, ...").
        """
        started = time.time()
        self._timers_changed = asyncio.Event()
        while True:
            now = time.time()
            for tid, text in await asyncio.to_thread(self.due_announcements, now, started=started):
                self._announced.add(tid)
                turns.put_nowait((_Announcement(text, tid), None, None, None))
            nxt = await asyncio.to_thread(self.next_due)
            wait = 60.0 if nxt is None else max(0.05, min(60.0, nxt - time.time()))
            self._timers_changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._timers_changed.wait(), wait)

    def wake_detector(self) -> WakeWordDetector:
        """The wake word detector of ``[listen] wake_word`` (loaded once, on first use)."""
        lcfg = self.config.listen
        if self._wake is None or self._wake.wake_word != lcfg.wake_word:
            t0 = time.perf_counter()
            self._wake = WakeWordDetector(lcfg.wake_word, threshold=lcfg.wake_threshold or None)
            self.stats.load_s["wake"] = round(time.perf_counter() - t0, 3)
            self.model_ids["wake"] = f"microwakeword {lcfg.wake_word}"
        return self._wake

    def _speculate(self, audio: np.ndarray) -> _Speculation:
        assert self.stt is not None
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        future = loop.run_in_executor(
            self._pools["stt"], lambda: self.active_transcribe(audio, cancel=cancel)
        )
        self.stats.speculative_started += 1
        return _Speculation(future, cancel, len(audio), started)

    async def _answer(
        self, ended: TurnEnded | str, speech_start: float | None, speculation: _Speculation | None,
        strip: str | None = None, *, sink: AudioSink, sequential: bool = False, camera: Camera | None = None,
        reply: _Reply | None = None,
    ) -> TurnTrace:
        if isinstance(ended, _Announcement):  # a timer or reminder fell due
            return await self._announce(ended, sink)
        if isinstance(ended, str):  # a button press: a question with no speech
            return await self._answer_button(ended, sink, camera)
        self._turn_counter += 1
        self.stats.turns += 1
        trace = TurnTrace(
            turn=self._turn_counter, speech_start=speech_start, speech_end=ended.speech_end_t,
            end_detected=ended.detected_t, capped=ended.capped, early_end=ended.early,
        )
        if speech_start is not None:
            trace.span("microphone", "wearer speaking", speech_start, ended.speech_end_t)
        trace.span("microphone", "end-of-turn wait", ended.speech_end_t, ended.detected_t)
        if self.config.listen.debug_recording:
            # Only when the wearer has turned debug recording on: otherwise no audio is kept.
            await asyncio.to_thread(_record_turn, self.config.listen.debug_recording, trace.turn, ended.audio)
        try:
            transcript = await self._transcribe(ended, speculation, trace)
            if strip:
                transcript = dataclasses.replace(transcript, text=strip_wake_phrase(transcript.text, strip))
            trace.transcript, trace.language = transcript.text, transcript.language
            if transcript.is_empty:
                trace.outcome = "no-speech"
                return trace
            if self.translation is not None:
                if transcript.language_prob is None:
                    # Transcribed before translation started (by the English-only Whisper): again, multilingual.
                    transcript = await self._call("stt", self.active_transcribe, ended.audio)
                    trace.transcript, trace.language = transcript.text, transcript.language
                await self.respond_translation_turn(transcript, ended.audio, sink, trace, camera)
                return trace
            mt_intent = match_translate_intent(transcript.text)
            intent = match_vision_intent(transcript.text) if self.vision is not None else None
            # Translation's own phrases first ("translate this" is a sign, not the start_translation tool),
            # then the tools, then the camera, then the LLM.
            if mt_intent is not None:
                await self.respond_translate_intent(mt_intent, transcript.text, sink, trace, camera)
            elif await self._act_on_intent(transcript.text, sink, trace, camera):
                pass
            elif intent is not None:
                await self.respond_vision(intent, transcript.text, sink, trace, camera)
            elif sequential:
                await self.respond_sequential(transcript.text, sink, trace)
            else:
                await self.respond(transcript.text, sink, trace)
        except asyncio.CancelledError:
            if reply is None or not reply.interrupted:
                raise
            # The wearer interrupted: keep what was actually heard, marked as interrupted.
            self._interrupted(trace, reply)
        except AssistantError as err:
            trace.outcome, trace.error = "error", str(err)
            self.stats.errors += 1
            log.error("turn %d: %s", trace.turn, err)
        except Exception as err:  # keep serving: one bad turn must not end the assistant
            trace.outcome, trace.error = "error", f"{type(err).__name__}: {err}"
            self.stats.errors += 1
            log.exception("turn %d failed", trace.turn)
        return trace

    def _interrupted(self, trace: TurnTrace, reply: _Reply) -> None:
        """Cut the reply where playback stopped; the history keeps only that, marked interrupted."""
        stopped = reply.stopped_t if reply.stopped_t is not None else time.monotonic()
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
        trace.barge_in = {"reason": reply.reason, "decided": reply.decided_t, "stopped": stopped,
                          "generated": " ".join(trace.phrases)}
        if trace.transcript:
            self.conversation.add(trace.transcript, trace.reply, interrupted=True)
        self.stats.interrupted += 1

    async def _transcribe(
        self, ended: TurnEnded, speculation: _Speculation | None, trace: TurnTrace
    ) -> Transcript:
        assert self.stt is not None
        if speculation is not None and not speculation.cancel.is_set():
            # Only silence was added since the pause, so the speculative text stands.
            trace.stt_start = speculation.started
            transcript = await speculation.future
            trace.speculative_stt = True
            self.stats.speculative_used += 1
        else:
            trace.stt_start = time.monotonic()
            transcript = await self._call("stt", self.active_transcribe, ended.audio)
        trace.transcript_final = time.monotonic()
        trace.span("stt", "speculative transcription" if trace.speculative_stt else "transcription",
                   trace.stt_start, trace.transcript_final)
        return transcript

    async def _answer_button(self, question: str, sink: AudioSink, camera: Camera | None) -> TurnTrace:
        self._turn_counter += 1
        self.stats.turns += 1
        now = time.monotonic()
        trace = TurnTrace(turn=self._turn_counter, transcript=f"[tap] {question}", speech_end=now,
                          end_detected=now, transcript_final=now)
        try:
            await self.respond_vision("describe", question, sink, trace, camera)
        except AssistantError as err:
            trace.outcome, trace.error = "error", str(err)
            self.stats.errors += 1
        return trace

    async def respond_vision(
        self, intent: str, question: str, sink: AudioSink, trace: TurnTrace, camera: Camera | None
    ) -> TurnTrace:
        """Answer about the view: capture now (after the question), detect or read, then speak."""
        assert self.vision is not None and self.llm is not None
        from .vision import mentions_any
        from .vision.frames import problem

        started = time.monotonic()
        frame = await camera.capture() if camera is not None and camera.has_camera else None
        trace.span("camera", "capture", started, time.monotonic())
        if frame is not None and frame.problem is not None:
            spoken = problem(frame.problem, str(frame.metadata.get("error", ""))).spoken
            answer = None
        else:
            started = time.monotonic()
            answer = await self._call(
                "vision", self.vision.answer, intent, frame.jpeg if frame else None, question=question,
                metadata=frame.metadata if frame else None, has_camera=frame is not None,
            )
            trace.span("vision", intent, started, time.monotonic())
            spoken = answer.spoken
            trace.vision = {"intent": intent, "labels": answer.labels, "facts": answer.facts,
                            "text": [ln.text for ln in answer.lines],
                            "problem": answer.problem.code if answer.problem else None,
                            "photo": str(answer.photo) if answer.photo else None, "timings": answer.timings}
        if answer is not None and answer.llm_prompt:
            # The small LLM phrases the detector's facts; it must name something that is
            # really there, else the plain description is said instead of a hallucination.
            messages = [{"role": "system", "content": self.conversation.system_prompt},
                        {"role": "user", "content": answer.llm_prompt}]
            started = time.monotonic()
            reply, where = await self._call("llm", self._phrase_view, messages)
            trace.span("llm", f"phrase the view ({where})", started, time.monotonic())
            cleaned = clean_for_speech(reply)
            if is_speakable(cleaned) and mentions_any(cleaned, answer.labels):
                spoken = cleaned
        await self.say_reply(question, spoken, sink, trace)
        return trace

    def _phrase_view(self, messages: list[dict[str, str]]) -> tuple[str, str]:
        """The LLM that phrases the detector's facts: local unless ``[remote] vision`` allows the server.

        Only the detector's text is in ``messages``; the frame itself never leaves the device.
        """
        assert self.llm is not None
        if self.remote is not None and self.config.remote.vision:
            try:
                return self.remote.stream(messages, lambda _piece: None), "remote"
            except RemoteError as err:
                log.warning("%s; the local model phrases the view", err)
        return self.llm.stream(messages, lambda _piece: None), "local"

    async def respond_text(self, question: str, sink: AudioSink, *, camera: Camera | None = None) -> TurnTrace:
        """A typed question (`run --text`): translation, tools, vision intents to the camera, the rest to the LLM."""
        mt_intent = match_translate_intent(question)
        intent = match_vision_intent(question) if self.vision is not None else None
        self._turn_counter += 1
        now = time.monotonic()
        trace = TurnTrace(turn=self._turn_counter, transcript=question, speech_end=now, end_detected=now,
                          transcript_final=now)
        if self.translation is not None and mt_intent is None:
            # Typed while translating: the wearer's words, for the partner.
            wearer = self.translation.wearer
            typed = Transcript(question, wearer, 0.0, 1.0, detected=((wearer, 1.0),))
            return await self.respond_translation_turn(typed, None, sink, trace, camera)
        if mt_intent is not None:
            return await self.respond_translate_intent(mt_intent, question, sink, trace, camera)
        if await self._act_on_intent(question, sink, trace, camera):
            return trace
        if intent is None:
            return await self.respond(question, sink, trace)
        return await self.respond_vision(intent, question, sink, trace, camera)

    async def respond(self, question: str, sink: AudioSink, trace: TurnTrace | None = None) -> TurnTrace:
        """Answer ``question`` aloud into ``sink``, streaming LLM -> phrases -> TTS."""
        assert self.llm is not None and self.tts is not None, "call load() first"
        if trace is None:
            self._turn_counter += 1
            trace = TurnTrace(turn=self._turn_counter, transcript=question)
            trace.transcript_final = trace.end_detected = trace.speech_end = time.monotonic()
        loop = asyncio.get_running_loop()
        route = self.route(question)
        question = route.question  # an explicit "ask the big model" is not part of the question
        now = time.monotonic()
        trace.span("route", f"{route.target}: {route.reason}", now, now)
        messages = self.conversation.messages(question, self.llm.count_tokens, memories=self.recalled(question))
        tokens: asyncio.Queue[str | _Fallback | None] = asyncio.Queue()
        cancel = threading.Event()
        llm = self.llm
        remote = self.remote if route.target == REMOTE else None

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
        speaker = asyncio.create_task(self._speak(phrases, sink, trace))
        generation = loop.run_in_executor(self._pools["llm"], generate)
        chunker = PhraseChunker(first_phrase_words=self.config.tts.first_phrase_words)
        filler = (asyncio.create_task(self._filler(phrases, trace)) if remote is not None
                  and self.config.remote.filler_after_s > 0 else None)
        try:
            while (piece := await tokens.get()) is not None:
                if isinstance(piece, _Fallback):
                    now = time.monotonic()
                    trace.span("route", f"fallback to local: {piece.error}", now, now)
                    # What the server said but was not yet spoken is dropped; what was spoken stands,
                    # and the local model answers the question anew after saying why.
                    chunker = PhraseChunker(first_phrase_words=self.config.tts.first_phrase_words)
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
        trace.reply = " ".join(trace.phrases) if trace.phrases else reply.strip()
        trace.reply_done = time.monotonic()
        self.conversation.add(question, trace.reply)
        return trace

    async def _queue_phrase(self, phrase: str, phrases: asyncio.Queue[str | None], trace: TurnTrace) -> None:
        if trace.first_phrase is None:
            trace.first_phrase = time.monotonic()
        trace.phrases.append(phrase)
        await phrases.put(phrase)

    async def _filler(self, phrases: asyncio.Queue[str | None], trace: TurnTrace) -> None:
        """Say the filler ("One moment.") if the server's first token is late; nothing if it is on time."""
        await asyncio.sleep(self.config.remote.filler_after_s)
        if trace.first_token is None and trace.first_phrase is None:
            now = time.monotonic()
            trace.span("route", "filler", now, now)
            await phrases.put(_Filler(self.config.remote.filler))

    async def _speak(self, phrases: asyncio.Queue[str | None], sink: AudioSink, trace: TurnTrace) -> None:
        assert self.tts is not None
        while (phrase := await phrases.get()) is not None:
            await self._say(phrase, sink, trace, filler=isinstance(phrase, _Filler))

    async def _say(self, text: str, sink: AudioSink, trace: TurnTrace, *, filler: bool = False,
                   voice: str | None = None) -> None:
        """Synthesise one phrase and hand it to the sink (playback starts with the first).

        A ``filler`` is played but is not the answer: it does not count as the reply's first audio.
        ``voice`` names another voice than the persona's (see :meth:`voice`); the volume is applied.
        """
        assert self.tts is not None
        started = time.monotonic()
        voice = voice or self.current_voice
        trace.voice = voice
        engine = self.tts if voice is None else await self._call("tts", self.voice, voice)
        audio = await self._call("tts", engine.synthesize, text)
        if self.volume != DEFAULT_VOLUME and audio.size:
            audio = np.clip(audio * (self.volume / DEFAULT_VOLUME), -1.0, 1.0).astype(np.float32)
        now = time.monotonic()
        trace.span("tts", text, started, now)
        if audio.size == 0:
            return
        if trace.first_audio is None and not filler:
            trace.first_audio = now
        # Playback of this phrase begins once the previous phrase has finished playing.
        play_from = max(now, trace.playback_end or now)
        trace.playback_end = play_from + len(audio) / engine.sample_rate
        trace.span("speaker", text, play_from, trace.playback_end)
        await sink.write(audio, engine.sample_rate)

    async def respond_sequential(self, question: str, sink: AudioSink, trace: TurnTrace) -> TurnTrace:
        """The plain pipeline: whole reply from the LLM, then the whole reply through TTS."""
        assert self.llm is not None
        messages = self.conversation.messages(question, self.llm.count_tokens, memories=self.recalled(question))
        started = time.monotonic()
        reply = await self._call("llm", self.llm.stream, messages, lambda _piece: None)
        trace.first_token = trace.first_phrase = time.monotonic()
        trace.span("llm", "generation", started, trace.first_phrase)
        text = clean_for_speech(reply) if is_speakable(clean_for_speech(reply)) else NO_ANSWER
        trace.phrases = [text]
        await self._say(text, sink, trace)
        await sink.drain()
        trace.reply = text
        trace.reply_done = time.monotonic()
        self.conversation.add(question, text)
        return trace


def _record_turn(folder: str, turn: int, audio: np.ndarray) -> None:
    """Debug recording (opt-in): one turn's microphone audio as a WAV."""
    path = Path(folder).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    write_wav(path / f"turn-{turn:04d}.wav", audio, 16_000)


class _Announcement(str):
    """A due timer or reminder, queued like a turn so it is said between replies."""

    timer_id: int

    def __new__(cls, text: str, timer_id: int) -> _Announcement:
        obj = super().__new__(cls, text)
        obj.timer_id = timer_id
        return obj


class _Filler(str):
    """A phrase said while waiting for the server: spoken, but not part of the reply."""


@dataclass(frozen=True)
class _Fallback:
    """The server failed (``error``) after delivering ``delivered``: the local model answers now."""

    error: str
    delivered: str


@dataclass
class _ListenState:
    """What the listening side knows about the turn in progress."""

    speculation: _Speculation | None = None
    speech_start: float | None = None
    reply: _Reply | None = None
    task: asyncio.Future[TurnTrace] | None = None


@dataclass
class _Reply:
    """The reply in progress (one per turn): whether and when the wearer interrupted it."""

    interrupted: bool = False
    reason: str = ""
    decided_t: float | None = None
    """Capture time of the chunk on which the barge-in was decided."""
    stopped_t: float | None = None
    """When playback was stopped (monotonic)."""
    flushed_t: float | None = None


@dataclass
class _Speculation:
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

    def discard(self) -> None:
        """The wearer went on speaking: stop it between segments and drop its result."""
        self.cancel.set()
        self.future.add_done_callback(lambda f: f.cancelled() or f.exception())
