# SPDX-License-Identifier: GPL-3.0-or-later
"""The wake word's second stage: does the pre-roll really say the wake phrase?

The microWakeWord detector is cheap and always on, and on real human speech it fires now and
then on something else ("you are currently the only person in this conference"). When it fires,
the listener hands the last 1.5 s of audio to the speech recogniser that is already loaded
(Whisper tiny.en by default), which scores the wake phrase itself as the transcript of that audio:
the mean log-probability of the phrase's tokens, decoded with the phrase forced ("Whisper with the
phrase as prompt"). Said, "Hey Mycroft" mostly scores -1 to -4; of the real speech that fooled the
detector in 7.2 hours (423 firings at its 0.1 cutoff, 763 at 0.05), nothing scored above -5.47
(-5.65 checked at the detector's peak). The listener wakes only at or above the cutoff.

Why a forced score rather than matching Whisper's own transcript: on the 1.5 s before the firing
tiny.en writes the phrase as "Hey, my girl", "Hey, Nick Roth" or "Game of Groft", so a transcript
that must look like the phrase rejected a quarter of the real wake phrases; the forced score tells
the two apart with room to spare (tools/wakeword_eval.py, README's Hands-free section).

This module is the pure part: the written forms scored per word, the cutoffs of each
``[listen] wake_sensitivity``, and the decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WAKE_CHECK_MS = 1500
"""Audio up to the detector's firing that the second stage scores: the phrase (0.6-1.1 s said)
and the quiet before it."""

SENSITIVITIES = ("strict", "normal", "loose")
"""``[listen] wake_sensitivity``: strict wakes least by mistake, loose misses fewest phrases."""

WRITTEN = {"hey_mycroft": ("Hey, Mycroft",), "okay_nabu": ("Okay, Nabu",), "alexa": ("Alexa",),
           "hey_jarvis": ("Hey, Jarvis",)}
"""How Whisper writes each phrase (a greeting, then a comma). Each form costs one forced decoder
pass (25-70 ms on 2 cores), and "Hey Mycroft" without the comma scored within 0.15 of it, so one
form each; the best-scoring form counts if more are listed."""


@dataclass(frozen=True)
class WakeTuning:
    """How one wake word wakes at one sensitivity."""

    cutoff: float
    """The detector's probability cutoff (the first stage)."""
    min_score: float
    """The phrase's mean token log-probability the recogniser must give the pre-roll (the second)."""
    tiers: tuple[tuple[float, float], ...] = ()
    """(detector probability, looser min_score): the surer the detector was at its peak, the less
    the recogniser must be (a real-speech firing scores lower the surer the detector is)."""
    peak: bool = False
    """Check when the detector's probability has stopped rising (the phrase is over), not on the chunk it
    first passes ``cutoff``: a low cutoff fires while the phrase is still being said ("Hey My-"),
    and listening must start after the phrase, not in its last syllable. Waits at most
    :data:`PEAK_WAIT_MS`."""

    def min_score_at(self, probability: float) -> float:
        """The check's bar for a firing the detector was (at most) ``probability`` sure of."""
        return min([self.min_score, *(score for level, score in self.tiers if probability > level)])


PEAK_WAIT_MS = 320
"""The longest a ``peak`` tuning waits, from the detector's first firing, for its probability to
stop rising: the phrase's last syllable (said slowly) and a little. The chunks meanwhile wait in the
source's queue, so a request said in the same breath loses nothing."""


class PeakWatch:
    """Follows the detector from a firing to its peak (pure logic: feed each chunk's probability).

    :meth:`step` says True on the first chunk the probability does not rise above the highest seen
    since the firing (the detector has heard the phrase out: it holds its peak for about 160 ms
    after, so waiting for it to fall would only add that), or when :data:`PEAK_WAIT_MS` has passed;
    :attr:`top` is that highest.
    """

    def __init__(self, probability: float, chunk_ms: float = 32.0) -> None:
        self.top, self.waited = probability, 0
        self.limit = max(1, int(PEAK_WAIT_MS // chunk_ms))

    def step(self, probability: float) -> bool:
        self.waited += 1
        rose = probability > self.top
        self.top = max(self.top, probability)
        return not rose or self.waited >= self.limit


# Chosen on tools/wakeword_eval.py's run over 7.2 h of real recordings (README, Hands-free): normal
# misses fewest wake phrases with no false accept and half a point of score to spare over the
# best-scoring false firing (hey_mycroft's was -5.53 at a 0.1 cutoff); strict keeps more margin;
# loose misses fewer at the edge (hey_mycroft: still none in the 7.2 h; others up to 3). With the
# check, hey_mycroft's detector cutoff came down to 0.1 (first run): it then missed 9.3 % instead of 15.7 % at
# 0.3, and the 59 firings an hour on real speech are each one check (40-110 ms) while idle.
# Peak (2026-12-03 run, README): a real-speech firing scores lower the surer the detector is at its
# peak (best -5.65 below 0.5, -5.98 past it), while a cutoff as low as 0.05 catches quiet and distant
# phrases but fires on "Hey My-", before the phrase is in the pre-roll and before listening should
# start. So normal hey_mycroft fires at 0.05, waits for the detector's peak (64 ms median, 160 at
# most), and asks -5.0 of the recogniser, -5.7 past 0.5: 5.0 % missed (7.9 % at 0.1 and -5.0 on the
# firing's chunk, in the same run), no false accept in 7.2 h (0.65 and 0.28 of score to spare).
TUNING: dict[str, dict[str, WakeTuning]] = {
    "hey_mycroft": {"strict": WakeTuning(0.5, -4.5),
                    "normal": WakeTuning(0.05, -5.0, ((0.5, -5.7),), peak=True),
                    "loose": WakeTuning(0.05, -5.5, ((0.5, -6.0),), peak=True)},
    "okay_nabu": {"strict": WakeTuning(0.8, -4.5), "normal": WakeTuning(0.4, -5.0),
                  "loose": WakeTuning(0.4, -6.0)},
    "alexa": {"strict": WakeTuning(0.8, -7.5), "normal": WakeTuning(0.5, -8.0), "loose": WakeTuning(0.5, -10.0)},
    "hey_jarvis": {"strict": WakeTuning(0.8, -5.0), "normal": WakeTuning(0.3, -6.5),
                   "loose": WakeTuning(0.3, -7.0)},
}


def tuning(wake_word: str, sensitivity: str = "normal") -> WakeTuning:
    """The cutoffs of ``wake_word`` at ``sensitivity`` (a ValueError names the bad one)."""
    if sensitivity not in SENSITIVITIES:
        raise ValueError(f"wake sensitivity must be one of {', '.join(SENSITIVITIES)} (got {sensitivity!r})")
    if wake_word not in TUNING:
        raise ValueError(f"no tuning for wake word {wake_word!r}")
    return TUNING[wake_word][sensitivity]


@dataclass(frozen=True)
class WakeCheck:
    """What the second stage made of one firing of the detector."""

    accepted: bool
    score: float
    """The best written form's mean token log-probability."""
    elapsed_s: float
    """Time the recogniser took: what the check adds to wake-to-listening."""


def judge(scores: Sequence[float], min_score: float, elapsed_s: float = 0.0) -> WakeCheck:
    """Accept the firing when some written form of the phrase scores at least ``min_score``."""
    score = max(scores, default=float("-inf"))
    return WakeCheck(score >= min_score, round(score, 3), elapsed_s)


def wake_checks(probabilities: Sequence[float], t: WakeTuning, refractory_chunks: int) -> list[tuple[int, float]]:
    """Where the listener runs the check over a stream whose detector gave ``probabilities`` (one per
    chunk), and with which bar: (the chunk the pre-roll ends on, min_score) per firing. The model of
    the listener that the evaluation and the tests score a tuning with."""
    out: list[tuple[int, float]] = []
    for i in firing_chunks(probabilities, t.cutoff, refractory_chunks):
        j, top = peak_after(probabilities, i) if t.peak else (i, probabilities[i])
        out.append((j, t.min_score_at(top)))
    return out


def firing_chunks(probabilities: Sequence[float], cutoff: float, refractory_chunks: int) -> list[int]:
    """The chunks a detector with these per-chunk ``probabilities`` fires on at ``cutoff``: above it,
    and quiet for ``refractory_chunks`` after each firing, as :class:`..wakeword.WakeWordDetector`."""
    out: list[int] = []
    quiet_until = -1
    for i, p in enumerate(probabilities):
        if p > cutoff and i >= quiet_until:
            out.append(i)
            quiet_until = i + refractory_chunks
    return out


def peak_after(probabilities: Sequence[float], chunk: int) -> tuple[int, float]:
    """(the chunk a ``peak`` tuning checks on, the highest probability by then) for a firing at
    ``chunk``, as the listener's :class:`PeakWatch` follows it."""
    watch = PeakWatch(float(probabilities[chunk]))
    j = next((k for k in range(chunk + 1, len(probabilities)) if watch.step(float(probabilities[k]))),
             len(probabilities) - 1)
    return j, watch.top
