# SPDX-License-Identifier: GPL-3.0-or-later
"""Vision fixtures: real photos (Debian's darknet samples), the detector and the OCR, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from glasses_assistant.catalog import load_catalogue
from glasses_assistant.vision import Detector, TextReader

DARKNET = Path("/usr/share/darknet/data")


@pytest.fixture(scope="session")
def photo():  # type: ignore[no-untyped-def]
    """name -> path of one of darknet's sample photos (apt-get install darknet)."""

    def _photo(name: str) -> Path:
        path = DARKNET / f"{name}.jpg"
        # Never skipped: `make` installs the package (a missing photo is a set-up failure).
        assert path.is_file(), (f"{path} missing: the real test photos come from Debian's darknet package "
                                "(apt-get install darknet; `make test` does it)")
        return path

    return _photo


@pytest.fixture(scope="session")
def detector() -> Detector:
    """The catalogue's default detector (YOLOv8n), verified by sha256; `glasses-assistant models fetch` fetches it."""
    d = Detector.from_catalogue(load_catalogue())
    d.warm()
    return d


@pytest.fixture(scope="session")
def reader() -> TextReader:
    r = TextReader()
    r.warm()
    return r
