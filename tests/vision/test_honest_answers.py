# SPDX-License-Identifier: GPL-3.0-or-later
"""Honest answers: calibrated confidence bands, guesses said as guesses, nothing said plainly (no models)."""

from __future__ import annotations

import pytest

from glasses_assistant.vision import Detection, VisionService
from glasses_assistant.vision.calibration import CALIBRATED, UNCALIBRATED, Confidence, confidence_for
from glasses_assistant.vision.detector import labels_from_metadata
from glasses_assistant.vision.labels import COCO_LABELS
from glasses_assistant.vision.skill import faithful


class FakeDetector:
    """Returns the detections it is given: the service's logic, without a model."""

    def __init__(self, found: list[Detection]) -> None:
        self.found = found

    def detect(self, image):  # type: ignore[no-untyped-def]
        return self.found


def answer(photo, found: list[Detection]):  # type: ignore[no-untyped-def]
    return VisionService(FakeDetector(found), None).answer("describe", photo("dog").read_bytes())  # type: ignore[arg-type]


def test_sure_objects_go_to_the_llm_and_guesses_follow_its_phrasing(photo) -> None:  # type: ignore[no-untyped-def]
    a = answer(photo, [Detection("dog", 0.9, (0.1, 0.4, 0.4, 0.95)),
                       Detection("cup", 0.4, (0.8, 0.5, 0.9, 0.6), sure=False)])
    assert a.labels == ["dog"] and a.maybe_labels == ["cup"]
    assert a.llm_prompt is not None and "dog" in a.llm_prompt and "cup" not in a.llm_prompt
    assert a.guesses == "There might also be a cup on your right."
    assert a.spoken == "I see a dog on your left. There might also be a cup on your right."


def test_without_anything_sure_there_is_no_llm_and_the_answer_says_so(photo) -> None:  # type: ignore[no-untyped-def]
    a = answer(photo, [Detection("toilet", 0.4, (0.3, 0.3, 0.7, 0.7), sure=False)])
    assert a.llm_prompt is None and a.labels == [] and a.spoken.startswith("I can't tell for sure.")
    a = answer(photo, [])
    assert a.llm_prompt is None and a.spoken == "I don't see anything I recognise."


def test_an_llm_reply_is_said_only_when_faithful() -> None:
    assert faithful("A dog sits on your left.", ["dog"])
    assert not faithful("A dog and a cat sit on your left.", ["dog"])
    assert not faithful("It is a nice day outside.", ["dog"])
    assert not faithful("", ["dog"])
    assert not faithful("The camera sees: a dog (left, large).", ["dog"])  # the facts parroted


def test_confidence_bands_and_their_overrides() -> None:
    assert set(CALIBRATED) == {"yolov8n-coco", "yolov8s-coco", "nanodet-coco", "centernet-coco"}
    assert all(c.maybe <= c.sure for c in CALIBRATED.values())
    assert confidence_for("/my/own.onnx") == UNCALIBRATED
    yolo = CALIBRATED["yolov8n-coco"]
    assert confidence_for("yolov8n-coco") == yolo
    assert confidence_for("yolov8n-coco", maybe=0.8) == Confidence(0.8, max(0.8, yolo.sure))  # sure rises with it
    assert confidence_for("yolov8n-coco", sure=0.2) == Confidence(min(0.2, yolo.maybe), 0.2)
    with pytest.raises(ValueError):
        confidence_for("yolov8n-coco", maybe=0.7, sure=0.5)


class Meta:
    def __init__(self, names: object) -> None:
        self.custom_metadata_map = {} if names is None else {"names": names}


class Session:
    def __init__(self, names: object) -> None:
        self.names = names

    def get_modelmeta(self) -> Meta:
        return Meta(self.names)


def test_class_names_come_from_the_onnx_metadata_safely() -> None:
    ultralytics = "{" + ", ".join(f"{i}: {n!r}" for i, n in enumerate(COCO_LABELS)) + "}"
    assert labels_from_metadata(Session(ultralytics)) == COCO_LABELS
    assert labels_from_metadata(Session("['cat', 'dog']")) == ("cat", "dog")
    # Untrusted: never evaluated, and only 0..N-1 names are taken.
    for bad in ("__import__('os').system('true')", "{0: 'cat', 2: 'dog'}", "{0: 5}", "not python", None,
                "[" + "'x', " * 40_000 + "]"):
        assert labels_from_metadata(Session(bad)) is None, bad
