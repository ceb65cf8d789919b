# SPDX-License-Identifier: GPL-3.0-or-later
"""The wake word's second stage: does the pre-roll really say the wake phrase?

The microWakeWord detector is cheap and always on, and on real human speech it fires now and
then on something else ("you are currently the only person in this conference"). When it fires,
the listener hands the last 1.5 s of audio to the speech recogniser that is already loaded
(Whisper tiny.en by default), which scores the wake phrase itself as the transcript of that audio:
the mean log-probability of the phrase's tokens, decoded with the phrase forced ("Whisper with the
phrase as prompt"). Said, "Hey Mycroft" mostly scores -1 to -4; of the real speech that fooled the
detector in 7.2 hours (423 firings at its 0.1 cutoff), nothing scored above -5.53. The listener
wakes only at or above the cutoff.

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


# Chosen on tools/wakeword_eval.py's run over 7.2 h of real recordings (README, Hands-free): normal
# misses fewest wake phrases with no false accept and half a point of score to spare over the
# best-scoring false firing (hey_mycroft's was -5.53 at a 0.1 cutoff); strict keeps more margin;
# loose misses fewer at the edge (hey_mycroft: still none in the 7.2 h; others up to 3). With the
# check, hey_mycroft's detector cutoff comes down to 0.1: it then misses 9.3 % instead of 15.7 % at
# 0.3, and the 59 firings an hour on real speech are each one check (40-110 ms) while idle.
TUNING: dict[str, dict[str, WakeTuning]] = {
    "hey_mycroft": {"strict": WakeTuning(0.5, -4.5), "normal": WakeTuning(0.1, -5.0),
                    "loose": WakeTuning(0.1, -5.5)},
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
