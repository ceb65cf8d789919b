# SPDX-License-Identifier: GPL-3.0-or-later
"""The wake word's second stage as plain data: the decision on the phrase's score, the tuning per
sensitivity, the setting, and the virtual room's distance (the evaluation's positives)."""

from __future__ import annotations

import numpy as np
import pytest

from glasses_assistant.audio.room import at_distance
from glasses_assistant.audio.wake_verify import (
    PEAK_WAIT_MS,
    SENSITIVITIES,
    TUNING,
    WRITTEN,
    PeakWatch,
    WakeTuning,
    judge,
    tuning,
    wake_checks,
)
from glasses_assistant.audio.wakeword import WAKE_PHRASES, WAKE_WORDS
from glasses_assistant.config import load_config
from glasses_assistant.errors import ConfigError


def test_judge_accepts_at_the_cutoff_on_the_best_form() -> None:
    check = judge([-9.1, -3.2], -6.5, elapsed_s=0.08)
    assert check.accepted and check.score == -3.2 and check.elapsed_s == 0.08
    assert judge([-6.5], -6.5).accepted
    assert not judge([-8.2, -7.9], -6.5).accepted
    assert not judge([], -6.5).accepted  # nothing scored: never wake


def test_every_word_has_a_written_form_and_a_tuning_per_sensitivity_ordered_strict_to_loose() -> None:
    assert set(TUNING) == set(WRITTEN) == set(WAKE_WORDS) == set(WAKE_PHRASES)
    for word in WAKE_WORDS:
        assert all(form.replace(",", "").lower() == WAKE_PHRASES[word] for form in WRITTEN[word])
        strict, normal, loose = (tuning(word, s) for s in SENSITIVITIES)
        assert strict.cutoff >= normal.cutoff >= loose.cutoff, word
        assert strict.min_score >= normal.min_score >= loose.min_score, word
        assert all(0 < t.cutoff < 1 and t.min_score < 0 for t in (strict, normal, loose))


def test_the_bar_is_lower_the_surer_the_detector_was() -> None:
    t = WakeTuning(0.05, -5.0, ((0.5, -5.5), (0.9, -6.5)))
    assert t.min_score_at(0.06) == -5.0 and t.min_score_at(0.5) == -5.0
    assert t.min_score_at(0.6) == -5.5 and t.min_score_at(0.95) == -6.5
    assert WakeTuning(0.1, -5.0).min_score_at(0.99) == -5.0  # no tiers: one bar


def test_the_peak_is_the_first_chunk_the_probability_does_not_rise_or_the_longest_wait() -> None:
    watch = PeakWatch(0.06)
    assert [watch.step(p) for p in (0.2, 0.6, 0.95)] == [False] * 3
    assert watch.step(0.5) and watch.top == 0.95 and watch.waited == 4
    held = PeakWatch(0.5)
    assert not held.step(0.996) and held.step(0.996) and held.top == 0.996  # it holds its peak: over
    rising = PeakWatch(0.06)
    steps = [rising.step(0.06 + k / 100) for k in range(1, 30)]
    assert steps.index(True) + 1 == PEAK_WAIT_MS // 32 and rising.top == pytest.approx(0.06 + rising.waited / 100)


def test_the_listener_checks_a_peak_tuning_after_the_phrase_with_the_peaks_bar() -> None:
    probs = [0.0] * 5 + [0.06, 0.2, 0.6, 0.95, 0.5, 0.1] + [0.0] * 10 + [0.07, 0.03] + [0.0] * 70 + [0.3, 0.0]
    tiers = ((0.5, -5.5), (0.9, -6.5))
    # On the firing's chunk: the detector fires at 0.06 (quiet for 10 chunks after), at 0.07 and at 0.3.
    assert wake_checks(probs, WakeTuning(0.05, -5.0, tiers), 10) == [(5, -5.0), (21, -5.0), (93, -5.0)]
    # At the peak: one chunk after it, with the bar of the highest probability by then.
    assert wake_checks(probs, WakeTuning(0.05, -5.0, tiers, peak=True), 10) == [(9, -6.5), (22, -5.0), (94, -5.0)]
    assert wake_checks(probs, WakeTuning(0.5, -5.0, tiers, peak=True), 40) == [(9, -6.5)]


def test_unknown_sensitivity_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="strict, normal, loose"):
        tuning("hey_mycroft", "paranoid")
    with pytest.raises(ConfigError, match="--listen-wake-sensitivity must be strict, normal or loose"):
        load_config(overrides={"listen": {"wake_sensitivity": "paranoid"}})
    cfg = load_config(overrides={"listen": {"wake_sensitivity": "strict", "wake_verify": False}}).listen
    assert cfg.wake_sensitivity == "strict" and cfg.wake_verify is False


def test_further_away_is_quieter_and_more_reverberant() -> None:
    rng = np.random.default_rng(0)
    burst = np.zeros(16_000, np.float32)
    burst[:800] = rng.standard_normal(800).astype(np.float32) * 0.1
    near, far = at_distance(burst, 0.1), at_distance(burst, 1.0)

    def energy(x: np.ndarray, a: int, b: int) -> float:
        return float(np.sum(x[a:b] ** 2))

    assert energy(far, 0, 16_000) < energy(near, 0, 16_000) / 10
    # The tail after the burst is the room; relative to the direct sound it grows with distance.
    assert energy(far, 2400, 16_000) / energy(far, 0, 800) > 10 * energy(near, 2400, 16_000) / energy(near, 0, 800)
    assert len(near) >= len(burst)
