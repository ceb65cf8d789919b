# SPDX-License-Identifier: GPL-3.0-or-later
"""Consistent Overhead Byte Stuffing (COBS).

Serial links delimit frames with a single 0x00 byte; COBS removes every 0x00
from the frame body so a receiver that loses sync simply waits for the next
0x00.  Overhead is at most one byte per 254 bytes plus one.
"""

from __future__ import annotations

__all__ = ["cobs_encode", "cobs_decode", "CobsError", "max_encoded_size"]


class CobsError(ValueError):
    """Raised by :func:`cobs_decode` on malformed input."""


def max_encoded_size(n: int) -> int:
    """Worst-case COBS-encoded size of ``n`` bytes (without the delimiter)."""
    return n + n // 254 + 1


def cobs_encode(data: bytes | bytearray | memoryview) -> bytes:
    """COBS-encode ``data``; the result contains no 0x00 bytes."""
    data = bytes(data)
    out = bytearray()
    # Work block by block using bytes.find, which is much faster than a
    # per-byte Python loop for large JPEG payloads.
    start = 0
    n = len(data)
    while True:
        zero = data.find(b"\x00", start, start + 254)
        if zero < 0:
            end = min(start + 254, n)
            block = data[start:end]
            out.append(len(block) + 1)
            out += block
            if end >= n:
                # A full 254-byte final block needs no trailing empty block
                # only when the data ends exactly there and was not
                # followed by a zero; handled by returning here.
                break
            start = end
        else:
            block = data[start:zero]
            out.append(len(block) + 1)
            out += block
            start = zero + 1
            if start == n:
                out.append(1)
                break
    return bytes(out)


def cobs_decode(data: bytes | bytearray | memoryview) -> bytes:
    """Decode one COBS block (without the 0x00 delimiter).

    Raises :class:`CobsError` if the input contains a zero byte or a code
    byte points past the end of the data.
    """
    data = bytes(data)
    if not data:
        raise CobsError("empty COBS block")
    if b"\x00" in data:
        raise CobsError("zero byte inside COBS block")
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        end = i + code
        if end > n:
            raise CobsError("COBS code runs past end of block")
        out += data[i + 1 : end]
        i = end
        # A code of 0xFF means "254 data bytes, no implied zero".
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)
