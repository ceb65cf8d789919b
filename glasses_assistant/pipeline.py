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
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .audio.io import AudioSink, AudioSource
from .audio.vad import SileroVad
from .camera import Camera
from .catalog import Catalogue, ModelEntry, load_catalogue
from .config import Config
from .conversation import Conversation
from .engines.llm import LlamaEngine
from .engines.stt import Transcript, WhisperEngine
from .engines.tts import PiperEngine

if TYPE_CHECKING:
    from .vision import VisionService
from .errors import AssistantError, ModelError
from .phrases import PhraseChunker, clean_for_speech, is_speakable
from .trace import TurnTrace
from .turn import EndOfTurnDetector, SpeechPaused, SpeechResumed, SpeechStarted, TurnEnded, sounds_finished
from .vision.intents import match_vision_intent

log = logging.getLogger("glasses_assistant")

NO_ANSWER = "Sorry, I don't have an answer to that."
BUTTON_QUESTION = "What am I looking at?"


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
    load_s: dict[str, float] = field(default_factory=dict)


class Assistant:
    """The loaded models plus the state of one conversation."""

    def __init__(self, config: Config, catalogue: Catalogue | None = None) -> None:
        self.config = config
        self.catalogue = catalogue or load_catalogue(
            cache_dir=Path(config.models_dir).expanduser() if config.models_dir else None
        )
        self.vad: SileroVad | None = None
        self.stt: WhisperEngine | None = None
        self.llm: LlamaEngine | None = None
        self.tts: PiperEngine | None = None
        self.vision: VisionService | None = None
        self.model_ids: dict[str, str] = {}
        self.model_paths: dict[str, Path] = {}
        self.stats = LoopStats()
        self.conversation = Conversation(
            config.llm.system_prompt, history_turns=config.llm.history_turns,
            context=config.llm.context, max_tokens=config.llm.max_tokens,
        )
        # One worker per engine: a model is never called from two threads at once.
        self._pools = {
            name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ga-{name}")
            for name in ("vad", "stt", "llm", "tts", "vision")
        }
        self._turn_counter = 0

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

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

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
    ) -> list[TurnTrace]:
        """Listen to ``source`` until it ends, answering each turn into ``sink``.

        ``half_duplex`` (for a live microphone next to a speaker) ignores the
        microphone while a reply is being produced and played, so the assistant
        never answers its own voice. Otherwise audio heard during a reply is
        still listened to and its turn is answered after the current one.

        ``sequential`` is the plain pipeline the benchmark compares against: a
        fixed silence timeout (``end_silence_ms``), then transcribe the whole
        utterance, generate the whole reply, synthesise the whole reply.

        ``max_turns`` closes the source once that many turns have been answered.
        ``camera`` answers "what am I looking at", "read this" and "take a photo"
        (with a frame captured after the question); a tap on ``buttons`` asks
        about the current view.
        """
        assert self.vad is not None and self.stt is not None, "call load() first"
        vcfg = self.config.vad
        detector = EndOfTurnDetector(
            min_speech_ms=vcfg.min_speech_ms, pause_ms=vcfg.pause_ms,
            end_silence_ms=vcfg.end_silence_ms, pre_roll_ms=vcfg.pre_roll_ms,
            max_utterance_ms=int(vcfg.max_utterance_s * 1000),
        )
        await self._call("vad", self.vad.reset)
        traces: list[TurnTrace] = []
        turns: asyncio.Queue[tuple[TurnEnded | str, float | None, _Speculation | None] | None] = asyncio.Queue()
        busy = asyncio.Event()

        async def answer_turns() -> None:
            while (item := await turns.get()) is not None:
                busy.set()
                try:
                    trace = await self._answer(*item, sink=sink, sequential=sequential, camera=camera)
                finally:
                    busy.clear()
                traces.append(trace)
                if on_turn is not None:
                    on_turn(trace)
                if max_turns is not None and len(traces) >= max_turns:
                    await source.close()

        worker = asyncio.create_task(answer_turns())
        button_task = asyncio.create_task(self._listen_buttons(buttons, turns)) if buttons is not None else None
        state = _ListenState()
        min_end_chunks = -(-vcfg.min_end_silence_ms // 32)  # ceil: at least that much silence

        def end_early(t_end: float) -> None:
            """End the turn now if the pause's transcript reads as a finished sentence."""
            spec = state.speculation
            if spec is None or detector.silence_chunks < min_end_chunks or not spec.sounds_finished():
                return
            ended = detector.end_now(t_end)
            if ended is not None:
                self.stats.early_ends += 1
                turns.put_nowait((dataclasses.replace(ended, early=True), state.speech_start, spec))
                state.speculation, state.speech_start = None, None

        last_t = time.monotonic()
        try:
            async for chunk in source.chunks():
                self.stats.chunks += 1
                last_t = chunk.t_end
                if worker.done():
                    worker.result()  # re-raise a crash of the turn worker here
                if half_duplex and (busy.is_set() or not turns.empty()):
                    self.stats.ignored_chunks += 1
                    if detector.state != "idle":
                        detector.reset()
                        await self._call("vad", self.vad.reset)
                    continue
                prob = await self._call("vad", self.vad, chunk.samples)
                for event in detector.process(chunk.samples, prob >= vcfg.threshold, chunk.t_end):
                    if isinstance(event, SpeechStarted):
                        state.speech_start = event.t
                    elif isinstance(event, SpeechPaused):
                        # Transcribe what we have now; if the wearer really has finished,
                        # the transcript is ready (or nearly) when the turn ends.
                        if self.config.stt.speculative and not sequential and not busy.is_set() and turns.empty():
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
                        await turns.put((event, state.speech_start, state.speculation))
                        state.speculation, state.speech_start = None, None
                end_early(chunk.t_end)
            for event in detector.finish(last_t):
                if isinstance(event, TurnEnded):
                    await turns.put((event, state.speech_start, state.speculation))
        finally:
            if button_task is not None:
                button_task.cancel()
            await turns.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        return traces

    async def _listen_buttons(self, buttons: AsyncIterator[Any], turns: asyncio.Queue[Any]) -> None:
        """A tap on the glasses asks about the current view, like "what am I looking at?"."""
        async for event in buttons:
            if getattr(event, "kind", None) == "tap" and self.vision is not None:
                await turns.put((BUTTON_QUESTION, None, None))

    def _speculate(self, audio: np.ndarray) -> _Speculation:
        assert self.stt is not None
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        future = loop.run_in_executor(
            self._pools["stt"], lambda: self.stt.transcribe(audio, cancel=cancel)  # type: ignore[union-attr]
        )
        self.stats.speculative_started += 1
        return _Speculation(future, cancel, len(audio), started)

    async def _answer(
        self, ended: TurnEnded | str, speech_start: float | None, speculation: _Speculation | None, *,
        sink: AudioSink, sequential: bool = False, camera: Camera | None = None,
    ) -> TurnTrace:
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
        try:
            transcript = await self._transcribe(ended, speculation, trace)
            trace.transcript, trace.language = transcript.text, transcript.language
            if transcript.is_empty:
                trace.outcome = "no-speech"
                return trace
            intent = match_vision_intent(transcript.text) if self.vision is not None else None
            if intent is not None:
                await self.respond_vision(intent, transcript.text, sink, trace, camera)
            elif sequential:
                await self.respond_sequential(transcript.text, sink, trace)
            else:
                await self.respond(transcript.text, sink, trace)
        except asyncio.CancelledError:
            raise
        except AssistantError as err:
            trace.outcome, trace.error = "error", str(err)
            self.stats.errors += 1
            log.error("turn %d: %s", trace.turn, err)
        except Exception as err:  # keep serving: one bad turn must not end the assistant
            trace.outcome, trace.error = "error", f"{type(err).__name__}: {err}"
            self.stats.errors += 1
            log.exception("turn %d failed", trace.turn)
        return trace

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
            transcript = await self._call("stt", self.stt.transcribe, ended.audio)
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
            messages = [{"role": "system", "content": self.config.llm.system_prompt},
                        {"role": "user", "content": answer.llm_prompt}]
            started = time.monotonic()
            reply = await self._call("llm", self.llm.stream, messages, lambda _piece: None)
            trace.span("llm", "phrase the view", started, time.monotonic())
            cleaned = clean_for_speech(reply)
            if is_speakable(cleaned) and mentions_any(cleaned, answer.labels):
                spoken = cleaned
        trace.first_token = trace.first_phrase = time.monotonic()
        chunker = PhraseChunker(first_phrase_words=self.config.tts.first_phrase_words)
        phrases = chunker.push(spoken + " ") + chunker.flush()
        for phrase in phrases or [spoken]:
            trace.phrases.append(phrase)
            await self._say(phrase, sink, trace)
        await sink.drain()
        trace.reply = " ".join(trace.phrases)
        trace.reply_done = time.monotonic()
        self.conversation.add(question, trace.reply)
        return trace

    async def respond_text(self, question: str, sink: AudioSink, *, camera: Camera | None = None) -> TurnTrace:
        """A typed question (`run --text`): vision intents go to the camera, the rest to the LLM."""
        intent = match_vision_intent(question) if self.vision is not None else None
        if intent is None:
            return await self.respond(question, sink)
        self._turn_counter += 1
        now = time.monotonic()
        trace = TurnTrace(turn=self._turn_counter, transcript=question, speech_end=now, end_detected=now,
                          transcript_final=now)
        return await self.respond_vision(intent, question, sink, trace, camera)

    async def respond(self, question: str, sink: AudioSink, trace: TurnTrace | None = None) -> TurnTrace:
        """Answer ``question`` aloud into ``sink``, streaming LLM -> phrases -> TTS."""
        assert self.llm is not None and self.tts is not None, "call load() first"
        if trace is None:
            self._turn_counter += 1
            trace = TurnTrace(turn=self._turn_counter, transcript=question)
            trace.transcript_final = trace.end_detected = trace.speech_end = time.monotonic()
        loop = asyncio.get_running_loop()
        messages = self.conversation.messages(question, self.llm.count_tokens)
        tokens: asyncio.Queue[str | None] = asyncio.Queue()
        cancel = threading.Event()
        llm = self.llm

        def generate() -> str:
            started = time.monotonic()
            try:
                return llm.stream(
                    messages, lambda piece: loop.call_soon_threadsafe(tokens.put_nowait, piece),
                    cancel=cancel,
                )
            finally:
                trace.span("llm", "generation", started, time.monotonic())
                loop.call_soon_threadsafe(tokens.put_nowait, None)

        phrases: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = asyncio.create_task(self._speak(phrases, sink, trace))
        generation = loop.run_in_executor(self._pools["llm"], generate)
        chunker = PhraseChunker(first_phrase_words=self.config.tts.first_phrase_words)
        try:
            while (piece := await tokens.get()) is not None:
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
            await phrases.put(None)
            await speaker
            await sink.drain()  # the turn ends when the wearer has heard it all
        except BaseException:
            cancel.set()
            speaker.cancel()
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

    async def _speak(self, phrases: asyncio.Queue[str | None], sink: AudioSink, trace: TurnTrace) -> None:
        assert self.tts is not None
        while (phrase := await phrases.get()) is not None:
            await self._say(phrase, sink, trace)

    async def _say(self, text: str, sink: AudioSink, trace: TurnTrace) -> None:
        """Synthesise one phrase and hand it to the sink (playback starts with the first)."""
        assert self.tts is not None
        started = time.monotonic()
        audio = await self._call("tts", self.tts.synthesize, text)
        now = time.monotonic()
        trace.span("tts", text, started, now)
        if audio.size == 0:
            return
        if trace.first_audio is None:
            trace.first_audio = now
        # Playback of this phrase begins once the previous phrase has finished playing.
        play_from = max(now, trace.playback_end or now)
        trace.playback_end = play_from + len(audio) / self.tts.sample_rate
        trace.span("speaker", text, play_from, trace.playback_end)
        await sink.write(audio, self.tts.sample_rate)

    async def respond_sequential(self, question: str, sink: AudioSink, trace: TurnTrace) -> TurnTrace:
        """The plain pipeline: whole reply from the LLM, then the whole reply through TTS."""
        assert self.llm is not None
        messages = self.conversation.messages(question, self.llm.count_tokens)
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


@dataclass
class _ListenState:
    """What the listening side knows about the turn in progress."""

    speculation: _Speculation | None = None
    speech_start: float | None = None


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
