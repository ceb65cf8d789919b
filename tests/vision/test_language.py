# SPDX-License-Identifier: GPL-3.0-or-later
"""Intent matching on Whisper-style transcripts, scene facts and spoken answers, photos."""

from __future__ import annotations

import json

import pytest

from glasses_assistant.vision import (
    Detection,
    PhotoError,
    describe_scene,
    frame_metadata,
    match_vision_intent,
    mentions_any,
    names_only,
    save_photo,
    spoken_scene,
)
from glasses_assistant.vision.scene import NOTHING_RECOGNISED, spoken_labels


@pytest.mark.parametrize("text", [
    "What am I looking at?", "what am i looking at", " What'm I looking at?", "What are we looking at?",
    "What do you see?", "What can you see", "What's in front of me?", "What is in front of me?",
    "Describe what you see.", "Tell me what you see.", "What is this?",
])
def test_describe(text: str) -> None:
    assert match_vision_intent(text) == "describe"


@pytest.mark.parametrize("text", [
    "Read this.", "read this for me", "Can you read that?", "What does it say?", "What does that sign say?",
    "What does this say?", "What's written here?", "Read the sign.", "Read it out.",
])
def test_read(text: str) -> None:
    assert match_vision_intent(text) == "read"


@pytest.mark.parametrize("text", [
    "Take a photo.", "Take a picture!", "take a pic", "Snap a photo", "Take a photograph of this.",
    "Take a picture of what I'm looking at.",
])
def test_photo(text: str) -> None:
    assert match_vision_intent(text) == "photo"


@pytest.mark.parametrize("text", [
    "", "What is the capital of France?", "Do you see my point?", "I read a book yesterday.",
    "Read me a story.", "Tell me about photography.", "What does ephemeral mean?", "What time is it?",
])
def test_not_vision(text: str) -> None:
    assert match_vision_intent(text) is None


def det(label: str, box: tuple[float, float, float, float], score: float = 0.6) -> Detection:
    return Detection(label, score, box)


def test_scene_facts_positions_sizes_and_counts() -> None:
    found = [
        det("dog", (0.35, 0.3, 0.7, 0.95)),  # ahead, large
        det("bicycle", (0.05, 0.4, 0.25, 0.7)),  # left
        det("truck", (0.8, 0.1, 0.9, 0.2)),  # right, far (1 % of the frame)
        det("person", (0.1, 0.1, 0.2, 0.5)), det("person", (0.45, 0.1, 0.55, 0.5)),
    ]
    facts = describe_scene(found, 1280, 720)
    assert facts.startswith("a dog (ahead, large)")
    assert "a bicycle (left)" in facts and "a truck (right, far)" in facts and "2 people (left, ahead)" in facts
    assert describe_scene([]) == "nothing I recognise"
    assert describe_scene([det("apple", (0.4, 0.4, 0.6, 0.6))]) == "an apple (ahead)"
    # Pixel boxes are accepted too.
    assert describe_scene([Detection("cup", 0.5, (0, 0, 200, 720))], 1280, 720) == "a cup (left)"


def test_spoken_scene() -> None:
    found = [det("dog", (0.35, 0.3, 0.7, 0.95)), det("car", (0.8, 0.1, 0.95, 0.3))]
    assert spoken_scene(found) == "I see a dog ahead of you and a car on your right."
    assert spoken_scene([]) == "I don't see anything I recognise."


def test_save_photo_writes_jpeg_and_sidecar(tmp_path) -> None:  # type: ignore[no-untyped-def]
    class Frame:  # what firmware_bridge.CameraFrame carries
        jpeg = b"\xff\xd8\xff\xe0 fake jpeg \xff\xd9"
        width, height, device_time_us, led_on, request_id = 1280, 720, 123456789, True, 7

    meta = frame_metadata(Frame, device="glasses-sim", firmware="1.2.0")
    first = save_photo(Frame.jpeg, tmp_path / "photos", meta)
    second = save_photo(Frame.jpeg, tmp_path / "photos", meta)
    assert first != second and first.read_bytes() == Frame.jpeg and first.suffix == ".jpg"
    side = json.loads(first.with_suffix(".json").read_text())
    assert side["device_time_us"] == 123456789 and side["led_on"] is True and side["device"] == "glasses-sim"
    assert side["saved_utc"].endswith("+00:00") and side["file"] == first.name and side["bytes"] == len(Frame.jpeg)
    with pytest.raises(PhotoError, match="not a JPEG"):
        save_photo(b"PNG", tmp_path, {})
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PhotoError, match="cannot save the photo"):
        save_photo(Frame.jpeg, blocker / "sub", {})


# ------------------------------------------------------------------ honest answers
def unsure(label: str, box: tuple[float, float, float, float], score: float = 0.4) -> Detection:
    return Detection(label, score, box, sure=False)


def test_a_guess_is_said_as_a_guess_and_never_given_to_the_llm_as_a_fact() -> None:
    found = [det("dog", (0.35, 0.3, 0.7, 0.95)), unsure("cup", (0.8, 0.5, 0.9, 0.6))]
    assert spoken_scene(found) == "I see a dog ahead of you. There might also be a cup on your right."
    assert describe_scene(found) == "a dog (ahead, large)"
    assert spoken_labels(found) == (["dog"], ["cup"])
    # A fainter second person is no news when one person is certain.
    people = [det("person", (0.1, 0.1, 0.3, 0.9)), unsure("person", (0.7, 0.1, 0.8, 0.5))]
    assert spoken_scene(people) == "I see a person on your left."


def test_only_guesses_or_nothing_is_said_plainly() -> None:
    toilet = [unsure("toilet", (0.3, 0.3, 0.7, 0.7))]
    assert spoken_scene(toilet) == "I can't tell for sure. It might be a toilet ahead of you."
    assert describe_scene(toilet) == "nothing I recognise"
    assert spoken_scene([]) == NOTHING_RECOGNISED == "I don't see anything I recognise."


@pytest.mark.parametrize(("reply", "labels", "ok"), [
    ("You are looking at a dog in front of you.", ["dog"], True),
    ("A dog and a cat are in front of you.", ["dog"], False),  # the cat was never detected
    ("A man is riding a bike on your left.", ["person", "bicycle"], True),
    ("A man is riding a bike on your left.", ["bicycle"], False),  # nobody was detected
    ("There is a teddy bear on the bed.", ["teddy bear", "bed"], True),  # "bear" is part of "teddy bear"
    ("I see two people and a table.", ["person", "dining table"], True),
    ("I see a horse and a cow in a field.", ["horse"], False),
])
def test_the_llm_may_name_only_what_was_detected(reply: str, labels: list[str], ok: bool) -> None:
    assert names_only(reply, labels) is ok
    assert mentions_any(reply, labels)


def test_mentions_any_needs_a_detected_object() -> None:
    assert not mentions_any("It is a lovely day.", ["dog"])
    assert mentions_any("Your phone is on the left.", ["cell phone"]) and mentions_any("Two TVs.", ["tv"])


def test_a_phrasing_that_names_an_object_not_seen_is_not_used() -> None:
    from glasses_assistant.vision.scene import invented_objects, mentions_any

    assert invented_objects("I see two dogs and a bicycle.", ["dog", "bicycle"]) == []
    assert invented_objects("A dog sits next to a cat.", ["dog"]) == ["cat"]
    assert invented_objects("There is a person on a horse.", ["person"]) == ["horse"]
    assert mentions_any("A dog sits next to a cat.", ["dog"])  # named what is there, and more: not said
