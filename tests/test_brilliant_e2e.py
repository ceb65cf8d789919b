# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole assistant on Brilliant Labs glasses, the vendor's emulator standing in for the pair.

Real models throughout: Piper speaks the wearer's question, which is put into the emulator's
microphone (LC3, as Halo's firmware encodes it) and streamed by our ``ga_app.lua`` over the
emulated Bluetooth; the reply comes back to the glasses' speaker as LC3, and Whisper listens to
what it played; the answer text is read off the emulator's display with rapidocr. The Frame
camera path uses the documented camera stub (:class:`PhotoCamera`) fed a real photo.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import until, words

from glasses_assistant.audio.bridge import BridgeSink, BridgeSource
from glasses_assistant.audio.io import SAMPLE_RATE, WavSink
from glasses_assistant.camera import BridgeCamera
from glasses_assistant.captions import display_listener
from glasses_assistant.devices.brilliant import open_client
from glasses_assistant.devices.brilliant.emulator import EmulatedGlasses
from glasses_assistant.hil.scenario import sounds_like
from glasses_assistant.pipeline import Assistant
from glasses_assistant.trace import TurnTrace

pytestmark = pytest.mark.models

EAGLE = Path("/usr/share/darknet/data/eagle.jpg")


def on_glasses(assistant: Assistant, glasses: EmulatedGlasses, *, turns: int,
               during: Callable[[Any, list[TurnTrace]], Awaitable[None]] | None = None,
               listen_mode: str | None = None, timeout: float = 120.0) -> tuple[list[TurnTrace], Any]:
    """Serve ``turns`` turns from the emulated glasses (``during`` runs alongside); the traces and the client."""
    assistant.conversation.clear()
    assistant.stop_translation()
    url = "halo-emulator?flavour=frame" if glasses.flavour == "frame" else "halo-emulator"
    done: list[TurnTrace] = []

    async def main() -> tuple[list[TurnTrace], Any]:
        client = open_client(url, glasses=glasses, backoff_initial=0.05)
        await client.start()
        assistant.bridge = client
        show = display_listener(client)
        assistant.captions.subscribe(show)
        camera = BridgeCamera(client) if client.capabilities.has_camera else None
        try:
            glasses.speak()
            serve = assistant.serve(BridgeSource(client), BridgeSink(client), half_duplex=True, max_turns=turns,
                                    camera=camera, buttons=client.buttons(), listen_mode=listen_mode,
                                    on_turn=done.append)
            task = asyncio.ensure_future(asyncio.wait_for(serve, timeout))
            if during is not None:
                await during(client, done)
            traces = await task
            await asyncio.sleep(0.3)  # the last display update
            glasses.shown = glasses.framebuffer()  # before our app stops (it clears the display)
            return traces, client
        finally:
            assistant.captions.listeners.remove(show)
            assistant.bridge = None
            await client.close()

    try:
        return asyncio.run(main())
    finally:
        glasses.close()


def heard(assistant: Assistant, glasses: EmulatedGlasses, asked: str) -> list[str]:
    """What the speaker played, transcribed again knowing the question (the 1.5B's one-word "Paris."
    through LC3 came back as "Harris." without it)."""
    audio = glasses.speaker_audio()
    assert len(audio) > 0.5 * SAMPLE_RATE, "the glasses' speaker played nothing"
    assert assistant.stt is not None
    return words(assistant.stt.transcribe(audio, context=asked).text)


def on_display(glasses: EmulatedGlasses) -> list[str]:
    from glasses_assistant.vision.ocr import TextReader

    image = np.asarray(glasses.shown.convert("RGB"))[:, :, ::-1].copy()
    return words(" ".join(line.text for line in TextReader().read(image)))



def test_spoken_question_is_answered_on_the_speaker_and_the_display(assistant: Assistant, speak) -> None:
    glasses = EmulatedGlasses(mic_gap_s=1.0)
    glasses.say(speak("What is the capital of France?"))
    traces, client = on_glasses(assistant, glasses, turns=1)
    assert len(traces) == 1 and traces[0].outcome == "answered", traces
    assert {"capital", "france"} <= set(words(traces[0].transcript))
    assert "paris" in words(traces[0].reply)
    # What the glasses' speaker played, transcribed again.
    assert sounds_like("paris", said := heard(assistant, glasses, "What is the capital of France?")), said
    assert "paris" in on_display(glasses)  # the answer text, read back off the emulator's framebuffer
    assert client.stats.mic_format_errors == 0 and client.stats.speaker_bytes > 0


def test_tap_starts_a_turn_a_tap_stops_the_reply_and_the_battery_reaches_device_status(
        assistant: Assistant, speak, tmp_path: Path) -> None:
    glasses = EmulatedGlasses(mic_gap_s=1.0, battery=64)
    long_question = speak("Tell me a long story about a dragon and a knight.")

    async def during(client: Any, done: list[TurnTrace]) -> None:
        await asyncio.sleep(1.0)
        glasses.tap()  # in tap mode nothing is heard until the wearer taps
        glasses.say(long_question)
        await until(lambda: glasses.speaker_frames > 50)  # the reply is playing on the glasses
        glasses.tap()  # a tap during the reply stops it
        await until(lambda: bool(done))
        reply = await assistant.respond_text("How much battery do my glasses have?", WavSink(tmp_path / "b.wav"))
        assert "64 percent" in reply.reply, reply.reply

    traces, client = on_glasses(assistant, glasses, turns=1, during=during, listen_mode="tap")
    assert traces[0].outcome == "interrupted" and traces[0].barge_in["reason"] == "tap", traces[0]
    assert {"dragon", "knight"} & set(words(traces[0].transcript))
    assert glasses.speaker_stops >= 1  # the glasses were told to drop what they had queued
    assert client.stats.telemetry >= 1


def test_frame_camera_path_names_what_the_photo_shows(assistant: Assistant, speak) -> None:
    if assistant.vision is None:
        assistant._load_vision()
    glasses = EmulatedGlasses(mic_gap_s=1.0, flavour="frame", camera=[EAGLE])
    glasses.say(speak("What am I looking at?"))
    traces, client = on_glasses(assistant, glasses, turns=1)
    assert traces[0].outcome == "answered", traces[0]
    assert {"bird", "eagle"} & set(words(traces[0].reply)), traces[0].reply
    assert glasses.camera is not None and glasses.camera.captures == 1  # one photo, taken after the question
    assert client.stats.camera_frames == 1 and client.stats.camera_unrequested == 0
    assert client.capabilities.audio_format.codec == "pcm"  # Frame's microphone path


def test_a_lua_error_and_a_dropped_link_mid_turn_are_survived(assistant: Assistant, speak) -> None:
    glasses = EmulatedGlasses(mic_gap_s=1.0)
    glasses.say(speak("What is the capital of France?"))

    async def during(client: Any, done: list[TurnTrace]) -> None:
        glasses.fail_next("display.text", "display bus busy")
        await until(lambda: glasses.speaker_frames > 10)  # mid-turn: the answer is being played
        glasses.drop_link()
        await until(lambda: client.stats.reconnects >= 1 and client.connected)
        await until(lambda: bool(done))
        glasses.say(speak("What is the capital of Italy?"))

    traces, client = on_glasses(assistant, glasses, turns=2, during=during)
    assert client.stats.link_lost >= 1 and client.stats.lua_errors >= 1
    assert any("display bus busy" in line for line in client.lua_errors)
    assert traces[-1].outcome == "answered" and "rome" in words(traces[-1].reply), traces[-1]
