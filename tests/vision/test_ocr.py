"""Text reading with rapidocr on signs rendered into real photographs."""

from __future__ import annotations

import re

import pytest
from vision_helpers import render_sign

from glasses_assistant.vision import TextLine, TextReader, spoken_text
from glasses_assistant.vision.frames import fit

pytestmark = pytest.mark.models


def squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def test_reads_a_platform_sign(reader: TextReader, photo) -> None:  # type: ignore[no-untyped-def]
    frame = render_sign(photo("dog"), ["PLATFORM 2", "Exit Nord"])
    lines = reader.read(fit(frame, 1280))
    assert [squash(ln.text) for ln in lines][:2] == ["platform2", "exitnord"]
    assert all(0 <= x <= 1 and 0 <= y <= 1 for ln in lines for x, y in ln.box)
    assert spoken_text(lines).startswith("PLATFORM 2. Exit Nord.")


def test_reads_a_shop_sign_in_another_photo(reader: TextReader, photo) -> None:  # type: ignore[no-untyped-def]
    frame = render_sign(photo("horses"), ["OPEN 9-18", "No horses"])
    text = squash(" ".join(ln.text for ln in reader.read(frame)))
    assert "open918" in text and "nohorses" in text


def test_a_photo_without_text_reads_nothing(reader: TextReader, photo) -> None:  # type: ignore[no-untyped-def]
    import cv2

    assert spoken_text(reader.read(cv2.imread(str(photo("eagle"))))) == "I can't find any text to read."


def test_spoken_text_joins_lines_and_cuts_long_text() -> None:
    box = ((0.0, 0.0), (1.0, 0.0), (1.0, 0.1), (0.0, 0.1))
    assert spoken_text([TextLine("Gare de Lyon", 0.9, box), TextLine("Sortie!", 0.9, box)]) == "Gare de Lyon. Sortie!"
    long = spoken_text([TextLine("word " * 200, 0.9, box)], max_chars=50)
    assert long.endswith("and there is more.") and len(long) < 80
