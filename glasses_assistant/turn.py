# SPDX-License-Identifier: GPL-3.0-or-later
"""End-of-turn detection: pure logic over (32 ms chunk, is it speech?).

No model, no clock of its own: the caller passes each chunk's samples, whether
VAD called it speech, and the chunk's capture time. Durations are counted in
chunks, so tests drive it with plain lists of booleans.

Events, in the order a turn produces them:

* ``SpeechStarted`` once ``min_speech_ms`` of speech has run (a click does not count);
* ``SpeechPaused`` after ``pause_ms`` of silence: the caller may start a
  speculative transcription of ``audio`` now;
* ``SpeechResumed`` if the wearer goes on speaking after a pause (the
  speculative work is stale);
* ``TurnEnded`` after ``end_silence_ms`` of silence, or earlier when the caller
  calls :meth:`EndOfTurnDetector.end_now` during a pause (its speculative
  transcript reads as a finished sentence), or when the utterance
  reaches ``max_utterance_ms`` (``capped``; speech that goes on past the cap is
  ignored until the next pause, so a monologue costs one bounded turn).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpeechStarted:
    t: float
    """Capture time of the first chunk of the turn (pre-roll excluded)."""


@dataclass(frozen=True)
class SpeechPaused:
    audio: np.ndarray
    speech_end_t: float
    """Capture time of the last voiced sample."""


@dataclass(frozen=True)
class SpeechResumed:
    t: float


@dataclass(frozen=True)
class TurnEnded:
    audio: np.ndarray
    speech_end_t: float
    """Capture time of the last voiced sample: where voice-to-voice latency starts."""
    detected_t: float
    """Capture time of the chunk that made the decision."""
    capped: bool = False
    early: bool = False
    """Ended before the full end-of-turn silence because the transcript read as finished."""


TurnEvent = SpeechStarted | SpeechPaused | SpeechResumed | TurnEnded


class EndOfTurnDetector:
    """Turns a stream of (chunk, is_speech) into turn events; see the module doc."""

    def __init__(
        self,
        *,
        chunk_ms: float = 32.0,
        min_speech_ms: int = 120,
        pause_ms: int = 200,
        end_silence_ms: int = 500,
        pre_roll_ms: int = 300,
        max_utterance_ms: int = 30_000,
    ) -> None:
        if not 0 < pause_ms <= end_silence_ms:
            raise ValueError("pause_ms must be in (0, end_silence_ms]")
        self._min_speech = max(1, round(min_speech_ms / chunk_ms))
        self._pause = max(1, round(pause_ms / chunk_ms))
        self._end = max(self._pause, round(end_silence_ms / chunk_ms))
        self._max = max(1, int(max_utterance_ms / chunk_ms))
        self._chunk_ms = chunk_ms
        self._pre_roll_len = max(0, round(pre_roll_ms / chunk_ms)) or 1
        self._pre_roll: deque[np.ndarray] = deque(maxlen=self._pre_roll_len)
        self._wants_pre_roll = pre_roll_ms > 0
        self.reset()

    def reset(self) -> None:
        """Forget everything: back to waiting for speech."""
        self.state = "idle"  # idle | onset | speech | capped
        self._keep_pre_roll = self._wants_pre_roll
        if self._pre_roll.maxlen != self._pre_roll_len:
            self._pre_roll = deque(maxlen=self._pre_roll_len)
        self._pre_roll.clear()
        self._onset: list[np.ndarray] = []
        self._onset_t = 0.0
        self._utterance: list[np.ndarray] = []
        self._silence = 0
        self._paused = False
        self._speech_end_t = 0.0

    def prime(self, chunks: list[np.ndarray]) -> None:
        """Start afresh with ``chunks`` (the audio just heard) as a longer pre-roll.

        After a wake word the request may follow without a pause: the words said
        while the wake word was still being recognised are in ``chunks``, and go
        to the front of the turn if speech starts at once. As the wearer stays
        silent, newer audio pushes them out like any pre-roll.
        """
        self.reset()
        self._pre_roll = deque(chunks, maxlen=max(self._pre_roll_len, len(chunks)) or 1)
        self._keep_pre_roll = True

    @property
    def in_speech(self) -> bool:
        return self.state in ("onset", "speech")

    def process(self, samples: np.ndarray, is_speech: bool, t_end: float) -> list[TurnEvent]:
        """Feed one chunk; return the events it caused (usually none)."""
        events: list[TurnEvent] = []
        if self.state == "capped":
            # Past the cap: ignore speech until the wearer pauses for a whole end-of-turn.
            self._silence = 0 if is_speech else self._silence + 1
            if self._silence >= self._end:
                self.reset()
            return events
        if self.state == "idle":
            if is_speech:
                self.state = "onset"
                self._onset = [samples]
                self._onset_t = t_end
                self._speech_end_t = t_end
                if self._min_speech <= 1:
                    events += self._start()
            elif self._keep_pre_roll:
                self._pre_roll.append(samples)
            return events
        if self.state == "onset":
            if is_speech:
                self._onset.append(samples)
                self._speech_end_t = t_end
                if len(self._onset) >= self._min_speech:
                    events += self._start()
            else:
                # Too short to be speech (a click, a tap on the frame): back to idle,
                # keeping it as pre-roll in case real speech follows at once.
                for chunk in self._onset:
                    self._pre_roll.append(chunk)
                self._pre_roll.append(samples)
                self._onset = []
                self.state = "idle"
            return events
        # state == "speech"
        self._utterance.append(samples)
        if is_speech:
            self._speech_end_t = t_end
            if self._paused:
                self._paused = False
                events.append(SpeechResumed(t_end))
            self._silence = 0
        else:
            self._silence += 1
            if self._silence == self._pause and self._pause < self._end and not self._paused:
                self._paused = True
                events.append(SpeechPaused(self._audio(), self._speech_end_t))
        if self._silence >= self._end:
            events.append(TurnEnded(self._audio(), self._speech_end_t, t_end))
            self.reset()
        elif len(self._utterance) >= self._max:
            events.append(TurnEnded(self._audio(), self._speech_end_t, t_end, capped=True))
            self.reset()
            self.state = "capped"
            self._silence = 0 if is_speech else 1
        return events

    def restore(self, chunks: list[np.ndarray]) -> None:
        """The utterance in progress is really ``chunks`` (an earlier turn taken back, the pause
        and the speech so far): it continues from them, as if the turn had never ended."""
        if self.state == "speech":
            self._utterance = list(chunks)

    @property
    def speech_ms(self) -> float:
        """How long the utterance in progress has run, pre-roll included (0 when none is)."""
        return len(self._utterance) * self._chunk_ms if self.state == "speech" else 0.0

    def utterance(self) -> np.ndarray:
        """The audio of the utterance in progress so far (empty when none is)."""
        return self._audio() if self.state == "speech" else np.zeros(0, np.float32)

    @property
    def speech_end_t(self) -> float:
        """Capture time of the last voiced chunk of the utterance in progress (what a pause reports)."""
        return self._speech_end_t

    @property
    def silence_chunks(self) -> int:
        """Chunks of silence since the wearer last spoke (0 while speaking or idle)."""
        return self._silence if self.state == "speech" else 0

    def pause_now(self) -> list[SpeechPaused]:
        """The pause starts now, before ``pause_ms`` of silence (the end-of-turn model already hears
        a finished voice): its :class:`SpeechPaused`, or nothing when not in a pause that has not
        been reported yet. The silence goes on counting as before."""
        if self.state != "speech" or self._silence == 0 or self._paused or self._pause >= self._end:
            return []
        self._paused = True
        return [SpeechPaused(self._audio(), self._speech_end_t)]

    def end_now(self, t_end: float) -> TurnEnded | None:
        """End the turn early (the transcript of the pause reads as finished).

        Only during a pause, so a turn is never cut while the wearer is speaking.
        """
        if self.state != "speech" or not self._paused:
            return None
        event = TurnEnded(self._audio(), self._speech_end_t, t_end)
        self.reset()
        return event

    def finish(self, t_end: float) -> list[TurnEvent]:
        """The source ended: a turn in progress ends now (nothing else happens)."""
        if self.state == "speech":
            event = TurnEnded(self._audio(), self._speech_end_t, t_end)
            self.reset()
            return [event]
        self.reset()
        return []

    def _start(self) -> list[TurnEvent]:
        self.state = "speech"
        self._utterance = [*self._pre_roll, *self._onset] if self._keep_pre_roll else list(self._onset)
        self._pre_roll.clear()
        self._onset = []
        self._silence = 0
        self._paused = False
        return [SpeechStarted(self._onset_t)]

    def _audio(self) -> np.ndarray:
        return np.concatenate(self._utterance) if self._utterance else np.zeros(0, np.float32)


# Words a finished sentence rarely ends on: after them the wearer is probably still thinking.
_HANGING = {
    "and", "or", "but", "so", "because", "the", "a", "an", "to", "of", "in", "on", "at", "for",
    "with", "my", "your", "is", "are", "was", "um", "uh", "er", "erm", "like", "then", "if", "that",
}


def sounds_finished(transcript: str) -> bool:
    """Whether a transcript reads as a finished sentence (Whisper punctuates what it hears).

    True for "What is the capital of France?"; False for "What is the capital of",
    "I want to, um..." or "Tell me about the" where the wearer has only paused.
    """
    text = transcript.strip()
    if not text or text.endswith(("...", "…", ",", "-", "—")):
        return False
    if text[-1] not in ".?!":
        return False
    last = re.findall(r"[a-z']+", text.lower())
    return bool(last) and last[-1] not in _HANGING
