# SPDX-License-Identifier: GPL-3.0-or-later
"""When a pause is the end of the wearer's turn: pure logic over silence, the end-of-turn model's
probability and the speculative transcript.

People pause mid-thought ("Set a timer ... for ten minutes"), and Whisper punctuates the first half
as a finished sentence, so the transcript alone cuts them off. The acoustic model (Smart Turn,
:mod:`.audio.smart_turn`) hears a voice left hanging; the transcript sees a sentence left hanging
("... and", "... for the"). The combined policy ends the turn at the first moment both agree it is
finished, and otherwise waits a bounded patience, not for ever: a late end then costs little because
the listener keeps the speculative transcript (and any answer prepared from it) warm while waiting.

No model and no clock of its own: the listener feeds it the detector's events and the silence so far
(in ms, counted in chunks), and asks :meth:`EndOfTurnPolicy.decide` at each chunk and whenever a
result arrives. Policies:

* ``silence``: the turn ends after ``end_silence_ms`` of silence, never earlier;
* ``punctuation`` (the rule before this module): after ``min_end_ms``, as soon as the transcript
  reads as a finished sentence; otherwise after ``end_silence_ms``;
* ``smart-turn``: after ``min_end_ms``, as soon as the model says finished; otherwise after
  ``patience_ms``;
* ``combined``: the model says finished and the transcript (waited for when one is on its way) does
  not hang; a finished transcript
  with a doubtful model (``doubt`` below the threshold) ends after ``end_silence_ms``; otherwise
  after ``patience_ms``.

A voiced burst shorter than ``burst_ms`` in a pause of at least half ``end_silence_ms`` (a cough,
a voice in the room) is not the wearer going on: it keeps the silence counted from before it and
the model's judgement made before it, so it can neither end the turn nor extend it past the
patience.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .turn import sounds_finished

POLICIES = ("combined", "smart-turn", "punctuation", "silence")

# Words no sentence ends on: a transcript ending on one is left hanging, whatever Whisper's full stop says.
_HANGING = frozenset({
    "the", "a", "an", "and", "or", "but", "because", "of", "my", "your", "our", "their", "his", "its",
    "um", "uh", "er", "erm", "if", "than",
})
# Words a statement does not end on but a question may ("What are you looking at?", "Where is it from?").
_HANGING_UNLESS_ASKED = frozenset({
    "to", "in", "on", "at", "for", "with", "from", "about", "by", "into", "like", "that", "so",
    "is", "are", "was", "then",  # "Do you know what it is?"
})


def hangs(transcript: str) -> bool:
    """Whether the transcript is left hanging: a trailing comma, dash or ellipsis, or a last word
    a sentence does not end on ("Tell me about the.", "Set a timer for"), even when Whisper put a
    full stop after it. A question may end on a preposition ("What am I looking at?")."""
    text = transcript.strip()
    if not text:
        return False
    if text.endswith(("...", "…", ",", "-", "—", ";", ":")):
        return True
    words = re.findall(r"[a-z']+", text.lower())
    if not words:
        return False
    return words[-1] in _HANGING or (words[-1] in _HANGING_UNLESS_ASKED and not text.endswith(("?", "!")))


@dataclass(frozen=True)
class Verdict:
    """What :meth:`EndOfTurnPolicy.decide` says: end now, and why (``finished``, ``silence``,
    ``patience``), or wait (``end`` False)."""

    end: bool
    reason: str = ""


WAIT = Verdict(False)
ASK = Verdict(False, "ask")
"""Not yet: ask the acoustic model (and call :meth:`EndOfTurnPolicy.acoustic` with its answer)."""


class EndOfTurnPolicy:
    """The end-of-turn decision for one listener (see the module docstring).

    Call :meth:`started` when a turn's speech starts, :meth:`paused` at each pause (it says
    whether to ask the acoustic model), :meth:`acoustic` with the model's answer,
    :meth:`resumed` when speech comes back, and :meth:`decide` whenever anything changes.
    """

    def __init__(self, kind: str = "combined", *, min_end_ms: int = 200, end_silence_ms: int = 800,
                 patience_ms: int = 1500, threshold: float = 0.5, doubt: float = 0.2, burst_ms: int = 300,
                 acoustic_available: bool = True, eager: bool = False, ask_always: bool = False) -> None:
        if kind not in POLICIES:
            raise ValueError(f"end-of-turn policy must be one of {POLICIES}, not {kind!r}")
        if not 0 < min_end_ms <= end_silence_ms <= patience_ms:
            raise ValueError("need 0 < min_end_ms <= end_silence_ms <= patience_ms")
        if kind in ("combined", "smart-turn") and not acoustic_available:
            kind = "punctuation"  # no model (missing, failed verification): the transcript and silence
        self.kind = kind
        self.min_end_ms, self.end_silence_ms, self.patience_ms = min_end_ms, end_silence_ms, patience_ms
        self.threshold, self.doubt, self.burst_ms = threshold, doubt, burst_ms
        self.eager = eager
        """combined, for when an early end can be taken back: the transcript decides first (finished:
        end now; hanging: wait), and the model is asked only when the words cannot tell ("Set a
        timer" with no full stop), so it costs nothing on the turns the words settle."""
        self.ask_always = ask_always and self.uses_acoustic
        """eager, and the model asked at every pause all the same, beside the transcription: its
        answer is there when the words cannot tell (no ask, no wait), and a voice left hanging holds
        the reply to an early end (the listener's doubtful hold) instead of delaying the end; a
        finished transcript still ends the turn at once, whatever the voice did."""
        self.reset()

    @property
    def uses_acoustic(self) -> bool:
        return self.kind in ("combined", "smart-turn")

    @property
    def max_silence_ms(self) -> int:
        """The silence after which the turn always ends (the detector's own end)."""
        return self.patience_ms if self.uses_acoustic else self.end_silence_ms

    def reset(self) -> None:
        """A turn ended or was dropped: forget it."""
        self.probability: float | None = None
        """The model's latest judgement for this turn (None: not asked, or not answered yet)."""
        self._carried_ms = 0.0  # silence (and bursts) before a burst, still counting
        self._resumed_t: float | None = None
        self._paused_once = False
        self._pending = False
        self._asked = False
        self._last_silence_ms = 0.0

    def started(self) -> None:
        self.reset()

    def resumed(self, t: float) -> None:
        """Voice again after a pause (maybe only a cough: :meth:`paused` will tell by its length)."""
        self._resumed_t = t

    def paused(self, speech_end_t: float, silence_ms: float, chunk_ms: float = 32.0, *,
               transcribing: bool = False) -> bool:
        """A pause began (``silence_ms`` of it so far); whether to ask the acoustic model now
        (``transcribing``: a speculative transcript is on its way; eager waits for it first).

        After a burst shorter than ``burst_ms`` the silence before it keeps counting and the
        judgement made before it stands, so the model is not asked about a cough.
        """
        short = False
        if self._resumed_t is not None and self._paused_once and self.uses_acoustic:  # the rules before: none
            burst_ms = (speech_end_t - self._resumed_t) * 1000.0 + chunk_ms
            # Only in a real pause (half the plain end-of-turn silence): between the words of fluent
            # or slow speech a short word is the wearer speaking, not a cough.
            short = burst_ms < self.burst_ms and self._last_silence_ms >= self.end_silence_ms / 2
            if short:
                self._carried_ms += self._last_silence_ms + burst_ms
            else:
                self._carried_ms = 0.0
        self._resumed_t = None
        self._paused_once = True
        self._last_silence_ms = 0.0
        if short and (self.probability is not None or self._pending):
            return False
        self.probability, self._pending, self._asked = None, False, False
        if not self.uses_acoustic or (self.eager and transcribing and not self.ask_always):
            return False
        self._pending = self._asked = True
        return True

    def acoustic(self, probability: float | None) -> None:
        """The model's answer for the latest pause (None: it failed; decide without it)."""
        self._pending = False
        self.probability = probability

    def decide(self, silence_ms: float, transcript: str | None, *, transcribing: bool = False) -> Verdict:
        """End the turn now? ``silence_ms``: since the wearer last spoke (the detector's count);
        ``transcript``: the speculative transcript of the pause, None while it is not ready;
        ``transcribing``: one is on its way (combined waits for it: the answer needs it anyway, so
        ending before it is ready gains nothing and loses its veto)."""
        self._last_silence_ms = silence_ms
        held = silence_ms + self._carried_ms
        limit = self.max_silence_ms
        if held >= limit:
            return Verdict(True, "patience" if self.uses_acoustic else "silence")
        if silence_ms < self.min_end_ms or self.kind == "silence":
            return WAIT
        if self.kind == "punctuation":
            return Verdict(True, "finished") if transcript is not None and sounds_finished(transcript) else WAIT
        p = self.probability
        if self.kind == "smart-turn":
            return Verdict(True, "finished") if p is not None and p >= self.threshold else WAIT
        # combined
        if transcript is None and transcribing:
            return WAIT
        if transcript is not None and hangs(transcript):
            return WAIT  # "... for the": whatever the voice did, the sentence is not done
        finished = transcript is not None and sounds_finished(transcript)
        if self.eager and finished and (p is None or p >= self.doubt or self.ask_always):
            return Verdict(True, "finished")  # taken back if the wearer goes on before the reply
        if p is None:
            if not self._asked:
                self._pending = self._asked = True
                return ASK  # the words cannot tell: the caller asks the model now
            if self._pending:
                return WAIT  # the model answers in a moment
            # The model failed on this pause: the transcript and silence, as the punctuation rule.
            if finished:
                return Verdict(True, "finished")
            return Verdict(True, "silence") if held >= self.end_silence_ms else WAIT
        if p >= self.threshold:
            return Verdict(True, "finished")
        if p >= self.doubt and transcript is not None and sounds_finished(transcript) \
                and held >= self.end_silence_ms:
            return Verdict(True, "silence")  # the words are done and the voice only half doubts
        return WAIT
