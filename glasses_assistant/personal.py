# SPDX-License-Identifier: GPL-3.0-or-later
"""The wearer's own state: persona, conversation, memory recall and the turn log, due timers, volume.

All of it survives from turn to turn; none of it speaks. The timers' announcements are
sentences handed to the listener (:mod:`.listen`), which queues them between replies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Protocol

from .config import DEFAULT_SYSTEM_PROMPT, Config, RemoteConfig
from .conversation import Conversation
from .errors import AssistantError
from .memory import MemoryStore, MemoryStoreError
from .persona import Persona, PersonaError, find_persona, persona_files
from .wording import flip_person, timer_name

if TYPE_CHECKING:
    from .engines.workers import Engines

log = logging.getLogger(__name__)

DEFAULT_VOLUME = 80


class _Host(Protocol):
    config: Config
    engines: Engines

    def configure_remote(self, cfg: RemoteConfig) -> None: ...


class Personal:
    """Persona, history, memory, timers and volume of one wearer."""

    def __init__(self, host: _Host, *, tool_names: set[str]) -> None:
        self.host = host
        self.tool_names = tool_names
        """The tools there are (a persona may name only these)."""
        config = host.config
        self.base_remote = config.remote
        """The ``[remote]`` settings before any persona changed them."""
        self.persona: Persona = self._persona(config.persona.name)
        self.current_voice: str | None = self.persona.voice or None
        """The voice replies are spoken in (set by the persona; None: the [tts] voice)."""
        self.volume = DEFAULT_VOLUME
        """Speaking volume 0..100 (the volume tool); the TTS gain is volume / DEFAULT_VOLUME."""
        self.conversation = Conversation(
            self.prompt_for(self.persona), history_turns=config.llm.history_turns,
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
        self.announced: set[int] = set()
        """Timers already said in this run (so each is said once)."""
        self._timers_changed: asyncio.Event | None = None

    @property
    def config(self) -> Config:
        return self.host.config

    # ------------------------------------------------------------------ persona
    def _persona(self, name: str) -> Persona:
        return find_persona(name, self.host.config.persona.folder, self.tool_names)

    def prompt_for(self, persona: Persona) -> str:
        """The persona's system prompt; a changed ``[llm] system_prompt`` still wins for the default persona,
        and the default persona speaks to a model with the prompt it was tuned with (the tiny one's own)."""
        if persona.name == "default":
            if self.config.llm.system_prompt != DEFAULT_SYSTEM_PROMPT:
                return self.config.llm.system_prompt
            if persona.prompt == DEFAULT_SYSTEM_PROMPT:
                return self.config.llm.default_prompt
        return persona.prompt

    def persona_names(self) -> tuple[str, ...]:
        return tuple(sorted(persona_files(self.config.persona.folder)))

    def apply_persona_remote(self, persona: Persona) -> None:
        """A persona's ``remote`` preference, when a server is configured at all."""
        cfg = self.base_remote
        if persona.remote and cfg.url:
            cfg = dataclasses.replace(cfg, policy=persona.remote)
        if cfg != self.config.remote:
            self.host.configure_remote(cfg)

    async def switch_persona(self, name: str) -> str:
        """Become persona ``name``: prompt, voice, tools, remote preference. The sentence to say.

        A persona with an error (or a voice that does not load) leaves the current one in place.
        """
        engines = self.host.engines
        try:
            persona = self._persona(name)
            if persona.voice and engines.tts is not None:
                await engines.call("tts", engines.voice, persona.voice, self.config)  # fail before switching
        except (PersonaError, AssistantError) as err:
            log.error("persona switch to %s failed: %s", name, err)
            return f"I couldn't switch to {name}, so I'm still {self.persona.name}."
        self.persona = persona
        self.current_voice = persona.voice or None
        self.conversation.system_prompt = self.prompt_for(persona)
        self.conversation.clear()  # the old persona's replies would colour the new one's
        self.apply_persona_remote(persona)
        return f"Okay, this is the {persona.name} persona."

    # ------------------------------------------------------------------ volume
    def set_volume(self, change: str, level: int | None) -> str:
        if change == "up":
            self.volume = min(100, self.volume + 20)
        elif change == "down":
            self.volume = max(0, self.volume - 20)
        else:
            self.volume = int(level or 0)
        return "Muted." if self.volume == 0 else f"Volume {self.volume}."

    @property
    def gain(self) -> float:
        """The factor speech is scaled by (1.0 at the default volume)."""
        return self.volume / DEFAULT_VOLUME

    # ------------------------------------------------------------------ memory
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
        self.host.engines.submit("memory", write)

    def recalled(self, question: str) -> list[str]:
        """Memories matching ``question``, for the prompt (empty if none or memory is off)."""
        if self.memory is None or self.config.memory.recall_k == 0:
            return []
        try:
            return [m.text for m in self.memory.recall(question, self.config.memory.recall_k)]
        except MemoryStoreError as err:
            log.error("recall: %s", err)
            return []

    # ------------------------------------------------------------------ timers
    def watch_timers(self) -> asyncio.Event:
        """The event :meth:`timers_changed` sets (the listener's timer watcher waits on it)."""
        self._timers_changed = asyncio.Event()
        return self._timers_changed

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
            if t.due > now or t.id in self.announced:
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
            pending = [t for t in self.memory.timers() if t.id not in self.announced]
        except MemoryStoreError:
            return None
        return min((t.due for t in pending), default=None)

    def timer_said(self, timer_id: int) -> None:
        """Mark a due timer done once it was said (at least once); a storage problem is logged."""
        if self.memory is None:
            return
        try:
            self.memory.set_timer_state(timer_id, "done")
        except MemoryStoreError as err:
            log.error("timer %d: %s", timer_id, err)

    def close(self) -> None:
        if self.memory is not None:
            self.memory.close()

