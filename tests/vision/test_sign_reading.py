# SPDX-License-Identifier: GPL-3.0-or-later
"""The OCR's spoken form: lines of a sign joined in reading order, noise and repeats dropped (no models)."""

from __future__ import annotations

from glasses_assistant.vision import TextLine, spoken_text
from glasses_assistant.vision.ocr import is_noise, reading_order


def test_spoken_text_joins_lines_and_cuts_long_text() -> None:
    assert spoken_text([line("Gare de Lyon", 0.0, 0.0), line("Sortie!", 0.0, 0.3)]) == "Gare de Lyon. Sortie!"
    long = spoken_text([line("word " * 200, 0.0, 0.0, width=0.9)], max_chars=50)
    assert long.endswith("and there is more.") and len(long) < 80


def line(text: str, left: float, top: float, *, width: float = 0.3, height: float = 0.08) -> TextLine:
    return TextLine(text, 0.95, ((left, top), (left + width, top), (left + width, top + height), (left, top + height)))


def test_a_signs_lines_are_joined_in_reading_order() -> None:
    notice = [line("NOTICE", 0.33, 0.04, height=0.10), line("DOUBLE", 0.34, 0.14, height=0.07),
              line("PARKING", 0.34, 0.21, height=0.08), line("PROHIBITED", 0.34, 0.28, height=0.08),
              line("AT ALL TIMES", 0.35, 0.35, height=0.08)]
    assert spoken_text(notice) == "NOTICE. DOUBLE PARKING PROHIBITED AT ALL TIMES."
    directions = [line(t, 0.32, 0.6 + 0.08 * i, height=0.07)
                  for i, t in enumerate(["Sports Centre", "Wivenhoe Park", "Car Parks"])]
    assert spoken_text(directions) == "Sports Centre, Wivenhoe Park, Car Parks."
    paragraph = [line("we have found it useful for the students to attempt a number of", 0.05, 0.1, width=0.9),
                 line("small projects, which often build on one another.", 0.05, 0.18, width=0.7)]
    assert spoken_text(paragraph) == ("we have found it useful for the students to attempt a number of small projects, "
                                      "which often build on one another.")
    # A small word beside big ones on one row, and two signs apart: each sign its own sentence.
    shop = [line("copy centre", 0.19, 0.55, height=0.10), line("the", 0.12, 0.59, width=0.05, height=0.047),
            line("EXIT", 0.7, 0.1, width=0.1)]
    assert spoken_text(reading_order(shop)) == "EXIT. the copy centre."


def test_noise_and_repeats_are_not_read_aloud() -> None:
    assert [t for t in ("I", "A B", "4006381333931", "1111", "||", "", "GM 125", "2", "9-18", "3.50", "EXIT")
            if not is_noise(t)] == ["GM 125", "2", "9-18", "3.50", "EXIT"]
    # One word read on four signs alike is said once; a sign whose words are all on a bigger one too.
    same = [line("NOPARKING", 0.06 + 0.3 * i, 0.17 + 0.15 * i) for i in range(4)]
    assert spoken_text(same) == "NOPARKING."
    hanging = [line("pRioRy", 0.45, 0.32, height=0.04), line("galleries", 0.45, 0.36, height=0.04),
               line("the ship", 0.46, 0.41, height=0.03)]
    fascia = [line("Priory Galleries at the Ship", 0.37, 0.58, width=0.5, height=0.1)]
    assert spoken_text(reading_order(hanging + fascia)) == "Priory Galleries at the Ship."
    assert spoken_text([line("4006381333931", 0.1, 0.1), line("I", 0.5, 0.5)]) == "I can't find any text to read."
