# SPDX-License-Identifier: GPL-3.0-or-later
"""The turn-taking benchmark's own logic (no models): the stretched pause, the replay and the scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glasses_assistant.benches.turns import Pause, Record, Utterance, replay, score, stretch_gap
from glasses_assistant.turn_policy import EndOfTurnPolicy

RATE = 16_000


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)


def test_the_comma_gap_is_stretched_to_the_pause() -> None:
    audio = np.concatenate([tone(0.6), np.zeros(int(0.05 * RATE), np.float32), tone(0.2),
                            np.zeros(int(0.2 * RATE), np.float32), tone(0.5)])
    out, resume = stretch_gap(audio, 600)
    assert abs(len(out) - len(audio) - 0.4 * RATE) < 0.02 * RATE  # the 200 ms gap became 600 ms
    assert abs(resume - (0.6 + 0.05 + 0.2 + 0.6)) < 0.02
    assert np.abs(out[int((resume - 0.55) * RATE):int((resume - 0.05) * RATE)]).max() < 1e-3


def record(resume_s: float | None, silence_runs: list[tuple[int, int]], pauses: dict[int, Pause]) -> Record:
    """Speech from chunk 10; ``silence_runs``: (first chunk, length) of silences after it."""
    silence = [0] * 120
    for start, length in silence_runs:
        for k in range(length):
            silence[start + k] = k + 1
    last_voiced = max(s for s, _ in silence_runs) - 1
    resumes = {start + length: (start + length + 1) * 0.032 for start, length in silence_runs[:-1]}
    rec = Record(Utterance("v", "t", np.zeros(0, np.float32), resume_s), silence=silence, starts=[10],
                 resumes=resumes, pauses=pauses)
    rec.speech_end_s = (last_voiced + 1) * 0.032
    return rec


def test_a_policy_that_ends_in_the_pause_is_a_false_cut_off() -> None:
    # Speech 10..29, a 600 ms pause (chunks 30..48), speech 49..59, then silence.
    pauses = {32: Pause(32, "Set a timer.", 0.1, 0.9, 0.1),
              62: Pause(62, "Set a timer for ten minutes.", 0.1, 0.95, 0.1)}
    rec = record(1.6, [(30, 19), (60, 60)], pauses)
    punct = score([rec], lambda: EndOfTurnPolicy("punctuation"))
    assert punct["false_cutoffs"] == 1 and punct["false_cutoff_pct"] == 100.0
    patient = score([rec], lambda: EndOfTurnPolicy("combined", threshold=0.99))
    # Not judged finished (0.95 < 0.99): the words are, so it ends after the plain 800 ms silence.
    assert patient["false_cutoffs"] == 0 and patient["missed_ends"] == 1
    assert patient["wait_all_p50_ms"] is not None and 800 - 64 <= patient["wait_all_p50_ms"] <= 800 + 64


def test_the_wait_counts_from_the_last_voiced_chunk_to_the_decision() -> None:
    rec = record(None, [(40, 80)], {42: Pause(42, "What time is it?", 0.25, 0.9, 0.2)})
    out = replay(rec, EndOfTurnPolicy("combined"))
    assert out.reason == "finished"
    # The pause event came at chunk 42 (t = 1.376 s); the transcript 250 ms later decides.
    assert abs(out.end_s - (1.376 + 0.25)) < 1e-6  # type: ignore[operator]
    result = score([rec], lambda: EndOfTurnPolicy("combined"))
    assert abs(result["wait_finished_p50_ms"] - (1.376 + 0.25 - 40 * 0.032) * 1000) < 1e-3


def test_an_early_end_the_wearer_talks_into_is_taken_back() -> None:
    from glasses_assistant.benches.turns import TakeBack

    # "What time is it?" (p 0.9) then a 600 ms pause (chunks 30..48) and "in Tokyo" from chunk 49.
    pauses = {32: Pause(32, "What time is it?", 0.1, 0.9, 0.1),
              62: Pause(62, "What time is it in Tokyo?", 0.1, 0.95, 0.1)}
    rec = record(1.6, [(30, 19), (60, 60)], pauses)
    plain = replay(rec, EndOfTurnPolicy("combined"))
    assert plain.end_s is not None and plain.end_s < rec.speech_end_s  # cut off in the pause
    # A reply that takes 700 ms to be heard: the wearer is heard going on ~540 ms after the end.
    out = replay(rec, EndOfTurnPolicy("combined"), TakeBack(0.7, 2.0, 0.12))
    assert out.taken_back == 1 and out.reason == "finished"
    assert out.end_s is not None and out.end_s > rec.speech_end_s
    # A reply heard sooner (300 ms) is not taken back: that is a real cut-off.
    assert replay(rec, EndOfTurnPolicy("combined"), TakeBack(0.3, 2.0, 0.12)).taken_back == 0
    result = score([rec], lambda: EndOfTurnPolicy("combined"), TakeBack(0.7, 2.0, 0.12))
    assert result["false_cutoffs"] == 0 and result["taken_back"] == 1


def test_with_the_hold_a_quick_reply_waits_out_the_window_and_is_taken_back() -> None:
    from glasses_assistant.benches.turns import TakeBack

    # As above: "in Tokyo" resumes after a 600 ms pause. A reply ready 300 ms after the end would be
    # heard over the wearer, but held until the window (1 s + 120 ms) closes, the turn is taken back.
    pauses = {32: Pause(32, "What time is it?", 0.1, 0.9, 0.1),
              62: Pause(62, "What time is it in Tokyo?", 0.1, 0.95, 0.1)}
    rec = record(1.6, [(30, 19), (60, 60)], pauses)
    quick = TakeBack(0.3, 1.0, 0.12)
    assert replay(rec, EndOfTurnPolicy("combined"), quick).taken_back == 0
    held = replay(rec, EndOfTurnPolicy("combined"), TakeBack(0.3, 1.0, 0.12, hold=True))
    assert held.taken_back == 1 and held.end_s is not None and held.end_s > rec.speech_end_s
    # The final end was early too: its quick reply is held until 1.12 s after the last word.
    last_word = 60 * 0.032
    assert abs(held.held_s - (last_word + 1.12 - (held.end_s + 0.3))) < 1e-6
    assert quick.heard_s(2.0, 1.9) == pytest.approx(2.3)
    assert TakeBack(0.3, 1.0, 0.12, hold=True).heard_s(2.0, 1.9) == pytest.approx(1.9 + 1.12)
    result = score([rec], lambda: EndOfTurnPolicy("combined"), TakeBack(0.3, 1.0, 0.12, hold=True))
    assert result["false_cutoffs"] == 0 and result["rows"][0]["held_ms"] > 0


def test_the_doubtful_hold_holds_only_words_the_llm_doubts_end_there() -> None:
    from glasses_assistant.benches.turns import TakeBack

    doubt = TakeBack(0.3, 1.0, 0.12, hold_below=0.9)
    window = 1.9 + 1.12
    assert doubt.heard_s(2.0, 1.9, 0.5, 2.1) == pytest.approx(window)  # doubted: held out the window
    assert doubt.heard_s(2.0, 1.9, None, None) == pytest.approx(2.3)  # nothing judged (not the chat's): not held
    assert doubt.heard_s(2.0, 1.9, 0.95, 2.1) == pytest.approx(2.3)  # trusted before the reply is ready
    assert doubt.heard_s(2.0, 1.9, 0.95, 2.6) == pytest.approx(2.6)  # trusted late: held until then
    assert doubt.heard_s(2.0, 1.9, 0.95, 9.0) == pytest.approx(window)  # never longer than the hold

    # "What time is it? ... in Tokyo": a first half the LLM doubts is held and taken back; one it
    # trusts is answered over the wearer (a false cut-off), like no hold at all.
    def rec(end_p: float) -> Record:
        pauses = {32: Pause(32, "What time is it?", 0.1, 0.9, 0.1, end_p, 0.25),
                  62: Pause(62, "What time is it in Tokyo?", 0.1, 0.95, 0.1, 0.98, 0.25)}
        return record(1.6, [(30, 19), (60, 60)], pauses)

    doubted = replay(rec(0.5), EndOfTurnPolicy("combined"), doubt)
    assert doubted.taken_back == 1 and doubted.end_s is not None and doubted.end_s > 1.6
    assert doubted.held_s == pytest.approx(0.0)  # the whole question is trusted: not held
    trusted = score([rec(0.95)], lambda: EndOfTurnPolicy("combined"), doubt)
    assert trusted["false_cutoffs"] == 1 and trusted["rows"][0]["taken_back"] == 0


def test_the_voice_doubt_holds_a_first_half_that_reads_finished_but_sounds_unfinished() -> None:
    from glasses_assistant.benches.turns import TakeBack

    voice = TakeBack(0.3, 1.0, 0.12, hold_below=0.9, voice_doubt=0.2)
    window = 1.9 + 1.12
    assert voice.heard_s(2.0, 1.9, 0.95, 2.1, 0.05, 2.05) == pytest.approx(window)  # the voice doubts
    assert voice.heard_s(2.0, 1.9, 0.95, 2.1, 0.9, 2.05) == pytest.approx(2.3)  # both trust it in time
    assert voice.heard_s(2.0, 1.9, 0.95, 2.1, 0.9, 2.5) == pytest.approx(2.5)  # the voice judged late
    assert voice.heard_s(2.0, 1.9, 0.95, 2.1) == pytest.approx(2.3)  # not asked: the words decide
    assert voice.heard_s(2.0, 1.9, None, None, 0.05, 2.05) == pytest.approx(2.3)  # not judged: never held

    # "What time is it? ... in Tokyo": words the LLM trusts, a voice Smart Turn doubts, a reply
    # ready 300 ms after the end: held, so the wearer's "in Tokyo" takes the turn back.
    pauses = {32: Pause(32, "What time is it?", 0.1, 0.05, 0.1, 0.98, 0.25),
              62: Pause(62, "What time is it in Tokyo?", 0.1, 0.95, 0.1, 0.98, 0.25)}
    rec = record(1.6, [(30, 19), (60, 60)], pauses)
    asking = EndOfTurnPolicy("combined", eager=True, ask_always=True)
    assert replay(rec, asking, voice).taken_back == 1
    words_only = TakeBack(0.3, 1.0, 0.12, hold_below=0.9)
    assert replay(rec, EndOfTurnPolicy("combined", eager=True), words_only).taken_back == 0  # cut off


def test_the_onset_hold_takes_back_a_turn_the_wearer_goes_on_just_before_the_reply() -> None:
    from glasses_assistant.benches.turns import TakeBack

    # The wearer goes on (chunk 49, t 1.6 s) 60 ms before a reply ready at 1.66 s would be heard; the
    # detector says speech started only 120 ms later. With the onset hold the voiced chunk holds the
    # reply meanwhile: taken back. Without it the reply starts over the wearer.
    pauses = {32: Pause(32, "What time is it?", 0.1, 0.9, 0.1),
              62: Pause(62, "What time is it in Tokyo?", 0.1, 0.95, 0.1)}
    rec = record(1.6, [(30, 19), (60, 60)], pauses)
    end = replay(rec, EndOfTurnPolicy("combined")).end_s
    assert end is not None
    reply_s = 1.6 + 0.06 - end
    assert replay(rec, EndOfTurnPolicy("combined"), TakeBack(reply_s, 2.0, 0.12)).taken_back == 1
    assert replay(rec, EndOfTurnPolicy("combined"), TakeBack(reply_s, 2.0, 0.12, onset_hold=False)).taken_back == 0



def test_a_saved_record_replays_and_one_from_before_the_early_pass_falls_back(tmp_path: Path) -> None:
    from glasses_assistant.benches.turns import record_from_json, record_to_json, run_turn_bench
    from glasses_assistant.config import load_config

    rec = record(1.6, [(30, 19), (60, 60)], {32: Pause(32, "Set a timer.", 0.1, 0.9, 0.1, 0.6, 0.2)})
    assert record_from_json(json.loads(json.dumps(record_to_json(rec)))).pauses[32] == rec.pauses[32]
    saved = tmp_path / "turns.json"  # a report from before the second front-end pass: no early_records
    saved.write_text(json.dumps({"records": [record_to_json(rec)], "load_average": [0.1, 0.1, 0.1]}))
    report = run_turn_bench(load_config(), replay_path=saved, progress=lambda _line: None)
    assert report["policies"]["punctuation"]["false_cutoffs"] == 1
    assert report["policies"]["doubt: words+voice"]["paused"] == 1  # replayed on the one pass
    assert len(report["early_records"]) == 1
