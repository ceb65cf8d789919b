# SPDX-License-Identifier: GPL-3.0-or-later
"""Object detection on real photographs (darknet's samples) with the catalogue's detectors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from glasses_assistant.catalog import load_catalogue
from glasses_assistant.errors import ModelError
from glasses_assistant.vision import COCO_LABELS, Detection, Detector, decode_yolo, describe_scene, nms
from glasses_assistant.vision.calibration import CALIBRATED, UNCALIBRATED
from glasses_assistant.vision.detector import batched_nms

pytestmark = pytest.mark.models


def labels(found: list[Detection]) -> set[str]:
    return {d.label for d in found}


def test_dog_photo_has_a_dog_and_a_bicycle_and_a_vehicle(detector: Detector, photo) -> None:  # type: ignore[no-untyped-def]
    found = detector.detect(cv2.imread(str(photo("dog"))))
    assert {"dog", "bicycle"} <= {d.label for d in found if d.sure}  # said as fact
    assert labels(found) & {"car", "truck"}  # the pick-up in the back
    dog = next(d for d in found if d.label == "dog")
    # The dog sits in the lower left of the photo (ground truth about 0.16-0.41 x 0.38-0.94).
    assert dog.box_xyxy[0] < 0.25 and dog.box_xyxy[3] > 0.85 and dog.center[0] < 0.45
    assert all(0.0 <= v <= 1.0 for d in found for v in d.box_xyxy)


@pytest.mark.parametrize(("name", "expected"), [
    ("person", {"person", "horse", "dog"}),
    ("horses", {"horse"}),
    ("kite", {"kite", "person"}),
    ("eagle", {"bird"}),
    ("giraffe", {"giraffe"}),
])
def test_other_photos(detector: Detector, photo, name: str, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    assert expected <= labels(detector.detect(cv2.imread(str(photo(name)))))


def test_scene_facts_for_the_dog_photo(detector: Detector, photo) -> None:  # type: ignore[no-untyped-def]
    img = cv2.imread(str(photo("dog")))
    facts = describe_scene(detector.detect(img), img.shape[1], img.shape[0])
    assert "a bicycle (ahead, large)" in facts and "a dog (left" in facts


def test_the_default_is_yolov8n_with_its_class_names_from_the_onnx(detector: Detector) -> None:
    assert detector.model_id == "yolov8n-coco" and detector.kind == "yolo"
    assert detector.labels == COCO_LABELS  # read from the ONNX metadata, in COCO's order
    assert detector.confidence == CALIBRATED["yolov8n-coco"]


@pytest.mark.parametrize(("model", "kind"), [("centernet-coco", "centernet"), ("nanodet-coco", "nanodet")])
def test_the_permissive_detectors_stay_selectable(photo, model: str, kind: str) -> None:  # type: ignore[no-untyped-def]
    assert Detector.from_catalogue(load_catalogue(), model).confidence == CALIBRATED[model]
    # Below their calibrated bands (NanoDet says dog at 0.41): this checks the model, not its bands.
    det = Detector.from_catalogue(load_catalogue(), model, score_threshold=0.3)
    assert det.kind == kind
    assert {"dog", "bicycle"} <= labels(det.detect(cv2.imread(str(photo("dog")))))


def test_user_onnx_path_works_through_the_same_interface(detector: Detector, photo) -> None:  # type: ignore[no-untyped-def]
    det = Detector.from_catalogue(load_catalogue(), str(detector.model_path))
    assert det.kind == "yolo" and det.model_id == str(detector.model_path)
    assert det.confidence == UNCALIBRATED  # nobody measured a user's model: the plain default bands
    assert "dog" in labels(det.detect(cv2.imread(str(photo("dog")))))


def test_coffee_is_a_cup_not_a_toilet(detector: Detector) -> None:
    """The issue's first complaint: NanoDet called scikit-image's coffee photo a toilet."""
    from glasses_assistant.vision.quality import load_photoset

    photoset = load_photoset()
    coffee = next(p for p in photoset.photos if p.file == "coffee.png")
    found = detector.detect(cv2.imread(str(photoset.path(coffee))))
    assert "cup" in {d.label for d in found if d.sure} and "toilet" not in labels(found)


def test_grey_frame_finds_nothing(detector: Detector) -> None:
    assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []


def test_bad_models_are_one_line_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="cannot load detector"):
        Detector(junk)
    with pytest.raises(ModelError, match="neither a catalogue id nor an existing path"):
        Detector.from_catalogue(load_catalogue(), str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelError, match="not a vision model"):
        Detector.from_catalogue(load_catalogue(), "whisper-tiny-en")


# ----------------------------------------------------------------- pure decoding
def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    assert list(nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5)) == [0, 2]
    # Per class: the same box as another class survives.
    assert sorted(batched_nms(boxes[:2], np.array([0.9, 0.8]), np.array([0, 1]), 0.5)) == [0, 1]


def test_yolo_v8_and_v5_heads_decode_to_normalised_boxes() -> None:
    n, nc = 8400, 80
    v8 = np.zeros((1, 4 + nc, n), np.float32)
    v8[0, :4, 5] = [320, 320, 64, 128]  # cx, cy, w, h in 640 px input
    v8[0, 4 + 16, 5] = 0.9  # a dog
    meta = {"scale": 0.5, "pad": (0, 80), "shape": (960, 1280)}  # a 1280x960 frame letterboxed to 640
    boxes, scores, classes = decode_yolo(v8, nc, meta, 640, 640)
    i = int(scores.argmax())
    assert classes[i] == 16 and scores[i] == pytest.approx(0.9)
    np.testing.assert_allclose(boxes[i], [(288 / 0.5) / 1280, ((256 - 80) / 0.5) / 960,
                                          (352 / 0.5) / 1280, ((384 - 80) / 0.5) / 960], rtol=1e-5)
    v5 = np.zeros((1, n, 5 + nc), np.float32)
    v5[0, 7, :5] = [320, 320, 64, 128, 0.5]
    v5[0, 7, 5 + 2] = 0.8  # a car, objectness 0.5
    _, scores, classes = decode_yolo(v5, nc, meta, 640, 640)
    assert classes[7] == 2 and scores[7] == pytest.approx(0.4)
    with pytest.raises(ModelError, match="labels file"):
        decode_yolo(np.zeros((1, 50, 100), np.float32), nc, meta, 640, 640)
