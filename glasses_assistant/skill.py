# SPDX-License-Identifier: GPL-3.0-or-later
"""What a skill is given and what it gives back.

A skill (translation, tools, vision, chat) is handed a :class:`Turn` (what the wearer said or
typed, its trace, the camera and the reply's cancel flag) and returns a :class:`Reply` (the
text to say, in which voice, whether it joins the chat history), or None when the turn is not
its business. It never speaks for itself: :mod:`.dispatch` hands the reply to the speaking
side (:mod:`.reply`). Skills are typed against :class:`SkillContext`, the few things of the
assistant they may use, never against the whole assistant.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from .camera import Camera
    from .captions import Captions
    from .catalog import Catalogue
    from .config import Config
    from .engines.stt import Transcript
    from .engines.workers import Engines
    from .personal import Personal
    from .trace import TurnTrace

T = TypeVar("T")


@dataclass
class Reply:
    """A skill's answer: what the speaking side says for it."""

    text: str = ""
    voice: str | None = None
    """A voice spec (see :mod:`.engines.voices`); None: the persona's voice. One that cannot be
    loaded falls back to the default voice rather than leaving the wearer with silence."""
    history: bool = True
    """The exchange joins the chat history (tool and vision answers do; translations do not)."""
    chat: bool = False
    """Not a text but a question for the chat LLM, whose reply is streamed phrase by phrase."""

    @classmethod
    def say(cls, text: str, *, voice: str | None = None, history: bool = True) -> Reply:
        return cls(text=text, voice=voice, history=history)

    @classmethod
    def from_chat(cls) -> Reply:
        return cls(chat=True)


@dataclass
class Turn:
    """One turn a skill is asked about."""

    text: str
    """What the wearer said (transcribed, wake phrase removed) or typed."""
    trace: TurnTrace
    camera: Camera | None = None
    transcript: Transcript | None = None
    """The recogniser's output for a spoken turn (language, detection); None when typed."""
    audio: Any = None
    """The turn's 16 kHz audio (np.ndarray) when spoken; None when typed."""
    sequential: bool = False
    """The plain pipeline the benchmark compares against (whole reply, then whole speech)."""
    cancel: threading.Event = field(default_factory=threading.Event)
    """Set when the reply is interrupted: every generation for this turn stops between tokens."""

    @property
    def typed(self) -> bool:
        return self.transcript is None


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
    """Firings of the wake word detector (confirmed or not)."""
    wake_rejected: int = 0
    """Firings the second stage did not confirm: no turn, nothing kept."""
    wake_check_s: list[float] = field(default_factory=list)
    """Seconds each second-stage check took (what it adds to wake-to-listening)."""
    wake_to_listening_s: list[float] = field(default_factory=list)
    """From the capture of the chunk the detector fired on to listening (check included)."""
    dropped_turns: int = 0
    """Speech heard while not listening (over a reply, below the barge-in bar): not answered."""
    interrupted: int = 0
    taken_back: int = 0
    """Turns ended early and taken back because the wearer went on before the reply was heard."""
    replies_held: int = 0
    """Replies whose first audio waited for the take-back window of a turn that ended early."""
    holds_released: int = 0
    """Early ends whose hold the chat LLM let go at once (``[vad] hold_below``): their words end there."""
    voice_doubted: int = 0
    """Early ends held because Smart Turn heard a voice left hanging (``[vad] hold_voice_below``)."""
    onset_holds: int = 0
    """Voiced chunks heard before a held-back or about-to-start reply to an early end: it waited for
    the detector to say whether the wearer was going on."""
    end_of_words_p: list[float] = field(default_factory=list)
    """The chat LLM's judgement at each early end that was held while it judged (``[vad] hold_below``)."""
    turn_model_calls: int = 0
    """Pauses the end-of-turn model was asked about (eager: only when the transcript could not tell)."""
    early_pauses: int = 0
    """Pauses started at the first silent chunk because Smart Turn already heard the voice finished."""
    load_s: dict[str, float] = field(default_factory=dict)


class SkillContext(Protocol):
    """What skills, the listener, the dispatcher and the speaking side may use of the assistant."""

    config: Config
    catalogue: Catalogue
    engines: Engines
    personal: Personal
    captions: Captions
    stats: LoopStats
    bridge: Any
    """The glasses' BridgeClient when running with --device/--sim (battery and status); else None."""

    async def call(self, worker: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking model call on that engine's worker thread."""
        ...

    def configure_remote(self, cfg: Any) -> None:
        """Use these ``[remote]`` settings from the next turn on."""
        ...


class Skill(Protocol):
    """One entry of the routing table (:mod:`.dispatch`).

    A skill may also have ``claims(text) -> bool``: whether it would answer ``text``, decided cheaply
    and without side effects (no model call, nothing said or stored). The dispatcher asks it before a
    turn has ended, to know whether the chat LLM may start on the answer (:mod:`.anticipate`).
    """

    name: str

    async def reply(self, turn: Turn) -> Reply | None:
        """The answer to ``turn``, or None when the turn is not this skill's."""
        ...

