# SPDX-License-Identifier: GPL-3.0-or-later
"""Barge-in on the real models, in a virtual room where the microphone also hears the speaker.

The room (glasses_assistant.audio.room) plays the assistant's reply in real time and
feeds it back into the microphone delayed and attenuated, as a pair of glasses would.
"""

from __future__ import annotations

import asyncio

import pytest
from helpers import words

from glasses_assistant.audio.room import AcousticRoom, Utterance
from glasses_assistant.pipeline import Assistant
from glasses_assistant.trace import TurnTrace

pytestmark = pytest.mark.models

LONG = "Tell me about the history of the city of London."


def in_room(assistant: Assistant, room: AcousticRoom, script: list[Utterance]) -> list[TurnTrace]:
    assistant.conversation.clear()
    assistant.interruptions.clear()
    source = room.source(script, tail_s=3.0)
    return asyncio.run(asyncio.wait_for(assistant.serve(source, room.sink, barge_in=True), 120))


def test_talking_over_a_long_answer_stops_it_and_gets_answered(assistant: Assistant, speak) -> None:
    room = AcousticRoom(echo_db=-15, echo_delay_ms=8, noise_db=-60)
    traces = in_room(assistant, room, [
        Utterance(speak(LONG), at_s=0.3),
        Utterance(speak("What is the capital of Japan?"), after_playback_s=2.0),
    ])
    assert [t.outcome for t in traces] == ["interrupted", "answered"], [t.summary() for t in traces]
    first, second = traces
    # Playback stopped soon after the wearer started talking over it.
    assert len(assistant.interruptions) == 1 and assistant.interruptions[0]["reason"] == "speech"
    onset = room.wearer_onsets[1]
    stopped = room.sink.flushes[0]
    assert 0 < stopped - onset < 0.2 + assistant.config.bargein.min_speech_ms / 1000, stopped - onset
    assert room.timeline.stopped_at is not None
    # The new question was heard and answered.
    assert {"capital", "japan"} <= set(words(second.transcript))
    assert "tokyo" in words(second.reply)
    # The history keeps the first answer cut where it was cut, marked interrupted.
    ex = assistant.conversation.exchanges
    assert len(ex) == 2 and ex[0].interrupted and not ex[1].interrupted
    generated = words(str(first.barge_in["generated"]))  # type: ignore[index]
    spoken = words(ex[0].assistant)
    assert spoken and spoken == generated[: len(spoken)] and len(spoken) < len(generated)
    # About 2 s were played before the stop: the kept words match that, not the whole answer.
    played_s = stopped - first.first_audio  # type: ignore[operator]
    assert 1.5 < played_s < 3.5, played_s
    assert 2 <= len(spoken) <= 14, spoken


def test_own_voice_through_the_speaker_does_not_interrupt(assistant: Assistant, speak) -> None:
    room = AcousticRoom(echo_db=-10, echo_delay_ms=12, noise_db=-60)
    traces = in_room(assistant, room, [Utterance(speak(LONG), at_s=0.3)])
    assert [t.outcome for t in traces] == ["answered"], [t.summary() for t in traces]
    assert assistant.interruptions == [] and room.sink.flushes == []
    assert not traces[0].interrupted
    assert assistant.echo_guard is not None and assistant.echo_guard.rejected > 0
