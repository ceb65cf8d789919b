# SPDX-License-Identifier: GPL-3.0-or-later
"""Wake word detection with pymicro-wakeword (microWakeWord models, TFLite, in the wheel).

The models ``okay_nabu``, ``hey_jarvis``, ``alexa`` and ``hey_mycroft`` and the
TFLite runtime ship inside the pymicro-wakeword wheel: nothing is downloaded.
Cost: a few milliseconds of CPU per second of audio.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .wake_verify import tuning

WAKE_WORDS = ("okay_nabu", "hey_jarvis", "alexa", "hey_mycroft")
"""The models in the pymicro-wakeword wheel."""

WAKE_PHRASES = {"okay_nabu": "okay nabu", "hey_jarvis": "hey jarvis", "alexa": "alexa",
                "hey_mycroft": "hey mycroft"}

class WakeWordDetector:
    """Streaming detector: feed 16 kHz mono float32 chunks, get True on the chunk that fires.

    ``threshold`` overrides the cutoff (None: the word's ``normal`` cutoff, see :mod:`.wake_verify`).
    After a detection the detector stays quiet for ``refractory_s`` of audio, so
    one spoken wake phrase fires once.
    """

    def __init__(self, wake_word: str = "okay_nabu", *, threshold: float | None = None,
                 refractory_s: float = 2.0) -> None:
        if wake_word not in WAKE_WORDS:
            raise ModelError(f"unknown wake word {wake_word!r} (one of {', '.join(WAKE_WORDS)})")
        try:
            from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model
        except ImportError:
            raise ModelError("wake word needs pymicro-wakeword (pip install pymicro-wakeword==2.5.0)") from None
        try:
            self._model = MicroWakeWord.from_builtin(Model(wake_word))
        except Exception as err:  # the TFLite C library reports load failures as plain errors
            raise ModelError(f"cannot load wake word model {wake_word!r}: {err}") from None
        self._features_cls = MicroWakeWordFeatures
        self._features = MicroWakeWordFeatures()
        self.wake_word = wake_word
        self.phrase = WAKE_PHRASES[wake_word]
        if threshold is None:
            threshold = tuning(wake_word).cutoff
        self.threshold = threshold
        self.refractory = refractory_s
        self._quiet_s = 0.0
        self.last_probability = 0.0

    def process(self, samples: np.ndarray) -> bool:
        """Feed one chunk (16 kHz float32); True when the wake word has just been heard."""
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        fired = False
        for features in self._features.process_streaming(pcm):
            prob = self._model.process_streaming_prob(features)
            if prob is None:
                continue
            self.last_probability = prob
            if prob > self.threshold and self._quiet_s <= 0:
                fired = True
        self._quiet_s -= len(samples) / 16_000
        if fired:
            self._quiet_s = self.refractory
        return fired

    def reset(self) -> None:
        """Forget the audio so far (between unrelated streams)."""
        self._model.reset()
        self._features = self._features_cls()
        self._quiet_s = 0.0


def detections(detector: WakeWordDetector, audio: np.ndarray, block: int = 512) -> list[float]:
    """Run the detector over a whole recording; return the times (s) at which it fired."""
    times = []
    for i in range(0, len(audio) - block + 1, block):
        if detector.process(audio[i : i + block]):
            times.append((i + block) / 16_000)
    return times
