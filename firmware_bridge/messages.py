# SPDX-License-Identifier: GPL-3.0-or-later
"""Typed protocol messages with explicit binary payload encodings.

Each message is a small dataclass with a ``TYPE`` (header type byte) and a
default ``STREAM``.  ``encode_payload``/``decode_payload`` convert to and from
the frame payload; :func:`encode_message` and :func:`decode_message` add the
frame layer.  Payloads are little-endian.  Decoders ignore trailing bytes so a
later *minor* protocol version may append fields without breaking old peers.
Strings are ``u16 length + UTF-8``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .errors import MessageDecodeError
from .frame import DEFAULT_MAX_PAYLOAD, PROTOCOL_VERSION, Frame, Stream, encode_frame

__all__ = [
    "PROTOCOL_MINOR",
    "Codec",
    "Role",
    "Feature",
    "LedState",
    "ErrorCode",
    "ButtonKind",
    "ThermalState",
    "MsgType",
    "Message",
    "Hello",
    "Heartbeat",
    "Error",
    "MicAudio",
    "SpeakerAudio",
    "SpeakerControl",
    "CaptureRequest",
    "CameraFrameMsg",
    "ButtonEventMsg",
    "LedSet",
    "LedReport",
    "Telemetry",
    "FwState",
    "FwBegin",
    "FwChunk",
    "FwEnd",
    "FwQuery",
    "FwStatus",
    "Caption",
    "MESSAGE_TYPES",
    "encode_message",
    "decode_message",
]

# 1.1 added the firmware update messages (0x60-0x64); 1.2 the Caption (0x70). An older peer
# counts what it does not know as unknown_type and carries on.
PROTOCOL_MINOR = 2


class Codec:
    """Audio codec ids.  Only PCM16 is implemented; the others are reserved."""

    PCM16 = 1  # signed 16-bit little-endian, interleaved
    OPUS = 2
    LC3 = 3


class Role:
    """Who sent a Hello."""

    HOST = 0
    DEVICE = 1


class Feature:
    """Capability bits in ``Hello.features``."""

    CAMERA = 0x01
    SPEAKER = 0x02
    DISPLAY = 0x04
    MICROPHONE = 0x08
    BUTTONS = 0x10
    CAPTURE_LED = 0x20


class LedState:
    """Capture-LED state as reported in camera frames."""

    OFF = 0
    ON = 1
    UNKNOWN = 2


class ErrorCode:
    """``Error.code`` values."""

    UNSUPPORTED_VERSION = 1
    BAD_REQUEST = 2
    CAPTURE_REFUSED_LED_OFF = 3
    NO_CAMERA = 4
    BUSY = 5
    INTERNAL = 6


class ButtonKind:
    """``ButtonEventMsg.kind`` values and their names."""

    TAP = 1
    DOUBLE_TAP = 2
    LONG_PRESS_START = 3
    LONG_PRESS_END = 4
    NAMES: ClassVar[dict[int, str]] = {
        1: "tap",
        2: "double_tap",
        3: "long_press_start",
        4: "long_press_end",
    }
    IDS: ClassVar[dict[str, int]] = {v: k for k, v in NAMES.items()}


class ThermalState:
    """``Telemetry.thermal_state`` values."""

    NOMINAL = 0
    WARM = 1
    HOT = 2
    CRITICAL = 3


class MsgType:
    """Header ``type`` byte values."""

    HELLO = 0x01
    HEARTBEAT = 0x02
    ERROR = 0x03
    MIC_AUDIO = 0x10
    SPEAKER_AUDIO = 0x11
    SPEAKER_CONTROL = 0x12
    CAPTURE_REQUEST = 0x20
    CAMERA_FRAME = 0x21
    BUTTON_EVENT = 0x30
    LED_SET = 0x40
    LED_STATE = 0x41
    TELEMETRY = 0x50
    FW_BEGIN = 0x60
    FW_CHUNK = 0x61
    FW_END = 0x62
    FW_QUERY = 0x63
    FW_STATUS = 0x64
    CAPTION = 0x70


class _Reader:
    """Bounds-checked payload reader; every failure is a MessageDecodeError."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> tuple[Any, ...]:  # ints, floats and bytes, as ``fmt`` says (struct's own type)
        s = struct.calcsize(fmt)
        if self.pos + s > len(self.buf):
            raise MessageDecodeError("bad_payload", "payload too short")
        vals = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += s
        return vals

    def u(self, fmt: str) -> int:
        return int(self.unpack(fmt)[0])

    def string(self) -> str:
        n = self.u("<H")
        if self.pos + n > len(self.buf):
            raise MessageDecodeError("bad_payload", "string runs past payload")
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageDecodeError("bad_payload", "invalid UTF-8") from exc

    def rest(self) -> bytes:
        data = self.buf[self.pos :]
        self.pos = len(self.buf)
        return data


def _str(s: str) -> bytes:
    raw = s.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("string longer than 65535 UTF-8 bytes")
    return struct.pack("<H", len(raw)) + raw


M = TypeVar("M", bound="Message")


class Message:
    """Base class of all protocol messages."""

    TYPE: ClassVar[int] = -1
    STREAM: ClassVar[int] = Stream.CONTROL

    def encode_payload(self) -> bytes:
        """Payload bytes of this message."""
        raise NotImplementedError

    @classmethod
    def decode_payload(cls: type[M], payload: bytes) -> M:
        """Parse a payload; raises :class:`MessageDecodeError`."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """Handshake, sent by the host first and answered by the device.

    Carries the protocol version (a peer refuses an unknown *major*) and, from
    the device, its capabilities.  ``mic_frame_ms`` is the nominal duration of
    one MicAudio chunk in milliseconds; sample rates are in Hz; camera
    resolutions are (width, height) in pixels; ``max_payload`` in bytes is the
    largest payload the sender accepts.
    """

    TYPE: ClassVar[int] = MsgType.HELLO
    proto_major: int = PROTOCOL_VERSION
    proto_minor: int = PROTOCOL_MINOR
    role: int = Role.HOST
    device_id: str = ""
    firmware_version: str = ""
    features: int = 0
    mic_codec: int = Codec.PCM16
    mic_sample_rate: int = 16000
    mic_channels: int = 1
    mic_frame_ms: int = 20
    speaker_codec: int = Codec.PCM16
    speaker_sample_rates: tuple[int, ...] = (16000,)
    camera_resolutions: tuple[tuple[int, int], ...] = ()
    max_payload: int = DEFAULT_MAX_PAYLOAD

    def encode_payload(self) -> bytes:
        out = struct.pack("<BBB", self.proto_major, self.proto_minor, self.role)
        out += _str(self.device_id) + _str(self.firmware_version)
        out += struct.pack(
            "<IBIBHB",
            self.features,
            self.mic_codec,
            self.mic_sample_rate,
            self.mic_channels,
            self.mic_frame_ms,
            self.speaker_codec,
        )
        out += struct.pack("<B", len(self.speaker_sample_rates))
        out += b"".join(struct.pack("<I", r) for r in self.speaker_sample_rates)
        out += struct.pack("<B", len(self.camera_resolutions))
        out += b"".join(struct.pack("<HH", w, h) for w, h in self.camera_resolutions)
        out += struct.pack("<I", self.max_payload)
        return out

    @classmethod
    def decode_payload(cls, payload: bytes) -> Hello:
        r = _Reader(payload)
        major, minor, role = r.unpack("<BBB")
        device_id = r.string()
        fw = r.string()
        features, mcodec, mrate, mch, mms, scodec = r.unpack("<IBIBHB")
        rates = tuple(r.u("<I") for _ in range(r.u("<B")))
        res = tuple((int(w), int(h)) for w, h in (r.unpack("<HH") for _ in range(r.u("<B"))))
        max_payload = r.u("<I")
        return cls(
            int(major),
            int(minor),
            int(role),
            device_id,
            fw,
            int(features),
            int(mcodec),
            int(mrate),
            int(mch),
            int(mms),
            int(scodec),
            rates,
            res,
            max_payload,
        )


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """Keep-alive sent by both sides every heartbeat interval.  ``nonce`` is opaque."""

    TYPE: ClassVar[int] = MsgType.HEARTBEAT
    nonce: int = 0

    def encode_payload(self) -> bytes:
        return struct.pack("<I", self.nonce)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Heartbeat:
        return cls(_Reader(payload).u("<I"))


@dataclass(frozen=True, slots=True)
class Error(Message):
    """Error report.  ``code`` is an :class:`ErrorCode`; ``ref_id`` is the
    request id it answers (e.g. a CaptureRequest id), 0 if none."""

    TYPE: ClassVar[int] = MsgType.ERROR
    code: int = ErrorCode.INTERNAL
    ref_id: int = 0
    message: str = ""

    def encode_payload(self) -> bytes:
        return struct.pack("<HI", self.code, self.ref_id) + _str(self.message)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Error:
        r = _Reader(payload)
        code, ref = r.unpack("<HI")
        return cls(int(code), int(ref), r.string())


@dataclass(frozen=True, slots=True)
class _Audio(Message):
    """Audio chunk.  ``data`` is PCM16 LE interleaved when ``codec`` is PCM16;
    ``sample_rate`` in Hz.  The header timestamp is the device time (µs) of
    the chunk's first sample; the header seq numbers chunks on the stream."""

    codec: int = Codec.PCM16
    channels: int = 1
    sample_rate: int = 16000
    data: bytes = b""

    def encode_payload(self) -> bytes:
        return struct.pack("<BBI", self.codec, self.channels, self.sample_rate) + self.data

    @classmethod
    def decode_payload(cls, payload: bytes) -> _Audio:
        r = _Reader(payload)
        codec, ch, rate = r.unpack("<BBI")
        return cls(int(codec), int(ch), int(rate), r.rest())

    @property
    def duration_s(self) -> float:
        """Duration in seconds (PCM16 only)."""
        if self.codec != Codec.PCM16 or not self.sample_rate or not self.channels:
            return 0.0
        return len(self.data) / (2 * self.channels * self.sample_rate)


@dataclass(frozen=True, slots=True)
class MicAudio(_Audio):
    """Microphone audio, device -> host (16 kHz mono PCM16 by default)."""

    TYPE: ClassVar[int] = MsgType.MIC_AUDIO
    STREAM: ClassVar[int] = Stream.MIC


@dataclass(frozen=True, slots=True)
class SpeakerAudio(_Audio):
    """Speaker audio, host -> device, any sample rate listed in the device Hello."""

    TYPE: ClassVar[int] = MsgType.SPEAKER_AUDIO
    STREAM: ClassVar[int] = Stream.SPEAKER


@dataclass(frozen=True, slots=True)
class SpeakerControl(Message):
    """Speaker control, host -> device.  ``action`` 1 = FLUSH (stop and drop buffered audio)."""

    TYPE: ClassVar[int] = MsgType.SPEAKER_CONTROL
    STREAM: ClassVar[int] = Stream.SPEAKER
    FLUSH: ClassVar[int] = 1
    action: int = 1

    def encode_payload(self) -> bytes:
        return struct.pack("<B", self.action)

    @classmethod
    def decode_payload(cls, payload: bytes) -> SpeakerControl:
        return cls(_Reader(payload).u("<B"))


@dataclass(frozen=True, slots=True)
class CaptureRequest(Message):
    """Ask the device for one photo.  ``request_id`` is echoed in the frame;
    width/height in pixels (0 = device default); ``quality`` 1-100 JPEG
    quality (0 = default)."""

    TYPE: ClassVar[int] = MsgType.CAPTURE_REQUEST
    STREAM: ClassVar[int] = Stream.CAMERA
    request_id: int = 0
    width: int = 0
    height: int = 0
    quality: int = 0

    def encode_payload(self) -> bytes:
        return struct.pack("<IHHB", self.request_id, self.width, self.height, self.quality)

    @classmethod
    def decode_payload(cls, payload: bytes) -> CaptureRequest:
        return cls(*(int(v) for v in _Reader(payload).unpack("<IHHB")))


@dataclass(frozen=True, slots=True)
class CameraFrameMsg(Message):
    """A camera image, device -> host.  ``request_id`` echoes the CaptureRequest
    (0 = device-initiated/streamed); width/height in pixels; ``led_state`` is
    the capture LED (:class:`LedState`) *at capture time*; ``fmt`` 1 = JPEG;
    ``capture_time_us`` device clock at exposure (µs)."""

    TYPE: ClassVar[int] = MsgType.CAMERA_FRAME
    STREAM: ClassVar[int] = Stream.CAMERA
    FORMAT_JPEG: ClassVar[int] = 1
    request_id: int = 0
    width: int = 0
    height: int = 0
    led_state: int = LedState.UNKNOWN
    fmt: int = 1
    capture_time_us: int = 0
    data: bytes = b""

    def encode_payload(self) -> bytes:
        return (
            struct.pack(
                "<IHHBBQ", self.request_id, self.width, self.height, self.led_state, self.fmt, self.capture_time_us
            )
            + self.data
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> CameraFrameMsg:
        r = _Reader(payload)
        rid, w, h, led, fmt, t = r.unpack("<IHHBBQ")
        return cls(int(rid), int(w), int(h), int(led), int(fmt), int(t), r.rest())


@dataclass(frozen=True, slots=True)
class ButtonEventMsg(Message):
    """A button event, device -> host.  ``kind`` is a :class:`ButtonKind`."""

    TYPE: ClassVar[int] = MsgType.BUTTON_EVENT
    STREAM: ClassVar[int] = Stream.BUTTONS
    button: int = 0
    kind: int = ButtonKind.TAP

    def encode_payload(self) -> bytes:
        return struct.pack("<BB", self.button, self.kind)

    @classmethod
    def decode_payload(cls, payload: bytes) -> ButtonEventMsg:
        return cls(*(int(v) for v in _Reader(payload).unpack("<BB")))


@dataclass(frozen=True, slots=True)
class LedSet(Message):
    """Host asks the device to switch the capture LED on/off."""

    TYPE: ClassVar[int] = MsgType.LED_SET
    on: bool = False

    def encode_payload(self) -> bytes:
        return struct.pack("<B", 1 if self.on else 0)

    @classmethod
    def decode_payload(cls, payload: bytes) -> LedSet:
        return cls(bool(_Reader(payload).u("<B")))


@dataclass(frozen=True, slots=True)
class LedReport(Message):
    """Device reports the capture LED state (after a LedSet, on change, and after Hello)."""

    TYPE: ClassVar[int] = MsgType.LED_STATE
    on: bool = False

    def encode_payload(self) -> bytes:
        return struct.pack("<B", 1 if self.on else 0)

    @classmethod
    def decode_payload(cls, payload: bytes) -> LedReport:
        return cls(bool(_Reader(payload).u("<B")))


@dataclass(frozen=True, slots=True)
class Telemetry(Message):
    """Battery and thermal telemetry, device -> host, about once a second.

    ``battery_percent`` 0-100 (%), ``charging`` bool, ``battery_mv``
    millivolts, ``temperature_c`` device temperature in °C,
    ``thermal_state`` a :class:`ThermalState`.
    """

    TYPE: ClassVar[int] = MsgType.TELEMETRY
    STREAM: ClassVar[int] = Stream.TELEMETRY
    battery_percent: float = 100.0
    charging: bool = False
    battery_mv: int = 4200
    temperature_c: float = 30.0
    thermal_state: int = ThermalState.NOMINAL

    def encode_payload(self) -> bytes:
        return struct.pack(
            "<fBHfB",
            self.battery_percent,
            1 if self.charging else 0,
            self.battery_mv,
            self.temperature_c,
            self.thermal_state,
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Telemetry:
        pct, chg, mv, temp, th = _Reader(payload).unpack("<fBHfB")
        return cls(float(pct), bool(chg), int(mv), float(temp), int(th))


class FwState:
    """``FwStatus.state``: where a firmware update stands on the device."""

    IDLE = 0
    RECEIVING = 1
    APPLYING = 2  # image verified, written to the inactive slot, rebooting into it
    TRIAL = 3  # running the new firmware, not yet confirmed by a healthy first heartbeat
    CONFIRMED = 4
    ROLLED_BACK = 5
    REFUSED = 6
    NAMES: ClassVar[dict[int, str]] = {
        0: "idle", 1: "receiving", 2: "applying", 3: "trial", 4: "confirmed", 5: "rolled-back", 6: "refused",
    }


@dataclass(frozen=True, slots=True)
class FwBegin(Message):
    """Host starts (or resumes) sending a firmware image: its sha256, size (bytes) and chunk
    size (bytes); ``flags`` bit 0 = FORCE (allow a lower counter).  The device keeps chunks
    already received for the same sha256 and answers with FwStatus."""

    TYPE: ClassVar[int] = MsgType.FW_BEGIN
    image_sha256: bytes = bytes(32)
    image_size: int = 0
    chunk_size: int = 0
    flags: int = 0

    def encode_payload(self) -> bytes:
        return struct.pack("<32sIIB", self.image_sha256, self.image_size, self.chunk_size, self.flags)

    @classmethod
    def decode_payload(cls, payload: bytes) -> FwBegin:
        sha, size, chunk, flags = _Reader(payload).unpack("<32sIIB")
        return cls(bytes(sha), int(size), int(chunk), int(flags))


@dataclass(frozen=True, slots=True)
class FwChunk(Message):
    """One chunk of the image: ``index`` (0-based), CRC32C of ``data``.  No answer; a chunk
    with a bad CRC is dropped and shows up as missing in the next FwStatus."""

    TYPE: ClassVar[int] = MsgType.FW_CHUNK
    index: int = 0
    crc: int = 0
    data: bytes = b""

    def encode_payload(self) -> bytes:
        return struct.pack("<II", self.index, self.crc) + self.data

    @classmethod
    def decode_payload(cls, payload: bytes) -> FwChunk:
        r = _Reader(payload)
        index, crc = r.unpack("<II")
        return cls(int(index), int(crc), r.rest())


@dataclass(frozen=True, slots=True)
class FwEnd(Message):
    """All chunks sent: verify the whole image (sha256, signature, model, counter) and apply it."""

    TYPE: ClassVar[int] = MsgType.FW_END
    image_sha256: bytes = bytes(32)

    def encode_payload(self) -> bytes:
        return struct.pack("<32s", self.image_sha256)

    @classmethod
    def decode_payload(cls, payload: bytes) -> FwEnd:
        return cls(bytes(_Reader(payload).unpack("<32s")[0]))


@dataclass(frozen=True, slots=True)
class FwQuery(Message):
    """Host asks for the device's FwStatus (no payload)."""

    TYPE: ClassVar[int] = MsgType.FW_QUERY

    def encode_payload(self) -> bytes:
        return b""

    @classmethod
    def decode_payload(cls, payload: bytes) -> FwQuery:
        return cls()


@dataclass(frozen=True, slots=True)
class FwStatus(Message):
    """Device's firmware update state: :class:`FwState`, the image it concerns, how many
    chunks it expects and holds (``bitmap``: bit i of byte i//8 = chunk i received), the
    firmware version running now, its active slot (0/1) and a one-line message."""

    TYPE: ClassVar[int] = MsgType.FW_STATUS
    state: int = FwState.IDLE
    active_slot: int = 0
    image_sha256: bytes = bytes(32)
    chunk_count: int = 0
    chunks_received: int = 0
    running_version: str = ""
    message: str = ""
    bitmap: bytes = b""

    def encode_payload(self) -> bytes:
        return (
            struct.pack("<BB32sII", self.state, self.active_slot, self.image_sha256, self.chunk_count,
                        self.chunks_received)
            + _str(self.running_version)
            + _str(self.message)
            + struct.pack("<I", len(self.bitmap))
            + self.bitmap
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> FwStatus:
        r = _Reader(payload)
        state, slot, sha, count, received = r.unpack("<BB32sII")
        version, message = r.string(), r.string()
        n = r.u("<I")
        bitmap = r.rest()
        if len(bitmap) < n:
            raise MessageDecodeError("bad_payload", "firmware bitmap runs past payload")
        return cls(int(state), int(slot), bytes(sha), int(count), int(received), version, message,
                   bitmap[:n])


@dataclass(frozen=True, slots=True)
class Caption(Message):
    """Text for the wearer's display, host -> device (since 1.2): live translation captions.

    ``kind`` 1 = transcript (what was heard), 2 = translation; ``final`` 0 while the text may
    still change (the device replaces the caption with the same ``caption_id``), 1 when done;
    ``language`` a language code ("fr"); ``text`` UTF-8. A device without a display ignores it.
    """

    TYPE: ClassVar[int] = MsgType.CAPTION
    TRANSCRIPT: ClassVar[int] = 1
    TRANSLATION: ClassVar[int] = 2
    caption_id: int = 0
    kind: int = 1
    final: bool = True
    language: str = ""
    text: str = ""

    def encode_payload(self) -> bytes:
        return struct.pack("<IBB", self.caption_id, self.kind, 1 if self.final else 0) + _str(self.language) + _str(
            self.text)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Caption:
        r = _Reader(payload)
        cid, kind, final = r.unpack("<IBB")
        if kind not in (cls.TRANSCRIPT, cls.TRANSLATION):
            raise MessageDecodeError("bad_payload", f"caption kind {kind}")
        return cls(int(cid), int(kind), bool(final), r.string(), r.string())


MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Heartbeat,
        Error,
        MicAudio,
        SpeakerAudio,
        SpeakerControl,
        CaptureRequest,
        CameraFrameMsg,
        ButtonEventMsg,
        LedSet,
        LedReport,
        Telemetry,
        FwBegin,
        FwChunk,
        FwEnd,
        FwQuery,
        FwStatus,
        Caption,
    )
}


def encode_message(msg: Message, *, seq: int = 0, device_time_us: int = 0, flags: int = 0) -> bytes:
    """Wire bytes of one frame carrying ``msg`` (before link framing)."""
    return encode_frame(
        msg.TYPE, msg.encode_payload(), seq=seq, device_time_us=device_time_us, stream=msg.STREAM, flags=flags
    )


def decode_message(frame: Frame) -> Message:
    """Typed message carried by ``frame``; raises :class:`MessageDecodeError`."""
    cls = MESSAGE_TYPES.get(frame.type)
    if cls is None:
        raise MessageDecodeError("unknown_type", f"0x{frame.type:02x}")
    try:
        return cls.decode_payload(frame.payload)
    except MessageDecodeError:
        raise
    except Exception as exc:  # struct/unicode edge cases: never let them escape
        raise MessageDecodeError("bad_payload", str(exc)) from exc
