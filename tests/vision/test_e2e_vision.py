# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: the virtual glasses show a photo, the wearer asks "what am I looking at?",
and the spoken answer names the main object.

Real models and real protocol: the question is spoken by Piper and transcribed by
Whisper, the intent matched, the frame captured over the bridge from `glasses-sim`
(LED on, a frame taken after the question), the detector run, the LLM phrases the
answer from the facts, Piper speaks it and Whisper hears it back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers import words

from firmware_bridge import BridgeClient
from glasses_assistant.audio.bridge import VirtualGlasses
from glasses_assistant.audio.io import SAMPLE_RATE, resample
from glasses_assistant.pipeline import Assistant
from glasses_assistant.vision import Detector, TextReader, VisionService, match_vision_intent
from glasses_assistant.vision.skill import faithful

pytestmark = pytest.mark.models


def capture_from_glasses(image: Path) -> tuple[bytes, dict]:
    async def session() -> tuple[bytes, dict]:
        client = BridgeClient(sim.url)
        await client.start()
        try:
            await client.set_capture_led(True)  # the bridge refuses frames taken with the LED off
            frame = await client.capture(timeout=10.0)
            return frame.jpeg, {"width": frame.width, "height": frame.height,
                                "device_time_us": frame.device_time_us, "led_on": frame.led_on}
        finally:
            await client.close()

    with VirtualGlasses([], camera=[image]) as sim:
        return asyncio.run(session())


@pytest.mark.parametrize(("name", "main"), [("eagle", {"bird", "eagle"}), ("dog", {"dog", "bicycle", "bike"})])
def test_what_am_i_looking_at(assistant: Assistant, speak, detector: Detector, reader: TextReader,  # type: ignore[no-untyped-def]
                              photo, tmp_path: Path, name: str, main: set[str]) -> None:
    assert assistant.stt is not None and assistant.llm is not None and assistant.tts is not None
    heard_question = assistant.stt.transcribe(speak("What am I looking at?")).text
    assert match_vision_intent(heard_question) == "describe", heard_question

    jpeg, meta = capture_from_glasses(photo(name))
    assert meta["led_on"]
    service = VisionService(detector, reader, photo_dir=tmp_path)
    answer = service.answer("describe", jpeg, question=heard_question, metadata=meta)
    assert answer.problem is None and answer.llm_prompt, answer.spoken

    messages = [{"role": "system", "content": assistant.config.llm.system_prompt},
                {"role": "user", "content": answer.llm_prompt}]
    reply = assistant.llm.stream(messages, lambda _p: None, max_tokens=60)
    spoken = reply if faithful(reply, answer.labels) else answer.spoken  # what VisionSkill does
    audio = assistant.tts.synthesize(spoken)
    heard = set(words(assistant.stt.transcribe(resample(audio, assistant.tts.sample_rate, SAMPLE_RATE)).text))
    assert heard & main, (answer.facts, reply, heard)


def test_bad_frame_and_no_camera_get_a_spoken_answer(detector: Detector, reader: TextReader, tmp_path) -> None:  # type: ignore[no-untyped-def]
    service = VisionService(detector, reader, photo_dir=tmp_path)
    for jpeg in (b"", b"not a jpeg", b"\xff\xd8\xff\xe0 truncated"):
        answer = service.answer("describe", jpeg)
        assert answer.problem is not None and answer.spoken
    assert "no camera" in service.answer("read", None).spoken
    assert service.answer("photo", b"\xff\xd8\xff garbage \xff\xd9").problem is not None


def test_read_and_photo_through_the_glasses(detector: Detector, reader: TextReader, photo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import cv2
    from vision_helpers import render_sign

    sign = tmp_path / "sign.jpg"
    cv2.imwrite(str(sign), render_sign(photo("person"), ["PLATFORM 2", "Exit Nord"]))
    jpeg, meta = capture_from_glasses(sign)
    service = VisionService(detector, reader, photo_dir=tmp_path / "photos")
    assert "PLATFORM 2" in service.answer("read", jpeg).spoken
    saved = service.answer("photo", jpeg, metadata=meta)
    assert saved.spoken == "Photo saved." and saved.photo is not None and saved.photo.read_bytes() == jpeg
    assert saved.photo.with_suffix(".json").is_file()
