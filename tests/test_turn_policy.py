# SPDX-License-Identifier: GPL-3.0-or-later
"""The end-of-turn policy as pure logic: silence in ms, the model's probability, the transcript."""

from __future__ import annotations

import pytest

from glasses_assistant.turn_policy import WAIT, EndOfTurnPolicy, hangs


def policy(kind: str = "combined", **kwargs: object) -> EndOfTurnPolicy:
    p = EndOfTurnPolicy(kind, min_end_ms=200, end_silence_ms=800, patience_ms=1500, **kwargs)  # type: ignore[arg-type]
    p.started()
    return p


def first_end(p: EndOfTurnPolicy, transcript: str | None, *, upto_ms: int = 3000) -> tuple[int, str] | None:
    """Silence (ms, in 32 ms chunks) at which ``p`` ends the turn, and why."""
    for silence in range(32, upto_ms, 32):
        verdict = p.decide(silence, transcript)
        if verdict.end:
            return silence, verdict.reason
    return None


@pytest.mark.parametrize("text, hanging", [
    ("Set a timer for", True), ("What is the capital of the.", True), ("Tell me about,", True),
    ("What am I looking at?", False), ("Set a timer for.", True), ("What is the capital of?", True),
    ("I want to, um...", True), ("What is the capital of France?", False), ("Set a timer.", False),
    ("", False), ("Turn it off", False),
])
def test_hangs(text: str, hanging: bool) -> None:
    assert hangs(text) is hanging


def test_punctuation_is_todays_rule() -> None:
    p = policy("punctuation")
    assert p.max_silence_ms == 800
    assert first_end(p, "Set a timer.") == (224, "finished")  # the first chunk past min_end_ms
    p.started()
    assert first_end(p, "Set a timer for") == (800, "silence")
    p.started()
    assert first_end(p, None) == (800, "silence")


def test_silence_policy_never_ends_early() -> None:
    p = policy("silence")
    assert first_end(p, "What time is it?") == (800, "silence")


def test_smart_turn_alone_follows_the_model() -> None:
    p = policy("smart-turn")
    assert p.paused(0.0, 96) is True  # ask the model
    assert first_end(p, "Set a timer.", upto_ms=640) is None  # no answer yet: wait
    p.acoustic(0.9)
    assert p.decide(640, None).end
    p.started()
    p.paused(0.0, 96)
    p.acoustic(0.1)
    assert first_end(p, "Set a timer.") == (1504, "patience")
    assert p.max_silence_ms == 1500


@pytest.mark.parametrize("p_voice, transcript, end", [
    (0.8, "What is the capital of France?", (224, "finished")),  # voice and words agree: at once
    (0.8, None, (224, "finished")),  # the voice, before a transcript is ready (none on its way)
    (0.95, "Set a timer for", (1504, "patience")),  # a hanging transcript vetoes a confident model
    (0.3, "What time is it?", (800, "silence")),  # a doubtful voice, finished words: the plain silence
])
def test_combined_judges_voice_and_words(p_voice: float, transcript: str | None, end: tuple[int, str]) -> None:
    p = policy()
    p.paused(0.0, 96)
    p.acoustic(p_voice)
    assert first_end(p, transcript) == end


def test_combined_waits_for_the_model_even_on_a_finished_sentence() -> None:
    # "Set a timer." then a 600 ms pause: the punctuation rule would cut here.
    p = policy()
    p.paused(0.0, 96)
    assert first_end(p, "Set a timer.", upto_ms=700) is None
    p.acoustic(0.05)  # the voice was left hanging
    assert first_end(p, "Set a timer.") == (1504, "patience")


def test_combined_without_a_model_answer_falls_back_to_the_transcript() -> None:
    p = policy()
    p.paused(0.0, 96)
    p.acoustic(None)  # the model failed on this pause
    assert first_end(p, "What time is it?") == (224, "finished")


def test_no_model_at_all_is_the_punctuation_rule() -> None:
    p = EndOfTurnPolicy("combined", acoustic_available=False)
    assert p.kind == "punctuation" and not p.uses_acoustic
    assert p.paused(0.0, 96) is False  # nothing to ask


def test_a_cough_in_a_pause_neither_ends_nor_extends_the_turn() -> None:
    p = policy()
    p.paused(1.0, 96)
    p.acoustic(0.05)  # unfinished: wait up to the patience
    for silence in range(128, 1024, 32):
        assert not p.decide(silence, "Set a timer.").end
    p.resumed(2.0)  # 1 s into the pause, a 160 ms cough
    assert p.paused(2.128, 96) is False  # the model is not asked about a cough
    assert p.probability == 0.05
    # 992 ms of silence and 160 ms of cough already count: the turn still ends by the patience.
    end = first_end(p, "Set a timer, cough.")
    assert end is not None and end[1] == "patience"
    assert 992 + 160 + end[0] <= 1500 + 32


def test_a_real_word_after_a_pause_starts_a_fresh_judgement() -> None:
    p = policy()
    p.paused(1.0, 96)
    p.acoustic(0.05)
    p.decide(600, "What is the capital of.")
    p.resumed(2.0)  # "France" (500 ms): the wearer went on
    assert p.paused(2.5, 96) is True
    assert p.probability is None
    p.acoustic(0.9)
    assert first_end(p, "What is the capital of France?") == (224, "finished")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        EndOfTurnPolicy("sometimes")
    with pytest.raises(ValueError):
        EndOfTurnPolicy("combined", end_silence_ms=800, patience_ms=500)


def test_combined_waits_for_a_transcript_on_its_way() -> None:
    p = policy()
    p.paused(0.0, 96)
    p.acoustic(0.9)
    assert not p.decide(320, None, transcribing=True).end
    assert p.decide(352, "What is the capital of France?").end
    assert not policy().decide(1400, None, transcribing=True).end
    assert policy().decide(1504, None, transcribing=True).reason == "patience"


def test_eager_combined_ends_on_a_finished_transcript_before_the_model_answers() -> None:
    # With the take-back on, an early end costs little: the model can only veto if it answers first.
    p = policy(eager=True)
    assert p.paused(0.0, 96)
    assert first_end(p, "What time is it?") == (224, "finished")
    p.started()
    p.paused(0.0, 96)
    p.acoustic(0.05)  # it answered first, and the voice was left hanging
    assert first_end(p, "What time is it?") == (1504, "patience")
    p.started()
    p.paused(0.0, 96)
    assert first_end(p, "What is the capital of?") == (1504, "patience")  # the words hang: no eager end


def test_eager_asks_the_model_only_when_the_words_cannot_tell() -> None:
    p = policy(eager=True)
    assert p.paused(0.0, 96, transcribing=True) is False  # the transcript first
    assert not p.decide(224, None, transcribing=True).end
    assert p.decide(256, "What time is it?").reason == "finished"  # settled by the words: never asked
    p.started()
    p.paused(0.0, 96, transcribing=True)
    verdict = p.decide(256, "Set a timer")  # no full stop, nothing hanging: ask the voice
    assert verdict.reason == "ask" and not verdict.end
    assert p.decide(288, "Set a timer") == WAIT  # asked once, waiting for the answer
    p.acoustic(0.9)
    assert p.decide(320, "Set a timer").reason == "finished"
    p.started()
    p.paused(0.0, 96, transcribing=True)
    assert p.decide(256, "Set a timer").reason == "ask"
    p.acoustic(None)  # the model failed: the plain silence, as the punctuation rule
    assert first_end(p, "Set a timer") == (800, "silence")


def test_short_words_between_short_gaps_are_speech_not_coughs() -> None:
    # "I ... am ... going ... to": 200 ms words, 192 ms gaps (slow speech, or a TTS monologue).
    p = policy()
    t = 0.0
    for _ in range(20):
        p.paused(t, 96)
        for silence in range(96, 224, 32):
            assert not p.decide(silence, None).end
        p.resumed(t + 0.192)
        t += 0.392
    assert p._carried_ms == 0.0


def test_asking_always_the_voice_is_there_when_the_words_cannot_tell_and_never_delays_a_finished_end() -> None:
    # The doubtful hold asks Smart Turn at every pause: its answer holds the reply, not the end.
    p = policy(eager=True, ask_always=True)
    assert p.paused(0.0, 96, transcribing=True) is True  # asked beside the transcription
    p.acoustic(0.05)  # a voice left hanging, known before the words
    assert first_end(p, "What time is it?") == (224, "finished")  # still ended at once (held, not delayed)
    p.started()
    assert p.paused(0.0, 96, transcribing=True)
    p.acoustic(0.9)
    assert p.decide(256, "Set a timer").reason == "finished"  # the words cannot tell: no ask, no wait
    assert policy(ask_always=True).ask_always  # plain combined asks anyway
    assert not policy("punctuation", ask_always=True).ask_always  # no model to ask
