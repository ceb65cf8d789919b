# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for the vision tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def render_sign(background: Path, lines: list[str], *, size: tuple[int, int] = (1280, 720)) -> np.ndarray:
    """A sign photographed in a real scene: a real photo, a white sign with dark lettering
    pasted on it in perspective, then a little blur and JPEG compression as a camera would add.

    No Debian or PyPI package here ships photographs of signs, so the text is rendered
    (with OpenCV's Hershey font) onto a real photograph.
    """
    scene = cv2.resize(cv2.imread(str(background)), size)
    sign = np.full((90 * len(lines) + 40, 700, 3), 245, np.uint8)
    cv2.rectangle(sign, (4, 4), (sign.shape[1] - 5, sign.shape[0] - 5), (40, 40, 40), 6)
    for i, text in enumerate(lines):
        cv2.putText(sign, text, (30, 85 + 90 * i), cv2.FONT_HERSHEY_DUPLEX, 2.0, (25, 25, 25), 4, cv2.LINE_AA)
    h, w = sign.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    x0, y0 = size[0] * 0.45, size[1] * 0.25
    dst = np.float32([[x0, y0], [x0 + w * 0.9, y0 + 25], [x0 + w * 0.9, y0 + h * 0.9 + 10], [x0, y0 + h * 0.95]])
    warped = cv2.warpPerspective(sign, cv2.getPerspectiveTransform(src, dst), size)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), cv2.getPerspectiveTransform(src, dst), size)
    scene[mask > 0] = warped[mask > 0]
    scene = cv2.GaussianBlur(scene, (3, 3), 0)
    ok, jpeg = cv2.imencode(".jpg", scene, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
