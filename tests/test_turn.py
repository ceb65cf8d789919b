# SPDX-License-Identifier: GPL-3.0-or-later
"""End-of-turn detection as pure logic: chunks of (is it speech?), no model, no clock."""

from __future__ import annotations

import numpy as np
import pytest

from glasses_assistant.turn import (
    EndOfTurnDetector,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnEnded,
    sounds_finished,
)

CHUNK = 512
CHUNK_S = 0.032


def run(pattern: list[bool], **kwargs: int) -> tuple[EndOfTurnDetector, list[tuple[int, object]]]:
    """Feed a list of is_speech flags; each chunk's samples hold its index, t = index."""
    det = EndOfTurnDetector(**kwargs)
    events: list[tuple[int, object]] = []
    for i, speech in enumerate(pattern):
        samples = np.full(CHUNK, i, np.float32)
        for ev in det.process(samples, speech, t_end=float(i)):
            events.append((i, ev))
    return det, events


def chunks(ms: int) -> int:
    return round(ms / 32)


def test_speech_then_silence_ends_the_turn_after_end_silence() -> None:
    pattern = [False] * 10 + [True] * 30 + [False] * 40
    _, events = run(pattern, min_speech_ms=96, pause_ms=192, end_silence_ms=480, pre_roll_ms=160)
    kinds = [type(e).__name__ for _, e in events]
    assert kinds == ["SpeechStarted", "SpeechPaused", "TurnEnded"]
    (i_start, started), (i_pause, paused), (i_end, ended) = events
    assert isinstance(started, SpeechStarted) and started.t == 10.0  # first voiced chunk
    assert i_start == 10 + chunks(96) - 1
    assert isinstance(paused, SpeechPaused) and i_pause == 39 + chunks(192)
    assert isinstance(ended, TurnEnded)
    assert i_end == 39 + chunks(480)
    assert ended.speech_end_t == 39.0  # the last voiced chunk, not when we decided
    assert ended.detected_t == float(i_end)
    assert not ended.capped
    # Pre-roll (160 ms = 5 chunks) is kept ahead of the speech.
    first = ended.audio[:CHUNK]
    assert first[0] == 5.0
    assert len(ended.audio) == (i_end - 5 + 1) * CHUNK


def test_a_click_shorter_than_min_speech_starts_nothing() -> None:
    pattern = [False] * 5 + [True] * 2 + [False] * 60
    _, events = run(pattern, min_speech_ms=128, pause_ms=160, end_silence_ms=480)
    assert events == []


def test_pause_then_resume_then_end() -> None:
    pattern = [True] * 20 + [False] * 8 + [True] * 10 + [False] * 20
    _, events = run(pattern, min_speech_ms=32, pause_ms=160, end_silence_ms=480)
    kinds = [type(e).__name__ for _, e in events]
    assert kinds == ["SpeechStarted", "SpeechPaused", "SpeechResumed", "SpeechPaused", "TurnEnded"]
    resumed = [e for _, e in events if isinstance(e, SpeechResumed)][0]
    assert resumed.t == 28.0
    ended = events[-1][1]
    assert isinstance(ended, TurnEnded) and ended.speech_end_t == 37.0


def test_short_pauses_inside_a_sentence_do_not_end_the_turn() -> None:
    pattern = ([True] * 10 + [False] * 10) * 5 + [False] * 20  # 320 ms gaps < 480 ms end
    _, events = run(pattern, min_speech_ms=32, pause_ms=160, end_silence_ms=480)
    ends = [e for _, e in events if isinstance(e, TurnEnded)]
    assert len(ends) == 1


def test_monologue_is_capped_once_and_memory_stays_bounded() -> None:
    ten_minutes = chunks(600_000)
    det = EndOfTurnDetector(min_speech_ms=32, pause_ms=160, end_silence_ms=480, max_utterance_ms=30_000)
    ends: list[TurnEnded] = []
    for i in range(ten_minutes):
        for ev in det.process(np.zeros(CHUNK, np.float32), True, float(i)):
            if isinstance(ev, TurnEnded):
                ends.append(ev)
        assert len(det._utterance) <= chunks(30_000) + 1
    assert len(ends) == 1 and ends[0].capped
    assert len(ends[0].audio) <= 30 * 16_000 + CHUNK
    # Speech past the cap is ignored until the wearer pauses; then a new turn can start.
    for _ in range(chunks(480)):
        assert det.process(np.zeros(CHUNK, np.float32), False, 0.0) == []
    assert det.state == "idle"
    events = []
    for _ in range(5):
        events += det.process(np.zeros(CHUNK, np.float32), True, 0.0)
    assert any(isinstance(e, SpeechStarted) for e in events)


def test_source_ending_mid_speech_ends_the_turn() -> None:
    det, events = run([True] * 10, min_speech_ms=32)
    assert [type(e).__name__ for _, e in events] == ["SpeechStarted"]
    final = det.finish(99.0)
    assert len(final) == 1 and isinstance(final[0], TurnEnded) and final[0].speech_end_t == 9.0
    assert det.finish(100.0) == []


def test_silence_only_produces_no_events() -> None:
    _, events = run([False] * 1000)
    assert events == []


def test_end_now_only_during_a_pause() -> None:
    det = EndOfTurnDetector(min_speech_ms=32, pause_ms=96, end_silence_ms=800)
    for i in range(10):
        det.process(np.zeros(CHUNK, np.float32), True, float(i))
    assert det.end_now(10.0) is None  # still speaking: never cut the wearer off
    events = []
    for i in range(10, 13):
        events += det.process(np.zeros(CHUNK, np.float32), False, float(i))
    assert any(isinstance(e, SpeechPaused) for e in events)
    assert det.silence_chunks == 3
    ended = det.end_now(12.0)
    assert isinstance(ended, TurnEnded) and ended.speech_end_t == 9.0 and ended.detected_t == 12.0
    assert det.state == "idle" and det.end_now(13.0) is None


def test_pause_now_starts_the_pause_once_before_pause_ms() -> None:
    det = EndOfTurnDetector(min_speech_ms=32, pause_ms=96, end_silence_ms=800)
    for i in range(10):
        det.process(np.zeros(CHUNK, np.float32), True, float(i))
    assert det.pause_now() == []  # speaking: no pause to start
    assert det.process(np.zeros(CHUNK, np.float32), False, 10.0) == []
    assert det.speech_end_t == 9.0
    (paused,) = det.pause_now()  # Smart Turn heard the voice finished at the first silent chunk
    assert isinstance(paused, SpeechPaused) and paused.speech_end_t == 9.0 and len(paused.audio) == 11 * CHUNK
    assert det.pause_now() == []  # once
    later = [e for i in (11, 12, 13) for e in det.process(np.zeros(CHUNK, np.float32), False, float(i))]
    assert later == []  # pause_ms brings no second pause
    assert det.silence_chunks == 4
    (resumed,) = det.process(np.zeros(CHUNK, np.float32), True, 14.0)  # going on: resumed, as after any pause
    assert isinstance(resumed, SpeechResumed)
    assert det.end_now(14.0) is None  # speaking again: never cut


@pytest.mark.parametrize(
    ("text", "finished"),
    [
        ("What is the capital of France?", True),
        ("Set a timer for ten minutes.", True),
        ("Wow!", True),
        ("What is the capital of", False),
        ("Tell me about the", False),
        ("I want to, um", False),
        ("I was thinking and...", False),
        ("So the thing is,", False),
        ("Remind me to call my mom and.", False),
        ("", False),
    ],
)
def test_sounds_finished(text: str, finished: bool) -> None:
    assert sounds_finished(text) is finished
