# SPDX-License-Identifier: GPL-3.0-or-later
"""The composition root: :class:`Assistant` wires the parts of the voice loop and delegates to them.

    audio source -> listen.Listener (VAD, end of turn, wake/tap, barge-in)
                 -> dispatch.Dispatcher (translation, tools, vision, chat: the first skill that answers)
                 -> reply.ReplySpeaker (phrases -> Piper -> sink; the chat LLM streamed)

The models and their worker threads are :class:`~.engines.workers.Engines`; the wearer's
persona, history, memory, timers and volume are :class:`~.personal.Personal`. No routing,
listening or speaking logic lives here: see docs/architecture.md for the rooms.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .anticipate import Anticipator
from .audio.io import AudioSink, AudioSource
from .audio.wakeword import WakeWordDetector
from .camera import Camera
from .captions import Captions
from .catalog import Catalogue, load_catalogue
from .config import Config, RemoteConfig
from .controller import TurnController
from .dispatch import ChatSkill, Dispatcher
from .engines.stt import Transcript
from .engines.voices import Voice
from .engines.workers import Engines
from .listen import Listener, ListenOptions, say_due_timers
from .personal import DEFAULT_VOLUME, Personal
from .reply import NO_ANSWER, REMOTE_LOST, ReplySpeaker
from .router import Route
from .skill import LoopStats, Turn
from .tools.registry import TOOLS
from .tools.runner import ToolRunner
from .trace import TurnTrace
from .translate.engines import Translation, Translator
from .translate.mode import TranslateIntentRoute, TranslationSkill, TranslationState
from .vision.skill import BUTTON_QUESTION, VisionSkill

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["BUTTON_QUESTION", "DEFAULT_VOLUME", "NO_ANSWER", "REMOTE_LOST", "Assistant", "Context", "LoopStats"]


class Context:
    """What the parts share (the :class:`~.skill.SkillContext` they are typed against)."""

    def __init__(self, config: Config, catalogue: Catalogue) -> None:
        self.config = config
        self.catalogue = catalogue
        self.engines = Engines(catalogue)
        self.captions = Captions()
        self.stats = LoopStats(load_s=self.engines.load_s)
        self.bridge: Any = None
        self.engines.configure_remote(config.remote, temperature=config.llm.temperature)
        self.personal = Personal(self, tool_names=set(TOOLS))
        self.personal.apply_persona_remote(self.personal.persona)

    async def call(self, worker: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self.engines.call(worker, fn, *args, **kwargs)

    def configure_remote(self, cfg: RemoteConfig) -> None:
        self.config = dataclasses.replace(self.config, remote=cfg)
        self.engines.configure_remote(cfg, temperature=self.config.llm.temperature)


def _engine(name: str) -> Any:
    """A property that reads and sets the engine ``name`` (tests swap engines for fakes)."""

    def get(self: Assistant) -> Any:
        return getattr(self.ctx.engines, name)

    def set_(self: Assistant, value: Any) -> None:
        setattr(self.ctx.engines, name, value)

    return property(get, set_)


def _personal(name: str) -> Any:
    def get(self: Assistant) -> Any:
        return getattr(self.ctx.personal, name)

    def set_(self: Assistant, value: Any) -> None:
        setattr(self.ctx.personal, name, value)

    return property(get, set_)


class Assistant:
    """The loaded models plus the state of one conversation, wired into one voice loop."""

    vad = _engine("vad")
    stt = _engine("stt")
    llm = _engine("llm")
    tts = _engine("tts")
    vision = _engine("vision")
    remote = _engine("remote")
    persona = _personal("persona")
    current_voice = _personal("current_voice")
    volume = _personal("volume")
    conversation = _personal("conversation")
    memory = _personal("memory")
    memory_error = _personal("memory_error")

    def __init__(self, config: Config, catalogue: Catalogue | None = None) -> None:
        catalogue = catalogue or load_catalogue(
            cache_dir=Path(config.models_dir).expanduser() if config.models_dir else None)
        self.ctx = ctx = Context(config, catalogue)
        self.translate = TranslationSkill(ctx)
        self.vision_skill = VisionSkill(ctx)
        self.tools = ToolRunner(ctx, vision=self.vision_skill, translation=self.translate)
        self.early = Anticipator(ctx)
        self.speaker = ReplySpeaker(ctx, self.early)
        self.dispatcher = Dispatcher(ctx, self.speaker, [
            # The routing table, in order: see dispatch.py.
            self.translate, TranslateIntentRoute(self.translate), self.tools, self.vision_skill, ChatSkill(),
        ])
        self.early.wants = self.dispatcher.goes_to_chat
        self.controller: TurnController | None = None
        self.echo_guard: Any = None
        self.interruptions: list[dict[str, Any]] = []
        """Every barge-in: reason, when it was decided (capture time) and when playback stopped."""

    # ------------------------------------------------------------------ shared state
    @property
    def config(self) -> Config:
        return self.ctx.config

    @config.setter
    def config(self, config: Config) -> None:
        self.ctx.config = config

    @property
    def catalogue(self) -> Catalogue:
        return self.ctx.catalogue

    @property
    def engines(self) -> Engines:
        return self.ctx.engines

    @property
    def personal(self) -> Personal:
        return self.ctx.personal

    @property
    def stats(self) -> LoopStats:
        return self.ctx.stats

    @property
    def captions(self) -> Captions:
        return self.ctx.captions

    @property
    def bridge(self) -> Any:
        """The glasses' BridgeClient when running with --device/--sim (battery and status)."""
        return self.ctx.bridge

    @bridge.setter
    def bridge(self, client: Any) -> None:
        self.ctx.bridge = client

    @property
    def model_ids(self) -> dict[str, str]:
        return self.ctx.engines.model_ids

    @property
    def model_paths(self) -> dict[str, Path]:
        return self.ctx.engines.model_paths

    # ------------------------------------------------------------------ models
    def load(self, progress: Callable[[str], None] = lambda _m: None, *, camera: bool = False) -> dict[str, float]:
        """Verify, load and warm every model (blocking); seconds per stage. See :meth:`Engines.load`."""
        seconds = self.ctx.engines.load(self.config, progress, camera=camera)
        llm = self.ctx.engines.llm
        if llm is not None:  # the persona's prompt too: a turn must never overflow the context
            llm.check_prompt_fits(self.ctx.personal.conversation.system_prompt,
                                  f"the {self.ctx.personal.persona.name} persona's prompt")
        return seconds

    def _load_vision(self) -> None:
        self.ctx.engines.load_vision(self.config)

    def voice(self, spec: str | None) -> Voice:
        return self.ctx.engines.voice(spec, self.config)

    def wake_detector(self) -> WakeWordDetector:
        return self.ctx.engines.wake_detector(self.config.listen)

    def configure_remote(self, cfg: RemoteConfig) -> None:
        self.ctx.configure_remote(cfg)

    def route(self, question: str) -> Route:
        return self.speaker.route(question)

    def close(self) -> None:
        self.ctx.engines.close()
        self.ctx.personal.close()

    # ------------------------------------------------------------------ the wearer's state
    @property
    def _announced(self) -> set[int]:
        return self.ctx.personal.announced

    def persona_names(self) -> tuple[str, ...]:
        return self.ctx.personal.persona_names()

    async def switch_persona(self, name: str) -> str:
        return await self.ctx.personal.switch_persona(name)

    def set_volume(self, change: str, level: int | None) -> str:
        return self.ctx.personal.set_volume(change, level)

    def memory_off_reason(self) -> str:
        return self.ctx.personal.memory_off_reason()

    def recalled(self, question: str) -> list[str]:
        return self.ctx.personal.recalled(question)

    def timers_changed(self) -> None:
        self.ctx.personal.timers_changed()

    def due_announcements(self, now: float, *, started: float) -> list[tuple[int, str]]:
        return self.ctx.personal.due_announcements(now, started=started)

    def next_due(self) -> float | None:
        return self.ctx.personal.next_due()

    async def run_timers(self, sink: AudioSink, *, wait_s: float, started: float | None = None) -> list[TurnTrace]:
        """Without the loop (`run --text`): say due timers now and those due within ``wait_s``."""
        return await say_due_timers(self.ctx, self.speaker, sink, wait_s=wait_s, started=started,
                                    turn=self.dispatcher.turn_counter)

    # ------------------------------------------------------------------ translation
    @property
    def translation(self) -> TranslationState | None:
        """Conversation mode's state while it is on; None when not translating."""
        return self.translate.state

    @property
    def translating(self) -> bool:
        return self.translate.translating

    async def start_translation(self, source: str | None = None, target: str | None = None) -> str:
        return await self.translate.start(source, target)

    def stop_translation(self) -> str:
        return self.translate.stop()

    def load_translation(self, progress: Callable[[str], None] = lambda _m: None) -> None:
        self.ctx.engines.load_translation(self.config, progress)

    def translator(self) -> Translator:
        return self.translate.translator()

    def voice_for(self, language: str) -> str | None:
        return self.translate.voice_for(language)

    def active_transcribe(self, audio: np.ndarray, cancel: Any = None) -> Transcript:
        return self.translate.transcribe(audio, cancel)

    async def translate_text(self, text: str, source: str, target: str) -> Translation:
        return await self.translate.translate_text(text, source, target)

    async def respond_translation_turn(self, transcript: Transcript, audio: np.ndarray | None, sink: AudioSink,
                                       trace: TurnTrace, camera: Camera | None = None) -> TurnTrace:
        """One conversation-mode turn for a given transcript, said into ``sink``."""
        turn = Turn(transcript.text, trace, camera=camera, transcript=transcript, audio=audio)
        reply = await self.translate.conversation_turn(transcript, audio, turn)
        await self.speaker.deliver(reply, turn, sink)
        return trace

    # ------------------------------------------------------------------ turns
    async def respond_text(self, question: str, sink: AudioSink, *, camera: Camera | None = None) -> TurnTrace:
        """A typed question (`run --text`), through the same routing table as a spoken one."""
        return await self.dispatcher.answer_typed(question, sink, camera=camera)

    async def respond(self, question: str, sink: AudioSink, trace: TurnTrace | None = None) -> TurnTrace:
        """The chat LLM answers ``question`` aloud into ``sink`` (no routing)."""
        if trace is None:
            now = time.monotonic()
            trace = self.dispatcher.new_trace(transcript=question, speech_end=now, end_detected=now,
                                              transcript_final=now)
        return await self.speaker.chat(question, sink, trace)

    def _phrase_view(self, messages: list[dict[str, str]]) -> tuple[str, str]:
        return self.vision_skill.phrase_view(messages)

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
          stops, the reply's generation and speech are cancelled, the history keeps what
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
        options = ListenOptions(on_turn=on_turn, half_duplex=half_duplex, sequential=sequential,
                                max_turns=max_turns, camera=camera, buttons=buttons, listen_mode=listen_mode,
                                barge_in=barge_in)
        listener = Listener(self.ctx, self.dispatcher, self.speaker, self.vision_skill, self.translate.transcribe,
                            source, sink, options, self.interruptions)
        self.controller, self.echo_guard = listener.controller, listener.guard
        return await listener.run()

