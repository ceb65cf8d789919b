# SPDX-License-Identifier: GPL-3.0-or-later
"""Small WAV helpers for the simulator: read any PCM/float WAV as 16 kHz mono
PCM16, and a streaming PCM16 writer whose header is kept valid while running."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["read_wav", "to_pcm16_mono", "resample_pcm16", "StreamingWavWriter"]


def read_wav(path: str | Path) -> tuple[Any, int]:
    """Read a RIFF/WAVE file; return (float32 array [frames, channels] in -1..1, rate).

    Supports integer PCM (8/16/24/32-bit), IEEE float (32/64-bit) and
    WAVE_FORMAT_EXTENSIBLE wrappers of those.
    """
    import numpy as np

    raw = Path(path).read_bytes()
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    data: bytes | None = None
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack_from("<I", raw, pos + 4)[0]
        body = raw[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            tag, ch, rate, _br, _align, bits = struct.unpack_from("<HHIIHH", body, 0)
            if tag == 0xFFFE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]  # SubFormat GUID's first field
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None or data is None:
        raise ValueError(f"{path}: missing fmt or data chunk")
    tag, ch, rate, bits = fmt
    if ch < 1 or rate < 1:
        raise ValueError(f"{path}: bad channel count or rate")
    width = bits // 8
    data = data[: len(data) - len(data) % (width * ch)]
    if tag == 1 and bits == 8:
        x = (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == 1 and bits == 16:
        x = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    elif tag == 1 and bits == 24:
        b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v & 0x800000, v - 0x1000000, v)
        x = v.astype(np.float32) / 8388608.0
    elif tag == 1 and bits == 32:
        x = (np.frombuffer(data, "<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    elif tag == 3 and bits in (32, 64):
        x = np.frombuffer(data, "<f4" if bits == 32 else "<f8").astype(np.float32)
    else:
        raise ValueError(f"{path}: unsupported WAV encoding (format {tag}, {bits} bits)")
    return x.reshape(-1, ch), rate


def to_pcm16_mono(path: str | Path, rate: int = 16000) -> bytes:
    """Read ``path`` and convert it to PCM16 LE mono at ``rate`` Hz."""
    import numpy as np

    x, src_rate = read_wav(path)
    mono = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if src_rate != rate and len(mono):
        try:
            import soxr

            mono = soxr.resample(mono, src_rate, rate)
        except ImportError:  # pragma: no cover - soxr is normally present
            n = int(round(len(mono) * rate / src_rate))
            mono = np.interp(np.linspace(0, len(mono) - 1, n), np.arange(len(mono)), mono)
    return (np.clip(mono, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def resample_pcm16(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Linear-interpolation resample of PCM16 mono (used when a host changes rate mid-file)."""
    import numpy as np

    if src_rate == dst_rate or not pcm:
        return pcm
    x = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], "<i2").astype(np.float32)
    n = max(1, int(round(len(x) * dst_rate / src_rate)))
    y = np.interp(np.linspace(0, len(x) - 1, n), np.arange(len(x)), x)
    return y.astype("<i2").tobytes()


class StreamingWavWriter:
    """PCM16 mono WAV writer that rewrites the RIFF sizes every ``flush_interval``
    seconds (and on close), so another process can read the file while it grows."""

    def __init__(self, path: str | Path, sample_rate: int, flush_interval: float = 0.5) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.flush_interval = flush_interval
        self._f: BinaryIO | None = open(self.path, "wb")
        self._data_bytes = 0
        self._last_flush = 0.0
        self._dirty = False
        self._write_header()

    def _write_header(self) -> None:
        assert self._f is not None
        n = self._data_bytes
        hdr = b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE"
        hdr += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, self.sample_rate, self.sample_rate * 2, 2, 16)
        hdr += b"data" + struct.pack("<I", n)
        pos = self._f.tell()
        self._f.seek(0)
        self._f.write(hdr)
        self._f.seek(max(pos, 44))
        self._f.flush()
        self._last_flush = time.monotonic()
        self._dirty = False

    @property
    def frames_written(self) -> int:
        """Samples written so far."""
        return self._data_bytes // 2

    def write(self, pcm: bytes) -> None:
        """Append PCM16 mono samples."""
        if self._f is None:
            raise ValueError("writer closed")
        pcm = pcm[: len(pcm) - len(pcm) % 2]
        self._f.write(pcm)
        self._data_bytes += len(pcm)
        self._dirty = True
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self._write_header()

    def tick(self) -> None:
        """Call periodically: rewrites the header if data was added since the last rewrite."""
        if self._f is not None and self._dirty and time.monotonic() - self._last_flush >= self.flush_interval:
            self._write_header()

    def flush(self) -> None:
        """Make the header match the data written so far."""
        if self._f is not None:
            self._write_header()

    def close(self) -> None:
        """Finalise the header and close the file (idempotent)."""
        if self._f is not None:
            self._write_header()
            self._f.close()
            self._f = None
