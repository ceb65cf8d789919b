# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end on the real models, no mocks: spoken question in, spoken answer out.

These are the tests that claim the product works. They load Silero VAD, Whisper
tiny.en, SmolLM2-135M and the Piper voice from the model cache (`make` fetches
them) and run the same loop `glasses-assistant run` runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import converse, words

from glasses_assistant.audio.io import SAMPLE_RATE, read_wav, resample, write_wav
from glasses_assistant.pipeline import Assistant

pytestmark = pytest.mark.models


def test_spoken_question_gets_a_spoken_answer(assistant: Assistant, speak, tmp_path: Path) -> None:
    # A question whose answer is a sentence: a lone word ("Tokyo.") is too little speech for Whisper
    # to be sure of when it hears the reply back.
    question = speak("What does a thermometer measure?")
    traces, reply_audio, rate = converse(assistant, [question], tmp_path)

    assert len(traces) == 1
    t = traces[0]
    assert t.outcome == "answered", t.error
    # What the wearer said was heard ...
    assert {"thermometer", "measure"} <= set(words(t.transcript))
    # ... the reply answers it ...
    assert "temperature" in words(t.reply)
    # ... and the reply audio is speech: transcribing it again recovers the reply's words.
    assert len(reply_audio) > 0.5 * rate
    assert assistant.stt is not None
    heard = assistant.stt.transcribe(resample(reply_audio, rate, SAMPLE_RATE)).text
    said = set(words(t.reply))
    recovered = said & set(words(heard))
    assert "temperature" in words(heard)
    assert len(recovered) >= 0.6 * len(said), (t.reply, heard)
    # The trace holds every stage, in order, and a plausible latency.
    assert t.speech_start < t.speech_end < t.end_detected <= t.transcript_final  # type: ignore[operator]
    assert t.first_token <= t.first_phrase <= t.first_audio <= t.reply_done  # type: ignore[operator]
    assert t.voice_to_voice_ms is not None and 0 < t.voice_to_voice_ms < 15_000


def test_two_turns_keep_the_conversation(assistant: Assistant, speak, tmp_path: Path) -> None:
    clips = [speak("What is the capital of France?"), speak("How many legs does a spider have?")]
    traces, _, _ = converse(assistant, clips, tmp_path, realtime=False, gap_s=1.0)
    assert [t.outcome for t in traces] == ["answered", "answered"]
    assert "paris" in words(traces[0].reply)
    assert {"spider", "legs"} <= set(words(traces[1].transcript))
    assert {"8", "eight"} & set(words(traces[1].reply))
    assert [e.user for e in assistant.conversation.exchanges] == [traces[0].transcript, traces[1].transcript]


@pytest.mark.parametrize("rate", [8000, 48000])
def test_other_sample_rates_are_resampled(assistant: Assistant, speak, tmp_path: Path, rate: int) -> None:
    f = tmp_path / f"q{rate}.wav"
    write_wav(f, resample(speak("What is the capital of Italy?"), SAMPLE_RATE, rate), rate)
    audio, got = read_wav(f)
    traces, _, _ = converse(assistant, [resample(audio, got, SAMPLE_RATE)], tmp_path, realtime=False)
    assert len(traces) == 1 and {"capital", "italy"} <= set(words(traces[0].transcript))
    assert "rome" in words(traces[0].reply)


def test_silence_and_noise_get_no_answer_and_the_loop_goes_on(
    assistant: Assistant, speak, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    silence = np.zeros(3 * SAMPLE_RATE, np.float32)
    noise = (0.05 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32)
    traces, _, _ = converse(assistant, [silence], tmp_path, realtime=False)
    assert traces == []  # nothing said, nothing answered
    traces, _, _ = converse(assistant, [noise, speak("What is the capital of France?")], tmp_path, realtime=False)
    answered = [t for t in traces if t.outcome == "answered"]
    assert len(answered) == 1 and "paris" in words(answered[0].reply)
    assert all(t.outcome in ("answered", "no-speech") for t in traces)


def test_a_failing_turn_does_not_stop_the_loop(
    assistant: Assistant, speak, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert assistant.llm is not None
    real_stream = assistant.llm.stream
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("llama_decode returned -1")  # what llama.cpp raises on a bad batch
        return real_stream(*args, **kwargs)

    monkeypatch.setattr(assistant.llm, "stream", flaky)
    clips = [speak("What is the capital of France?"), speak("What is the capital of Japan?")]
    traces, _, _ = converse(assistant, clips, tmp_path, realtime=False)
    assert [t.outcome for t in traces] == ["error", "answered"]
    assert "llama_decode" in (traces[0].error or "")
    assert "tokyo" in words(traces[1].reply)


def test_ten_minute_monologue_is_capped_to_one_bounded_turn(
    assistant: Assistant, speak, tmp_path: Path
) -> None:
    sentence = speak("I am going to keep talking about the weather and my day for a very long time")
    reps = int(600 * SAMPLE_RATE / len(sentence)) + 1
    monologue = np.tile(sentence, reps)[: 600 * SAMPLE_RATE]
    traces, _, _ = converse(assistant, [monologue], tmp_path, realtime=False)
    assert len(traces) >= 1
    first = traces[0]
    assert first.capped and first.outcome == "answered"
    assert "weather" in words(first.transcript)
    # Past the cap, speech is ignored until a pause: a monologue costs one turn, not twenty.
    assert len(traces) <= 2
