# SPDX-License-Identifier: GPL-3.0-or-later
"""Camera frames in, BGR images out, with every bad frame turned into a spoken reason.

A frame from the glasses can be anything: empty, not a JPEG, cut short on the link,
absurdly large, black (lens covered, dark room) or blurred (head moving). None of
these may crash the loop: :func:`decode_frame` returns a :class:`FrameProblem` with
a one-line reason for the log and an honest sentence for the wearer instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Far beyond any camera on glasses (12 MP sensors give 2-5 MB JPEGs): refuse before decoding.
MAX_BYTES = 20_000_000
MAX_PIXELS = 40_000_000
# Measured on darknet's seven sample photos: mean brightness 82-200 of 255 as taken,
# 6-15 when darkened to 8 % (a dark room; a covered lens is ~0). Laplacian variance
# at 640 px: 355-12 000 sharp, 35-270 after a 5 px Gaussian blur, 8-50 after 9 px,
# 2-16 after 15 px. The thresholds sit between, erring towards "can see".
MIN_BRIGHTNESS = 20.0
MIN_SHARPNESS = 30.0
QUALITY_SIDE = 640  # blur is measured at a fixed scale, so the threshold does not depend on resolution


@dataclass(frozen=True)
class FrameProblem:
    """Why a frame cannot be used: ``code`` for programs, ``reason`` for the log, ``spoken`` for the wearer."""

    code: str
    reason: str
    spoken: str

    def __str__(self) -> str:
        return self.reason


_UNCLEAR = "I can't see anything clearly."
_RETRY = "I couldn't get a clear picture from the camera. Please try again."


def problem(code: str, reason: str) -> FrameProblem:
    """A :class:`FrameProblem` with the sentence the wearer hears for ``code``."""
    spoken = {
        "dark": "It's too dark; I can't see anything clearly.",
        "blurred": "I can't see anything clearly; the picture is blurred. Try holding still.",
        "too-large": "The picture from the camera was too large for me to look at.",
        "no-camera": "This device has no camera, so I can't see anything.",
        "camera-off": "The camera is off, so I can't see anything.",
        "no-frame": "The camera didn't send a picture in time. Please try again.",
    }.get(code, _RETRY)
    return FrameProblem(code, reason, spoken)


NO_CAMERA = problem("no-camera", "this device has no camera")


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's SOF header without decoding it, or None if not found.

    Lets us refuse a decompression bomb (a small file claiming 60 000 x 60 000
    pixels) before OpenCV allocates memory for it.
    """
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                return None
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        if marker == 0xDA:  # start of scan: no SOF before it
            return None
        i += 2 + length
    return None


def decode_frame(
    data: bytes | bytearray | memoryview | None,
    *,
    max_side: int = 1280,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    check_quality: bool = True,
) -> np.ndarray | FrameProblem:
    """JPEG bytes -> BGR uint8 image whose longest side is at most ``max_side``, or a FrameProblem.

    Never raises on bad input. Checks, in order: empty, too many bytes, JPEG magic,
    truncation (no end-of-image marker), the header's pixel count, decoding, then
    (``check_quality``) darkness and blur.
    """
    if not data:
        return problem("empty", "the camera sent an empty frame")
    data = bytes(data)
    if len(data) > max_bytes:
        return problem("too-large", f"frame of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    if not data.startswith(b"\xff\xd8\xff"):
        return problem("not-jpeg", f"frame is not a JPEG (starts with {data[:4].hex()})")
    # A JPEG ends with FF D9; some encoders pad after it, so look near the end only.
    if b"\xff\xd9" not in data[-64:]:
        return problem("truncated", f"JPEG frame of {len(data)} bytes is truncated (no end-of-image marker)")
    size = jpeg_size(data)
    if size is None:
        return problem("undecodable", "JPEG frame has no readable header")
    w, h = size
    if w == 0 or h == 0:
        return problem("undecodable", f"JPEG frame claims a size of {w}x{h}")
    if w * h > max_pixels:
        return problem("too-large", f"frame of {w}x{h} pixels exceeds the {max_pixels}-pixel limit")
    image = _imdecode(data, w, h, max_side)
    if image is None:
        return problem("undecodable", f"cannot decode the {w}x{h} JPEG frame")
    image = fit(image, max_side)
    if check_quality:
        issue = quality_problem(image)
        if issue is not None:
            return issue
    return image


def _imdecode(data: bytes, w: int, h: int, max_side: int) -> np.ndarray | None:
    import cv2

    buf = np.frombuffer(data, np.uint8)
    # libjpeg can decode at 1/2, 1/4 or 1/8 scale almost for free: use the largest
    # reduction that still leaves at least max_side pixels on the long side.
    flag = cv2.IMREAD_COLOR
    for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                            (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if max(w, h) // factor >= max_side:
            flag = reduced
            break
    try:
        image = cv2.imdecode(buf, flag)
    except cv2.error:
        return None
    if image is None or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        return None
    return image


def fit(image: np.ndarray, max_side: int) -> np.ndarray:
    """Scale ``image`` down (never up) so its longest side is at most ``max_side``."""
    import cv2

    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    s = max_side / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def brightness(image: np.ndarray) -> float:
    """Mean grey level, 0..255."""
    import cv2

    return float(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).mean())


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image at :data:`QUALITY_SIDE` px: low means blurred."""
    import cv2

    grey = cv2.cvtColor(fit(image, QUALITY_SIDE), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def quality_problem(
    image: np.ndarray, *, min_brightness: float = MIN_BRIGHTNESS, min_sharpness: float = MIN_SHARPNESS
) -> FrameProblem | None:
    """A FrameProblem if the image is too dark or too blurred to say anything honest about it."""
    level = brightness(image)
    if level < min_brightness:
        return problem("dark", f"frame is too dark (mean brightness {level:.0f} of 255)")
    sharp = sharpness(image)
    if sharp < min_sharpness:
        return problem("blurred", f"frame is blurred (Laplacian variance {sharp:.0f}, need {min_sharpness:.0f})")
    return None


def load_image(path: Path | str, *, max_side: int = 1280, check_quality: bool = True) -> np.ndarray | FrameProblem:
    """An image file (JPEG, PNG, ... anything OpenCV reads) -> BGR image or FrameProblem.

    For the CLI and the virtual glasses' file source; JPEG files go through
    :func:`decode_frame`'s checks, other formats through the same quality checks.
    """
    import cv2

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as err:
        return problem("unreadable", f"cannot read {p}: {err.strerror}")
    if data.startswith(b"\xff\xd8\xff"):
        return decode_frame(data, max_side=max_side, check_quality=check_quality)
    if len(data) > MAX_BYTES:
        return problem("too-large", f"{p} has {len(data)} bytes, over the {MAX_BYTES}-byte limit")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        return problem("undecodable", f"{p} is not an image OpenCV can read")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        return problem("too-large", f"{p} is {image.shape[1]}x{image.shape[0]} pixels, over the limit")
    image = fit(image, max_side)
    if check_quality:
        issue = quality_problem(image)
        if issue is not None:
            return issue
    return image
