# SPDX-License-Identifier: GPL-3.0-or-later
"""Voices: Piper voices, and espeak-ng voices for languages that have no Piper voice here.

A voice is named by one string, used by personas (``voice = ...``) and translation
(the voice a language is spoken in):

* a catalogue id of a Piper voice (``piper-en-us-joe-medium``) or the path of a Piper
  ``.onnx`` (its ``.onnx.json`` beside it): the user's own voice for any language;
* ``espeak-ng:LANG`` (``espeak-ng:fr``, ``espeak-ng:de``, ``espeak-ng:es``): the espeak-ng
  voice data that ships inside piper-tts (``piper/espeak-ng-data``), spoken by the espeak-ng
  synthesiser (Debian's ``espeak-ng``, which ``make`` installs). Robotic but intelligible,
  and available offline for about a hundred languages.

Every engine has the same shape as :class:`~.tts.PiperEngine`: ``synthesize(text) ->
float32 mono`` at ``sample_rate``, blocking and thread-confined, plus ``language``.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..config import TtsConfig
from ..errors import ModelError

if TYPE_CHECKING:
    from ..catalog import Catalogue

ESPEAK_PREFIX = "espeak-ng:"


class Voice(Protocol):
    sample_rate: int
    language: str

    def synthesize(self, text: str) -> np.ndarray: ...


def piper_espeak_data() -> Path:
    """The espeak-ng data folder inside the installed piper-tts."""
    import piper

    return Path(piper.__file__).parent / "espeak-ng-data"


def espeak_languages() -> set[str]:
    """Language codes with an espeak-ng voice in piper-tts's data (``fr``, ``de``, ``es``, ``en-us``...)."""
    codes: set[str] = set()
    for path in (piper_espeak_data() / "lang").rglob("*"):
        if not path.is_file():
            continue
        codes.add(path.name.lower())  # en-US: codes are case-blind
        # A voice file also names the languages it speaks ("language en-gb 2" in gmw/en).
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "language":
                codes.add(parts[1].lower())
    return codes


class EspeakEngine:
    """An espeak-ng voice (from piper-tts's data) for one language."""

    sample_rate = 22_050

    def __init__(self, language: str, cfg: TtsConfig) -> None:
        self.binary = shutil.which("espeak-ng")
        if self.binary is None:
            raise ModelError("espeak-ng is not installed, so there is no voice for "
                             f"{language!r} (apt-get install espeak-ng; `make` does it), or give a Piper voice")
        lang = language.strip().lower()
        if not lang or lang not in espeak_languages():
            raise ModelError(f"no espeak-ng voice for language {language!r} in piper-tts's data")
        self.language = lang
        self.data_dir = piper_espeak_data()
        # espeak-ng's speed is words per minute (175 is its default); Piper's length_scale is a duration factor.
        self.speed = max(80, min(450, round(175 / cfg.length_scale)))
        self.volume = cfg.volume

    def synthesize(self, text: str) -> np.ndarray:
        """Speak ``text``; mono float32 at 22.05 kHz (empty if nothing to say)."""
        if not text.strip():
            return np.zeros(0, np.float32)
        cmd = [self.binary or "espeak-ng", f"--path={self.data_dir.parent}", "-v", self.language,
               "-s", str(self.speed), "--stdout", "-b", "1"]  # -b 1: text is UTF-8
        try:
            done = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise ModelError(f"espeak-ng failed: {err}") from None
        if done.returncode != 0 or not done.stdout:
            raise ModelError(f"espeak-ng failed: {done.stderr.decode(errors='replace').strip()[:200]}")
        with wave.open(io.BytesIO(done.stdout)) as w:
            rate = w.getframerate()
            # espeak-ng streams to stdout, so the header's length fields are bogus: read what is there.
            pcm = done.stdout[44:]
        audio = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
        self.sample_rate = rate
        return np.clip(audio * self.volume, -1.0, 1.0).astype(np.float32)


def open_voice(spec: str, catalogue: Catalogue, cfg: TtsConfig) -> Voice:
    """Load the voice ``spec`` names (see the module docstring); one-line :class:`ModelError` if it cannot."""
    if spec.startswith(ESPEAK_PREFIX):
        return EspeakEngine(spec[len(ESPEAK_PREFIX):], cfg)
    from .tts import PiperEngine

    path, _ = catalogue.resolve("tts", spec)
    return PiperEngine(path, cfg)
