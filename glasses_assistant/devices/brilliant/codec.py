# SPDX-License-Identifier: GPL-3.0-or-later
"""LC3, the codec Halo streams its microphone in and plays its speaker from (liblc3 through ``lc3py``).

16 kHz mono, 10 ms frames of 40 bytes (32 kbit/s): a fifth of PCM16's 32 kB/s, which leaves the
Bluetooth link room for the reply audio, the display and photos at the same time.
"""

from __future__ import annotations

import numpy as np

from ...errors import AudioDeviceError
from .protocol import LC3_FRAME_BYTES, LC3_FRAME_MS

RATE = 16_000
FRAME_SAMPLES = RATE * LC3_FRAME_MS // 1000


def _lc3():
    try:
        import lc3
    except ImportError as err:
        raise AudioDeviceError(f"Halo's audio is LC3, which needs lc3py (pip install '.[brilliant]'): {err}") from None
    return lc3


class Lc3Decoder:
    """Whole LC3 frames in, PCM16 little-endian out."""

    def __init__(self) -> None:
        self._dec = _lc3().Decoder(LC3_FRAME_MS * 1000, RATE)
        self.frames = 0

    def decode(self, data: bytes) -> bytes:
        if len(data) % LC3_FRAME_BYTES:
            raise ValueError(f"{len(data)} bytes is not a whole number of {LC3_FRAME_BYTES}-byte LC3 frames")
        out = bytearray()
        for off in range(0, len(data), LC3_FRAME_BYTES):
            out += self._dec.decode(data[off:off + LC3_FRAME_BYTES], bit_depth=16)
            self.frames += 1
        return bytes(out)


class Lc3Encoder:
    """PCM (float32 or int16, 16 kHz mono) in, whole LC3 frames out; a partial last frame waits for more."""

    def __init__(self) -> None:
        self._enc = _lc3().Encoder(LC3_FRAME_MS * 1000, RATE)
        self._pending = np.zeros(0, np.int16)

    def encode(self, samples: np.ndarray) -> bytes:
        if samples.dtype != np.int16:
            samples = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
        buf = np.concatenate([self._pending, samples])
        whole = len(buf) - len(buf) % FRAME_SAMPLES
        out = bytearray()
        for off in range(0, whole, FRAME_SAMPLES):
            out += self._enc.encode(buf[off:off + FRAME_SAMPLES].tobytes(), LC3_FRAME_BYTES, bit_depth=16)
        self._pending = buf[whole:]
        return bytes(out)

    def flush(self) -> bytes:
        """The partial last frame, padded with silence."""
        if not len(self._pending):
            return b""
        pad = np.zeros(FRAME_SAMPLES - len(self._pending), np.int16)
        return self.encode(pad)
