# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame layer of the glasses protocol: header, CRC, and streaming decoders.

See ``docs/protocol.md`` for the normative description.  Every message
travels in one *frame*::

    off size field
    0   2    magic            b"GB" (0x47 0x42)
    2   1    version          protocol major version (1)
    3   1    type             message type (see messages.MsgType)
    4   1    flags            bit 0: END_OF_STREAM; others reserved (send 0, ignore)
    5   1    stream           stream id (see Stream)
    6   2    reserved         send 0, ignore
    8   4    seq              per-stream sequence number, u32, wraps
    12  8    device_time_us   device monotonic clock, microseconds, u64
    20  4    payload_len      bytes of payload following the header
    24  4    payload_crc      CRC32C of the payload
    28  4    header_crc       CRC32C of header bytes 0..27
    32  ...  payload

All integers are little-endian.  The header has its own CRC so a decoder
never trusts a corrupted length (which would otherwise make it wait for
megabytes that never come).

Three link framings carry frames:

* stream links (TCP): frames back to back; the header's length field
  delimits them, the magic is used to resynchronise after corruption;
* serial links: each frame COBS-encoded and terminated by 0x00;
* BLE: each frame split into fragments that fit the ATT MTU, each fragment
  prefixed by a 4-byte fragment header (see :class:`Fragmenter`).

Decoders never raise on bad input: they count the reason in
:class:`DecoderStats`, skip, and resynchronise on the next good frame.  Their
buffers are bounded by ``max_payload``.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from typing import Any

from .checksum import crc32c
from .cobs import CobsError, cobs_decode, cobs_encode, max_encoded_size

__all__ = [
    "MAGIC",
    "PROTOCOL_VERSION",
    "HEADER_SIZE",
    "DEFAULT_MAX_PAYLOAD",
    "FLAG_END_OF_STREAM",
    "Stream",
    "Frame",
    "FrameError",
    "DecoderStats",
    "encode_frame",
    "parse_frame",
    "StreamDecoder",
    "CobsDecoder",
    "cobs_frame",
    "Fragmenter",
    "FragmentDecoder",
    "FRAG_HEADER_SIZE",
    "BLE_MIN_MTU",
]

MAGIC = b"GB"
PROTOCOL_VERSION = 1
_HEADER = struct.Struct("<2sBBBBHIQIII")
HEADER_SIZE = _HEADER.size  # 32
_HEADER_NOCRC = struct.Struct("<2sBBBBHIQII")  # first 28 bytes
DEFAULT_MAX_PAYLOAD = 4 * 1024 * 1024  # 4 MiB: a 4K JPEG fits, a bogus length does not
FLAG_END_OF_STREAM = 0x01
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


class Stream:
    """Stream ids (header byte 5).  Sequence numbers count per stream and direction."""

    CONTROL = 0
    MIC = 1
    SPEAKER = 2
    CAMERA = 3
    BUTTONS = 4
    TELEMETRY = 5


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded, CRC-verified frame (header fields + raw payload)."""

    type: int
    payload: bytes
    seq: int = 0
    device_time_us: int = 0
    stream: int = 0
    flags: int = 0
    version: int = PROTOCOL_VERSION

    def encode(self) -> bytes:
        """Serialise back to wire bytes (header + payload)."""
        return encode_frame(
            self.type,
            self.payload,
            seq=self.seq,
            device_time_us=self.device_time_us,
            stream=self.stream,
            flags=self.flags,
            version=self.version,
        )


class FrameError(ValueError):
    """A single frame buffer is invalid; ``reason`` names the DecoderStats counter."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(slots=True)
class DecoderStats:
    """Counters kept by the decoders; every dropped or skipped byte is accounted for."""

    frames: int = 0  # good frames delivered
    bytes_in: int = 0  # raw bytes fed
    bytes_skipped: int = 0  # bytes discarded while hunting for a frame
    resyncs: int = 0  # times a good frame was found after losing sync
    header_crc_errors: int = 0
    crc_errors: int = 0  # payload CRC mismatch
    bad_version: int = 0  # valid header with an unknown protocol version
    last_bad_version: int = 0  # the last such version seen (for clear errors)
    bad_magic: int = 0  # a delimited frame that does not start with the magic
    oversize: int = 0  # declared/accumulated length above the cap
    truncated: int = 0  # frame shorter than its header says, or cut off at disconnect
    cobs_errors: int = 0
    frag_errors: int = 0  # BLE fragment lost/out of order/malformed
    frag_incomplete: int = 0  # BLE message abandoned before its END fragment

    def as_dict(self) -> dict[str, int]:
        """Counters as a plain dict."""
        return asdict(self)

    def count(self, reason: str, n: int = 1) -> None:
        """Increment the counter called ``reason``."""
        setattr(self, reason, getattr(self, reason) + n)


def encode_frame(
    msg_type: int,
    payload: bytes | bytearray | memoryview,
    *,
    seq: int = 0,
    device_time_us: int = 0,
    stream: int = 0,
    flags: int = 0,
    version: int = PROTOCOL_VERSION,
) -> bytes:
    """Build the wire bytes of one frame (header + payload) with both CRCs."""
    payload = bytes(payload)
    head = _HEADER_NOCRC.pack(
        MAGIC,
        version & 0xFF,
        msg_type & 0xFF,
        flags & 0xFF,
        stream & 0xFF,
        0,
        seq & _U32,
        device_time_us & _U64,
        len(payload),
        crc32c(payload),
    )
    return head + struct.pack("<I", crc32c(head)) + payload


def _check_header(buf: bytes | bytearray, max_payload: int) -> tuple[Any, ...]:
    """Validate the 32-byte header at the start of ``buf``; return its fields."""
    fields = _HEADER.unpack_from(buf, 0)
    if fields[0] != MAGIC:
        raise FrameError("bad_magic")
    if crc32c(memoryview(buf)[:28]) != fields[10]:
        raise FrameError("header_crc_errors")
    if fields[1] != PROTOCOL_VERSION:
        raise FrameError("bad_version", str(fields[1]))
    if fields[8] > max_payload:
        raise FrameError("oversize", f"{fields[8]} > {max_payload}")
    return fields


def _make_frame(fields: tuple[Any, ...], payload: bytes) -> Frame:
    if crc32c(payload) != fields[9]:
        raise FrameError("crc_errors")
    return Frame(
        type=fields[2],
        payload=payload,
        seq=fields[6],
        device_time_us=fields[7],
        stream=fields[4],
        flags=fields[3],
        version=fields[1],
    )


def parse_frame(buf: bytes | bytearray | memoryview, max_payload: int = DEFAULT_MAX_PAYLOAD) -> Frame:
    """Parse exactly one frame occupying all of ``buf``.

    Used for delimited framings (COBS, BLE reassembly).  Raises
    :class:`FrameError` whose ``reason`` is a :class:`DecoderStats` field.
    """
    buf = bytes(buf)
    if len(buf) < HEADER_SIZE:
        raise FrameError("truncated", f"{len(buf)} bytes")
    fields = _check_header(buf, max_payload)
    end = HEADER_SIZE + fields[8]
    if len(buf) < end:
        raise FrameError("truncated", f"{len(buf)} < {end}")
    if len(buf) > end:
        # Trailing bytes in a delimited frame mean the delimiter was lost
        # and two frames were glued; the length is trustworthy (header CRC)
        # but we refuse rather than guess.
        raise FrameError("truncated", "trailing bytes after frame")
    return _make_frame(fields, buf[HEADER_SIZE:end])


class StreamDecoder:
    """Incremental decoder for stream links (TCP): ``feed(bytes) -> list[Frame]``.

    Accepts arbitrary chunk splits.  Memory is bounded by
    ``HEADER_SIZE + max_payload + chunk_limit`` because input is processed in
    slices of at most ``chunk_limit`` bytes.
    """

    def __init__(
        self,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        stats: DecoderStats | None = None,
        chunk_limit: int = 65536,
    ) -> None:
        self.max_payload = max_payload
        self.stats = stats if stats is not None else DecoderStats()
        self._buf = bytearray()
        self._chunk_limit = chunk_limit
        self._lost_sync = False

    @property
    def buffered(self) -> int:
        """Bytes currently held (a partial frame or unscanned data)."""
        return len(self._buf)

    @property
    def max_buffer(self) -> int:
        """Upper bound on :attr:`buffered`."""
        return HEADER_SIZE + self.max_payload + self._chunk_limit

    def reset(self) -> None:
        """Forget buffered bytes (e.g. the peer disconnected mid-frame)."""
        if self._buf:
            self.stats.truncated += 1
            self.stats.bytes_skipped += len(self._buf)
        self._buf.clear()
        self._lost_sync = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Consume ``data``; return every complete, valid frame now available."""
        out: list[Frame] = []
        mv = memoryview(bytes(data)) if not isinstance(data, bytes) else memoryview(data)
        self.stats.bytes_in += len(mv)
        for i in range(0, len(mv), self._chunk_limit):
            self._buf += mv[i : i + self._chunk_limit]
            self._drain(out)
        return out

    def _skip(self, n: int) -> None:
        del self._buf[:n]
        self.stats.bytes_skipped += n
        self._lost_sync = True

    def _drain(self, out: list[Frame]) -> None:
        buf = self._buf
        stats = self.stats
        while True:
            idx = buf.find(MAGIC)
            if idx < 0:
                # Keep a trailing first magic byte: it may start the next frame.
                keep = 1 if buf[-1:] == MAGIC[:1] else 0
                if len(buf) - keep:
                    self._skip(len(buf) - keep)
                return
            if idx:
                self._skip(idx)
            if len(buf) < HEADER_SIZE:
                return
            try:
                fields = _check_header(buf, self.max_payload)
            except FrameError as exc:
                if exc.reason == "bad_version":
                    stats.bad_version += 1
                    stats.last_bad_version = buf[2]
                else:
                    stats.count(exc.reason)
                # The header is not usable; the magic may have been a
                # coincidence inside garbage, so rescan from the next byte.
                self._skip(1)
                continue
            end = HEADER_SIZE + fields[8]
            if len(buf) < end:
                return  # wait for the rest; bounded because length <= max_payload
            try:
                frame = _make_frame(fields, bytes(buf[HEADER_SIZE:end]))
            except FrameError as exc:
                stats.count(exc.reason)
                # Header CRC was good, so the length is right: skip the frame.
                self._skip(end)
                continue
            del buf[:end]
            if self._lost_sync:
                stats.resyncs += 1
                self._lost_sync = False
            stats.frames += 1
            out.append(frame)


def cobs_frame(frame_bytes: bytes) -> bytes:
    """Serial framing of one encoded frame: COBS body followed by 0x00."""
    return cobs_encode(frame_bytes) + b"\x00"


class CobsDecoder:
    """Incremental decoder for serial links (COBS + 0x00 delimiter)."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD, stats: DecoderStats | None = None) -> None:
        self.max_payload = max_payload
        self.stats = stats if stats is not None else DecoderStats()
        self._buf = bytearray()
        self._cap = max_encoded_size(HEADER_SIZE + max_payload)
        self._discarding = False
        self._lost_sync = False

    @property
    def buffered(self) -> int:
        """Bytes currently held."""
        return len(self._buf)

    @property
    def max_buffer(self) -> int:
        """Upper bound on :attr:`buffered`."""
        return self._cap

    def reset(self) -> None:
        """Forget a partial frame (peer went away mid-frame)."""
        if self._buf:
            self.stats.truncated += 1
            self.stats.bytes_skipped += len(self._buf)
        self._buf.clear()
        self._discarding = False
        self._lost_sync = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Consume ``data``; return every complete, valid frame now available."""
        data = bytes(data)
        stats = self.stats
        stats.bytes_in += len(data)
        out: list[Frame] = []
        pos = 0
        n = len(data)
        while pos < n:
            z = data.find(b"\x00", pos)
            piece = data[pos:] if z < 0 else data[pos:z]
            pos = n if z < 0 else z + 1
            if self._discarding:
                stats.bytes_skipped += len(piece)
                if z >= 0:
                    self._discarding = False
                continue
            if len(self._buf) + len(piece) > self._cap:
                # Too long to be a frame: drop it and everything up to the
                # next delimiter so memory stays bounded.
                stats.oversize += 1
                stats.bytes_skipped += len(self._buf) + len(piece)
                self._buf.clear()
                self._lost_sync = True
                self._discarding = z < 0
                continue
            self._buf += piece
            if z < 0:
                break
            block = bytes(self._buf)
            self._buf.clear()
            if not block:
                continue  # repeated delimiters are legal (sync preamble)
            try:
                raw = cobs_decode(block)
            except CobsError:
                stats.cobs_errors += 1
                stats.bytes_skipped += len(block) + 1
                self._lost_sync = True
                continue
            try:
                frame = parse_frame(raw, self.max_payload)
            except FrameError as exc:
                if exc.reason == "bad_version":
                    stats.bad_version += 1
                    stats.last_bad_version = raw[2]
                else:
                    stats.count(exc.reason)
                stats.bytes_skipped += len(block) + 1
                self._lost_sync = True
                continue
            if self._lost_sync:
                stats.resyncs += 1
                self._lost_sync = False
            stats.frames += 1
            out.append(frame)
        return out


# ---------------------------------------------------------------- BLE --
_FRAG = struct.Struct("<BBH")
FRAG_HEADER_SIZE = _FRAG.size  # 4
FRAG_START = 0x01
FRAG_END = 0x02
ATT_OVERHEAD = 3  # opcode + handle of a Write Command / Notification
BLE_MIN_MTU = 23  # the Bluetooth Core minimum ATT_MTU


class Fragmenter:
    """Split encoded frames into BLE writes/notifications that fit ``mtu``.

    Fragment header (4 bytes): flags u8 (bit0 START, bit1 END), msg_id u8
    (rolling per sender), index u16 (fragment number modulo 65536).  Each
    fragment carries at most ``mtu - 3 - 4`` frame bytes.
    """

    def __init__(self, mtu: int = BLE_MIN_MTU) -> None:
        if mtu < BLE_MIN_MTU:
            raise ValueError(f"BLE ATT MTU must be >= {BLE_MIN_MTU}, got {mtu}")
        self.mtu = mtu
        self.chunk = mtu - ATT_OVERHEAD - FRAG_HEADER_SIZE
        self._msg_id = 0

    def fragment(self, frame_bytes: bytes) -> list[bytes]:
        """Fragments of one frame, in order."""
        msg_id = self._msg_id
        self._msg_id = (self._msg_id + 1) & 0xFF
        chunks = [frame_bytes[i : i + self.chunk] for i in range(0, len(frame_bytes), self.chunk)] or [b""]
        out = []
        last = len(chunks) - 1
        for i, c in enumerate(chunks):
            flags = (FRAG_START if i == 0 else 0) | (FRAG_END if i == last else 0)
            out.append(_FRAG.pack(flags, msg_id, i & 0xFFFF) + c)
        return out


class FragmentDecoder:
    """Reassemble BLE fragments (one notification per :meth:`feed`) into frames.

    Holds at most one partial message of at most ``HEADER_SIZE + max_payload``
    bytes.  BLE notifications arrive in order on one connection, so a missing
    or repeated fragment shows up as an index mismatch: the partial message
    is dropped (``frag_errors``) and reassembly restarts at the next START.
    """

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD, stats: DecoderStats | None = None) -> None:
        self.max_payload = max_payload
        self.stats = stats if stats is not None else DecoderStats()
        self._buf = bytearray()
        self._active = False
        self._msg_id = 0
        self._next_index = 0
        self._cap = HEADER_SIZE + max_payload

    @property
    def buffered(self) -> int:
        """Bytes of the partial message held."""
        return len(self._buf)

    @property
    def max_buffer(self) -> int:
        """Upper bound on :attr:`buffered`."""
        return self._cap

    def reset(self) -> None:
        """Forget a partial message."""
        if self._active:
            self.stats.frag_incomplete += 1
            self.stats.bytes_skipped += len(self._buf)
        self._buf.clear()
        self._active = False

    def _abandon(self, reason: str) -> None:
        self.stats.count(reason)
        self.stats.bytes_skipped += len(self._buf)
        self._buf.clear()
        self._active = False

    def feed(self, fragment: bytes | bytearray | memoryview) -> list[Frame]:
        """Consume one fragment; return the frame it completes, if any."""
        fragment = bytes(fragment)
        stats = self.stats
        stats.bytes_in += len(fragment)
        if len(fragment) < FRAG_HEADER_SIZE:
            stats.frag_errors += 1
            stats.bytes_skipped += len(fragment)
            return []
        flags, msg_id, index = _FRAG.unpack_from(fragment, 0)
        body = fragment[FRAG_HEADER_SIZE:]
        if flags & FRAG_START:
            if self._active:
                self._abandon("frag_incomplete")
            if index != 0:
                stats.frag_errors += 1
                stats.bytes_skipped += len(fragment)
                return []
            self._active = True
            self._msg_id = msg_id
            self._next_index = 0
        elif not self._active or msg_id != self._msg_id or index != self._next_index:
            # Lost or duplicated fragment: the message can't be complete.
            if self._active:
                self._abandon("frag_errors")
            else:
                stats.frag_errors += 1
            stats.bytes_skipped += len(fragment)
            return []
        if len(self._buf) + len(body) > self._cap:
            self._abandon("oversize")
            return []
        self._buf += body
        self._next_index = (self._next_index + 1) & 0xFFFF
        if not flags & FRAG_END:
            return []
        data = bytes(self._buf)
        self._buf.clear()
        self._active = False
        try:
            frame = parse_frame(data, self.max_payload)
        except FrameError as exc:
            if exc.reason == "bad_version":
                stats.bad_version += 1
                stats.last_bad_version = data[2] if len(data) > 2 else 0
            else:
                stats.count(exc.reason)
            stats.bytes_skipped += len(data)
            return []
        stats.frames += 1
        return [frame]
