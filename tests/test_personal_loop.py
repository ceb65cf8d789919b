# SPDX-License-Identifier: GPL-3.0-or-later
"""Memory, timers, personas and the photo tool through the real voice loop.

Real models throughout (Silero VAD, Whisper, SmolLM2-135M, Piper, espeak-ng for the guide
persona, the default detector for the photo), spoken questions from the deterministic test voice, and the
replies heard again by Whisper where the test is about what the wearer hears.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import converse, words

from glasses_assistant.audio.bridge import BridgeSink, BridgeSource, VirtualGlasses
from glasses_assistant.audio.io import SAMPLE_RATE, WavSink, WavSource, resample, write_wav
from glasses_assistant.camera import BridgeCamera, FileCamera
from glasses_assistant.pipeline import Assistant

pytestmark = pytest.mark.models

DOG = Path("/usr/share/darknet/data/dog.jpg")


def heard(assistant: Assistant, audio: np.ndarray, rate: int) -> list[str]:
    """What Whisper hears in reply audio (the wearer's side of the speaker)."""
    assert assistant.stt is not None
    return words(assistant.stt.transcribe(resample(audio, rate, SAMPLE_RATE)).text)


@pytest.fixture
def fresh(assistant: Assistant) -> Assistant:
    """The session assistant with an empty memory and no timers, as the default persona."""
    assert assistant.memory is not None
    assistant.memory.forget_all()
    for t in assistant.memory.timers():
        assistant.memory.set_timer_state(t.id, "cancelled")
    yield assistant
    if assistant.persona.name != "default":
        asyncio.run(assistant.switch_persona("default"))
    assistant.volume = 80


def test_remembers_where_the_car_is_after_unrelated_turns(fresh: Assistant, speak, tmp_path: Path) -> None:
    questions = ["Remember that my car is on level 3.", "What is the capital of France?",
                 "What colour is the sky?", "Tell me a joke.", "Where is my car?"]
    traces, _audio, _rate = converse(fresh, [speak(q) for q in questions], tmp_path)
    assert len(traces) == 5, [t.transcript for t in traces]
    assert traces[0].tool is not None and traces[0].tool["tool"] == "remember", traces[0].tool
    assert [m.text for m in fresh.memory.memories()] == ["my car is on level 3"]  # type: ignore[union-attr]
    assert all(t.tool is None for t in traces[1:4]), [t.tool for t in traces[1:4]]
    last = traces[-1]
    assert {"level", "3"} <= set(words(last.reply)) or "three" in words(last.reply), last.reply
    # The turn log holds the text of every turn (and no audio: there is no audio column).
    log = sqlite3.connect(fresh.memory.path).execute("SELECT question FROM turns").fetchall()  # type: ignore[union-attr]
    assert any("France" in q for (q,) in log)


def test_recalled_memories_go_into_the_prompt_and_clear_matches_are_answered(fresh: Assistant,
                                                                            tmp_path: Path) -> None:
    fresh.memory.remember("the wifi password is tulip42")  # type: ignore[union-attr]
    fresh.memory.remember("my sister lives in Lyon")  # type: ignore[union-attr]
    assert fresh.llm is not None
    question = "Should I bring my sister a present?"  # not a clear match: the model gets the memory
    msgs = fresh.conversation.messages(question, fresh.llm.count_tokens, memories=fresh.recalled(question))
    assert "Things the wearer told you: my sister lives in Lyon." in msgs[0]["content"]
    trace = asyncio.run(fresh.respond_text(question, WavSink(tmp_path / "a.wav")))
    assert trace.tool is None and trace.outcome == "answered"
    # Every word of the question is in one memory: said back from memory, not left to the 135M model.
    trace = asyncio.run(fresh.respond_text("What's the wifi password?", WavSink(tmp_path / "b.wav")))
    assert trace.tool is not None and trace.tool["tool"] == "recall"
    assert trace.reply == "You told me the wifi password is tulip42.", trace.reply


def test_a_timer_set_by_voice_fires_and_is_heard(fresh: Assistant, speak, tmp_path: Path) -> None:
    clips = [speak("Set a timer for 3 seconds."), np.zeros(7 * SAMPLE_RATE, np.float32)]
    traces, audio, rate = converse(fresh, clips, tmp_path)
    told = [t for t in traces if t.outcome != "announcement"]
    said = [t for t in traces if t.outcome == "announcement"]
    assert told[0].tool is not None and told[0].tool["tool"] == "set_timer", told[0].tool
    assert told[0].tool["args"]["seconds"] == 3 and told[0].reply == "Timer set for 3 seconds."
    assert len(said) == 1 and said[0].reply == "Your 3 second timer is done.", [t.reply for t in traces]
    assert said[0].first_audio >= told[0].reply_done  # type: ignore[operator]  # between replies, never over one
    assert "done" in heard(fresh, audio, rate)  # the wearer hears it
    assert fresh.memory.timers() == []  # type: ignore[union-attr]  # marked done once said


def test_too_long_a_timer_and_a_busy_memory_get_spoken_answers(fresh: Assistant, speak, tmp_path: Path) -> None:
    other = sqlite3.connect(fresh.memory.path, timeout=0.1, isolation_level=None)  # type: ignore[union-attr]
    other.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        questions = ["Set a timer for 3 days.", "Remember that my bike is blue.", "What is the capital of France?"]
        traces, _audio, _rate = converse(fresh, [speak(q) for q in questions], tmp_path)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert traces[0].reply == "I can't set a timer for 3 days; the longest is 24 hours.", traces[0].reply
    assert traces[1].reply == "I couldn't save that right now; my memory is busy.", traces[1].reply
    assert traces[2].outcome == "answered" and "paris" in words(traces[2].reply)  # still serving
    assert fresh.memory.memories() == []  # type: ignore[union-attr]


def test_a_persona_switch_by_voice_changes_prompt_and_voice(fresh: Assistant, speak, tmp_path: Path) -> None:
    before = fresh.conversation.system_prompt
    traces, _audio, _rate = converse(fresh, [speak("Switch to the guide persona."), speak("Who are you?")],
                                     tmp_path)
    assert traces[0].tool is not None and traces[0].tool["args"] == {"name": "guide"}, traces[0].tool
    assert fresh.persona.name == "guide"
    assert fresh.conversation.system_prompt != before and "tour guide" in fresh.conversation.system_prompt
    assert traces[0].voice == traces[1].voice == "espeak-ng:en"
    # The new voice is another engine (espeak-ng, not the Piper voice) and the wearer still understands it.
    engine = fresh.voice("espeak-ng:en")
    assert type(engine).__name__ == "EspeakEngine" and engine is not fresh.tts
    spoken = engine.synthesize(traces[1].reply)
    got = heard(fresh, spoken, engine.sample_rate)
    assert len(set(got) & set(words(traces[1].reply))) >= max(2, len(set(words(traces[1].reply))) // 3), (
        got, traces[1].reply)
    # Back by voice; a persona file with an error leaves the current one in place.
    (Path(fresh.config.persona.folder) / "broken.toml").write_text('name = "broken"\n')
    try:
        t = asyncio.run(fresh.respond_text("Switch to the broken persona.", WavSink(tmp_path / "b.wav")))
        assert t.reply == "I couldn't switch to broken, so I'm still guide.", t.reply
    finally:
        (Path(fresh.config.persona.folder) / "broken.toml").unlink()
    t = asyncio.run(fresh.respond_text("Be my buddy.", WavSink(tmp_path / "c.wav")))
    assert fresh.persona.name == "buddy" and t.voice is None


def test_a_photo_taken_by_voice_is_saved(fresh: Assistant, speak, tmp_path: Path) -> None:
    if fresh.vision is None:
        fresh._load_vision()
    source = WavSource.from_samples([speak("Take a photo.")], realtime=True)
    traces = asyncio.run(fresh.serve(source, WavSink(tmp_path / "reply.wav"), camera=FileCamera(DOG)))
    t = traces[0]
    assert t.tool is not None and t.tool["tool"] == "take_photo", t.tool
    saved = Path(str(t.vision["photo"]))  # type: ignore[index]
    assert saved.is_file() and saved.read_bytes()[:3] == b"\xff\xd8\xff"  # a real JPEG
    assert cv2.imread(str(saved)).shape[:2] == cv2.imread(str(DOG)).shape[:2]
    assert "photo" in words(t.reply)


def test_battery_by_voice_from_the_glasses(fresh: Assistant, speak, tmp_path: Path) -> None:
    wav = tmp_path / "q.wav"
    write_wav(wav, np.concatenate([np.zeros(SAMPLE_RATE, np.float32), speak("How much battery is left?")]),
              SAMPLE_RATE)

    async def session():  # type: ignore[no-untyped-def]
        from firmware_bridge import BridgeClient

        client = BridgeClient(sim.url)
        await client.start()
        fresh.bridge = client
        try:
            return await asyncio.wait_for(fresh.serve(BridgeSource(client), BridgeSink(client), half_duplex=True,
                                                      max_turns=1, camera=BridgeCamera(client)), 90)
        finally:
            fresh.bridge = None
            await client.close()

    with VirtualGlasses([wav], speaker_wav=tmp_path / "speaker.wav") as sim:
        traces = asyncio.run(session())
    t = traces[0]
    assert t.tool is not None and t.tool["tool"] == "device_status", t.tool
    assert "percent" in words(t.reply) and "degrees" in words(t.reply), t.reply


def test_pending_timers_are_rearmed_at_start_and_missed_ones_announced(fresh: Assistant, tmp_path: Path) -> None:
    import time

    # Written by an earlier run of the assistant (same database): one fell due while it was off.
    fresh.memory.add_timer("timer", "eggs", time.time() - 60, 300)  # type: ignore[union-attr]
    fresh.memory.add_timer("reminder", "water the plants", time.time() + 2.0)  # type: ignore[union-attr]
    traces, audio, rate = converse(fresh, [np.zeros(5 * SAMPLE_RATE, np.float32)], tmp_path)
    said = [t.reply for t in traces if t.outcome == "announcement"]
    assert said == ["While I was off, your eggs timer went off.", "Reminder: water the plants."], said
    assert "plants" in heard(fresh, audio, rate) and "went" in heard(fresh, audio, rate)
    assert fresh.memory.timers() == []  # type: ignore[union-attr]
