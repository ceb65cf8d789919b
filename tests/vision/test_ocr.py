# SPDX-License-Identifier: GPL-3.0-or-later
"""Text reading with rapidocr on signs rendered into real photographs."""

from __future__ import annotations

import re

import pytest
from vision_helpers import render_sign

from glasses_assistant.vision import TextReader, spoken_text
from glasses_assistant.vision.frames import fit

pytestmark = pytest.mark.models


def squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def test_reads_a_platform_sign(reader: TextReader, photo) -> None:  # type: ignore[no-untyped-def]
    frame = render_sign(photo("dog"), ["PLATFORM 2", "Exit Nord"])
    lines = reader.read(fit(frame, 1280))
    assert [squash(ln.text) for ln in lines][:2] == ["platform2", "exitnord"]
    assert all(0 <= x <= 1 and 0 <= y <= 1 for ln in lines for x, y in ln.box)
    # Two phrases on one sign: one sentence, a pause between them.
    assert spoken_text(lines).startswith("PLATFORM 2, Exit Nord.")


def test_reads_a_shop_sign_in_another_photo(reader: TextReader, photo) -> None:  # type: ignore[no-untyped-def]
    frame = render_sign(photo("horses"), ["OPEN 9-18", "No horses"])
    text = squash(" ".join(ln.text for ln in reader.read(frame)))
    assert "open918" in text and "nohorses" in text


def test_a_photo_without_text_reads_nothing(reader: TextReader, photo) -> None:  # type: ignore[no-untyped-def]
    import cv2

    assert spoken_text(reader.read(cv2.imread(str(photo("eagle"))))) == "I can't find any text to read."


def test_real_signs_read_like_signs(reader: TextReader) -> None:
    """Photographs of signs from OpenCV's samples (Debian's opencv-doc): what rapidocr reads, spoken."""
    import cv2

    text = "/usr/share/doc/opencv-doc/examples/text/"
    spoken = {name: spoken_text(reader.read(cv2.imread(text + name))) for name in
              ("scenetext01.jpg", "scenetext05.jpg", "scenetext_segmented_word03.jpg")}
    assert squash(spoken["scenetext01.jpg"]) == squash("NOTICE. DOUBLE PARKING PROHIBITED AT ALL TIMES.")
    assert spoken["scenetext01.jpg"].count(".") == 2, spoken  # the heading, then one sentence
    assert squash(spoken["scenetext05.jpg"]) == "noparking", spoken  # two barriers alike: said once
    assert spoken["scenetext_segmented_word03.jpg"] == "Customer Freephone Private Hire Service.", spoken
