# SPDX-License-Identifier: GPL-3.0-or-later
"""The turn controller: when the assistant listens, when a turn counts, when the wearer interrupted.

Pure logic with the clock injected: every method takes the time ``t``
(monotonic seconds) and returns the actions the runner must carry out. No audio,
no model, no asyncio, so tests drive it with plain numbers.

States:

* ``idle``       waiting for the wake word or a tap (in ``always`` mode, idle listens);
* ``listening``  armed by a wake word or a tap: the next turn counts; gives up
  after ``listen_timeout_s`` without speech;
* ``holding``    a long press is held: push to talk, the turn ends when it is released;
* ``replying``   a turn is being answered (LLM, TTS, playback);
* ``follow_up``  just answered: the wearer may speak again without the wake word
  for ``follow_up_s``.

Barge-in: while replying, the runner reports each microphone chunk as the
wearer's voice or not (after the echo guard). Once ``min_speech_ms`` of the
wearer's voice has been heard within a short window, the controller decides an
interruption; shorter sounds (a cough, a click) are ignored. A tap while
replying interrupts too. A watchdog returns any state that has lasted too long
to idle, so nothing can leave the assistant stuck.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

MODES = ("wake", "tap", "always")


@dataclass(frozen=True)
class Arm:
    """Start listening for a turn (reset the end-of-turn detector, keep the pre-roll)."""

    reason: str  # wake | tap | hold | follow-up


@dataclass(frozen=True)
class Disarm:
    """Stop listening: back to waiting for the wake word or a tap."""

    reason: str  # timeout | watchdog


@dataclass(frozen=True)
class Interrupt:
    """Stop the reply now: flush playback, cancel LLM and TTS, keep what was spoken."""

    t: float
    reason: str  # speech | tap | hold | watchdog


@dataclass(frozen=True)
class EndTurn:
    """The push-to-talk button was released: the turn ends now."""

    t: float


@dataclass(frozen=True)
class AskView:
    """A double tap (or a tap in always mode): ask about what the camera sees."""

    t: float


Action = Arm | Disarm | Interrupt | EndTurn | AskView


@dataclass(frozen=True)
class BargeInPolicy:
    """When speech over the assistant counts as an interruption (policy as data)."""

    enabled: bool = True
    """False is half duplex: the microphone is ignored while the assistant replies."""
    min_speech_ms: int = 250
    """The wearer's voice (after the echo guard) needed before a barge-in counts."""
    window_ms: int = 400
    """...within this window: short gaps between syllables do not reset the count."""
    chunk_ms: float = 32.0


class TurnController:
    """Decides listening, turns and interruptions; see the module doc."""

    def __init__(
        self,
        mode: str = "always",
        *,
        barge_in: BargeInPolicy | None = None,
        follow_up_s: float = 6.0,
        listen_timeout_s: float = 8.0,
        hold_max_s: float = 30.0,
        watchdog_s: float = 120.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
        self.mode = mode
        self.policy = barge_in or BargeInPolicy()
        self.follow_up_s = follow_up_s
        self.listen_timeout_s = listen_timeout_s
        self.hold_max_s = hold_max_s
        self.watchdog_s = watchdog_s
        self.state = "idle"
        self.since = 0.0
        """When the current state was entered."""
        self.deadline: float | None = None
        self.in_speech = False
        self.armed_by: str | None = None
        """What armed the current turn: wake | tap | hold | follow-up | always."""
        need = max(1, round(self.policy.min_speech_ms / self.policy.chunk_ms))
        self._need_chunks = need
        self._voiced: deque[float] = deque()
        self.log: list[tuple[float, str, str]] = []
        """(t, from state, to state) of every change, for traces and tests."""

    # ----------------------------------------------------------------- queries
    @property
    def armed(self) -> bool:
        """Whether speech heard now may become a turn."""
        if self.state in ("listening", "holding", "follow_up"):
            return True
        return self.state == "idle" and self.mode == "always"

    @property
    def wants_wake_word(self) -> bool:
        """Whether the runner should run the wake word detector on the microphone now."""
        return self.mode == "wake" and self.state in ("idle", "follow_up")

    @property
    def replying(self) -> bool:
        return self.state == "replying"

    # ----------------------------------------------------------------- inputs
    def wake(self, t: float) -> list[Action]:
        """The wake word was heard."""
        if self.state in ("idle", "follow_up") and self.mode == "wake":
            return self._arm(t, "wake")
        return []  # while listening or replying it means nothing more

    def button(self, kind: str, t: float) -> list[Action]:
        """A button event from the glasses: tap, double_tap, long_press_start, long_press_end."""
        if kind == "double_tap" or (kind == "tap" and self.mode == "always"):
            # In always mode nothing needs arming: a tap asks about the view, as before.
            if self.state == "replying" and kind == "tap":
                return self._interrupt(t, "tap")
            return [AskView(t)]
        if kind == "tap":
            if self.state == "replying":
                return [*self._interrupt(t, "tap"), *self._arm(t, "tap")]
            if self.state in ("listening", "holding"):
                self.deadline = None if self.in_speech else t + self.listen_timeout_s
                return []  # a tap while already listening: keep listening, restart the timeout
            return self._arm(t, "tap")
        if kind == "long_press_start":
            actions: list[Action] = self._interrupt(t, "hold") if self.state == "replying" else []
            self._set("holding", t)
            self.armed_by, self.deadline, self.in_speech = "hold", t + self.hold_max_s, False
            return [*actions, Arm("hold")]
        if kind == "long_press_end" and self.state == "holding":
            self._set("listening", t)  # the turn ends now; if nothing was said, listening times out
            self.deadline = t + self.listen_timeout_s
            return [EndTurn(t)]
        return []

    def speech_started(self, t: float) -> None:
        """The end-of-turn detector heard the start of speech while armed."""
        if self.armed:
            self.in_speech = True
            if self.state == "follow_up":
                self._set("listening", t)
                self.armed_by = "follow-up"
            if self.state == "listening":
                self.deadline = None  # no timeout while the wearer speaks (the watchdog remains)

    def turn_ended(self, t: float) -> bool:
        """The end-of-turn detector ended a turn: True if it is to be answered."""
        accepted = self.armed
        self.in_speech = False
        if accepted:
            self.armed_by = self.armed_by or ("always" if self.mode == "always" else None)
            self._set("replying", t)
        return accepted

    def reply_done(self, t: float) -> None:
        """The reply has been played (or failed, or was interrupted and nothing followed)."""
        if self.state != "replying":
            return
        self._voiced.clear()
        if self.follow_up_s > 0:
            self._set("follow_up", t)
            self.deadline = t + self.follow_up_s
        else:
            self._set("idle", t)
        self.armed_by = None

    def voice(self, t: float, wearer: bool) -> list[Action]:
        """One microphone chunk while replying: is it the wearer's voice (after the echo guard)?"""
        if self.state != "replying" or not self.policy.enabled:
            return []
        window = self.policy.window_ms / 1000.0
        while self._voiced and self._voiced[0] < t - window:
            self._voiced.popleft()
        if wearer:
            self._voiced.append(t)
        if len(self._voiced) >= self._need_chunks:
            return [*self._interrupt(t, "speech"), *self._arm(t, "barge-in")]
        return []

    def tick(self, t: float) -> list[Action]:
        """Call on every chunk: time-outs and the watchdog."""
        if self.state in ("listening", "follow_up") and self.deadline is not None and t >= self.deadline:
            if not self.in_speech:
                self._set("idle", t)
                self.deadline = None
                self.armed_by = None
                return [Disarm("timeout")]
        if self.state == "holding" and self.deadline is not None and t >= self.deadline:
            return self.button("long_press_end", t)
        if self.state != "idle" and t - self.since >= self.watchdog_s:
            actions: list[Action] = [Interrupt(t, "watchdog")] if self.state == "replying" else []
            self._set("idle", t)
            self.deadline, self.in_speech, self.armed_by = None, False, None
            return [*actions, Disarm("watchdog")]
        return []

    # ----------------------------------------------------------------- internals
    def _arm(self, t: float, reason: str) -> list[Action]:
        self._set("listening", t)
        self.armed_by = reason
        self.in_speech = reason == "barge-in"  # the wearer is already speaking
        self.deadline = None if self.in_speech else t + self.listen_timeout_s
        # A barge-in keeps the detector's utterance in progress: it is the next turn.
        return [] if reason == "barge-in" else [Arm(reason)]

    def _interrupt(self, t: float, reason: str) -> list[Action]:
        if self.state != "replying":
            return []
        self._voiced.clear()
        self._set("listening", t)
        return [Interrupt(t, reason)]

    def _set(self, state: str, t: float) -> None:
        if state != self.state:
            self.log.append((t, self.state, state))
        self.state, self.since = state, t


def strip_wake_phrase(text: str, phrase: str) -> str:
    """Drop the wake phrase (or its tail) from the start of a transcript.

    "Hey Jarvis, what time is it?" -> "what time is it?"; "Jarvis. What..." -> "What...".
    """
    wake = set(re.findall(r"[a-z]+", phrase.lower())) | {"hey", "ok", "okay", "hi"}
    tokens = text.split()
    i = 0
    while i < len(tokens) and re.sub(r"[^a-z]", "", tokens[i].lower()) in wake:
        i += 1
    return " ".join(tokens[i:]) if i else text
