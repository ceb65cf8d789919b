# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad frames become a FrameProblem with a spoken reason, never an exception."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from glasses_assistant.vision import FrameProblem, decode_frame, load_image
from glasses_assistant.vision.frames import jpeg_size


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def dog(photo) -> np.ndarray:  # type: ignore[no-untyped-def]
    return cv2.imread(str(photo("dog")))


def test_a_good_photo_decodes_and_is_scaled_down(dog: np.ndarray) -> None:
    big = cv2.resize(dog, (3072, 2304))
    data = jpeg(big)
    assert jpeg_size(data) == (3072, 2304)
    image = decode_frame(data, max_side=1280)
    assert isinstance(image, np.ndarray) and max(image.shape[:2]) == 1280 and image.shape[2] == 3


@pytest.mark.parametrize(("data", "code"), [
    (b"", "empty"),
    (None, "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "not-jpeg"),
    (b"hello world", "not-jpeg"),
])
def test_not_a_jpeg(data: bytes, code: str) -> None:
    result = decode_frame(data)
    assert isinstance(result, FrameProblem) and result.code == code
    assert result.spoken and "\n" not in result.reason


def test_truncated_jpeg(dog: np.ndarray) -> None:
    data = jpeg(dog)
    for cut in (len(data) // 2, len(data) - 10, 200, 4):
        result = decode_frame(data[:cut])
        assert isinstance(result, FrameProblem) and result.code in ("truncated", "undecodable"), cut


def test_garbage_between_header_and_end_is_not_a_crash(dog: np.ndarray) -> None:
    data = bytearray(jpeg(dog))
    data[600:4000] = bytes(range(256)) * 13 + bytes(3400 - 256 * 13)
    result = decode_frame(bytes(data))
    assert isinstance(result, (np.ndarray, FrameProblem))


def test_absurd_sizes_are_refused_before_decoding(dog: np.ndarray) -> None:
    data = bytearray(jpeg(dog))
    i = data.index(b"\xff\xc0")  # baseline SOF: patch the claimed size to 60000 x 60000
    data[i + 5 : i + 9] = (60000).to_bytes(2, "big") * 2
    result = decode_frame(bytes(data))
    assert isinstance(result, FrameProblem) and result.code == "too-large" and "60000x60000" in result.reason
    result = decode_frame(jpeg(dog), max_bytes=1000)
    assert isinstance(result, FrameProblem) and result.code == "too-large"


def test_black_and_dark_frames(dog: np.ndarray) -> None:
    for image in (np.zeros((720, 1280, 3), np.uint8), (dog * 0.08).astype(np.uint8)):
        result = decode_frame(jpeg(image))
        assert isinstance(result, FrameProblem) and result.code == "dark"
        assert "can't see anything clearly" in result.spoken


def test_blurred_real_photo(dog: np.ndarray) -> None:
    result = decode_frame(jpeg(cv2.GaussianBlur(dog, (15, 15), 0)))
    assert isinstance(result, FrameProblem) and result.code == "blurred"
    assert "can't see anything clearly" in result.spoken
    # The same photo, sharp, passes.
    assert isinstance(decode_frame(jpeg(dog)), np.ndarray)


def test_every_darknet_photo_passes_the_quality_checks(photo) -> None:  # type: ignore[no-untyped-def]
    for name in ("dog", "person", "horses", "kite", "giraffe", "eagle"):
        assert isinstance(decode_frame(photo(name).read_bytes()), np.ndarray), name


def test_load_image_reads_png_and_reports_problems(tmp_path, dog: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    png = tmp_path / "dog.png"
    cv2.imwrite(str(png), dog)
    assert isinstance(load_image(png), np.ndarray)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG nope")
    assert isinstance(load_image(bad), FrameProblem)
    assert load_image(tmp_path / "missing.jpg").code == "unreadable"  # type: ignore[union-attr]
