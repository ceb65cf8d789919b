# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame layer, COBS, CRC32C, messages and decoders (including property tests)."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.checksum import crc32c, crc32c_py
from firmware_bridge.cobs import CobsError, cobs_decode, cobs_encode, max_encoded_size
from firmware_bridge.errors import MessageDecodeError
from firmware_bridge.frame import (
    HEADER_SIZE,
    CobsDecoder,
    FragmentDecoder,
    Fragmenter,
    Frame,
    FrameError,
    StreamDecoder,
    cobs_frame,
    encode_frame,
    parse_frame,
)
from firmware_bridge.messages import (
    ButtonEventMsg,
    CameraFrameMsg,
    Caption,
    CaptureRequest,
    Error,
    Heartbeat,
    Hello,
    LedReport,
    LedSet,
    MicAudio,
    SpeakerAudio,
    SpeakerControl,
    Telemetry,
    decode_message,
    encode_message,
)

SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- CRC ---


@pytest.mark.parametrize(
    "data,crc",
    [
        (b"123456789", 0xE3069283),
        (b"", 0x00000000),
        (b"a", 0xC1D04330),
        (bytes(32), 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
    ],
)
def test_crc32c_known_vectors(data: bytes, crc: int) -> None:
    assert crc32c(data) == crc
    assert crc32c_py(data) == crc


@given(st.binary(max_size=600), st.integers(0, 600))
@SETTINGS
def test_crc32c_backends_agree_and_chain(data: bytes, cut: int) -> None:
    assert crc32c(data) == crc32c_py(data)
    cut = min(cut, len(data))
    assert crc32c_py(data[cut:], crc32c_py(data[:cut])) == crc32c(data)


# ---------------------------------------------------------------- COBS --


@pytest.mark.parametrize("n", [0, 1, 253, 254, 255, 508, 1000])
def test_cobs_edges(n: int) -> None:
    for data in (bytes(n), b"\x01" * n, bytes(random.Random(n).randrange(3) for _ in range(n))):
        enc = cobs_encode(data)
        assert b"\x00" not in enc
        assert len(enc) <= max_encoded_size(len(data))
        assert cobs_decode(enc) == data


@given(st.binary(max_size=2000))
@SETTINGS
def test_cobs_roundtrip(data: bytes) -> None:
    enc = cobs_encode(data)
    assert b"\x00" not in enc
    assert cobs_decode(enc) == data


@given(st.binary(max_size=300))
@SETTINGS
def test_cobs_decode_garbage_raises_only_cobserror(data: bytes) -> None:
    try:
        cobs_decode(data)
    except CobsError:
        pass


# ---------------------------------------------------------------- frames


def test_frame_roundtrip_and_header_layout() -> None:
    raw = encode_frame(0x10, b"hello", seq=0xFFFFFFFF, device_time_us=2**63 + 5, stream=1, flags=1)
    assert raw[:2] == b"GB" and raw[2] == 1 and len(raw) == HEADER_SIZE + 5 == 37
    f = parse_frame(raw)
    assert f == Frame(0x10, b"hello", 0xFFFFFFFF, 2**63 + 5, 1, 1, 1)
    assert f.encode() == raw


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda b: b[:20], "truncated"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"x", "truncated"),
        (lambda b: b[:40] + bytes([b[40] ^ 1]) + b[41:], "crc_errors"),
        (lambda b: b[:9] + bytes([b[9] ^ 1]) + b[10:], "header_crc_errors"),
        (lambda b: b"XB" + b[2:], "bad_magic"),
    ],
)
def test_parse_frame_errors(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    raw = encode_frame(0x10, b"x" * 20)
    with pytest.raises(FrameError) as ei:
        parse_frame(mutate(raw))
    assert ei.value.reason == reason


def test_oversize_and_bad_version_rejected_without_waiting() -> None:
    big = encode_frame(0x10, bytes(5000))
    d = StreamDecoder(max_payload=4096)
    # Only the header arrives: an absurd length must be rejected immediately,
    # not waited for.
    assert d.feed(big[:HEADER_SIZE]) == []
    assert d.stats.oversize == 1 and d.buffered < HEADER_SIZE
    good = encode_frame(0x02, b"\0\0\0\0")
    v2 = encode_frame(0x02, b"\0\0\0\0", version=2)
    assert len(d.feed(v2 + good)) == 1
    assert d.stats.bad_version == 1 and d.stats.last_bad_version == 2


def test_stream_decoder_peer_stops_mid_frame() -> None:
    d = StreamDecoder(max_payload=1 << 20)
    raw = encode_frame(0x21, bytes(100_000))
    assert d.feed(raw[:50_000]) == []
    assert d.buffered <= d.max_buffer
    d.reset()  # the transport calls this on EOF
    assert d.stats.truncated == 1 and d.buffered == 0
    assert len(d.feed(raw)) == 1


def test_stream_decoder_counts_and_resyncs() -> None:
    good = [encode_frame(0x02, bytes([i]) * 4, seq=i) for i in range(5)]
    corrupt = bytearray(good[1])
    corrupt[HEADER_SIZE] ^= 0xFF
    stream = b"noise" + good[0] + bytes(corrupt) + b"GBGBGB" + good[2] + os.urandom(100).replace(b"GB", b"gb") + good[3]
    d = StreamDecoder()
    frames = d.feed(stream)
    assert [f.seq for f in frames] == [0, 2, 3]
    assert d.stats.crc_errors == 1
    assert d.stats.resyncs >= 2
    assert d.stats.bytes_skipped >= 5 + 6 + 100


@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=8),
    st.lists(st.binary(max_size=200), min_size=1, max_size=9),
    st.lists(st.integers(1, 400), min_size=1, max_size=30),
)
@SETTINGS
def test_stream_decoder_recovers_frames_embedded_in_garbage(payloads, garbage, splits) -> None:  # type: ignore[no-untyped-def]
    frames = [encode_frame(0x11, p, seq=i) for i, p in enumerate(payloads)]
    data = b"".join(garbage[i % len(garbage)] + f for i, f in enumerate(frames)) + garbage[-1]
    d = StreamDecoder(max_payload=4096)
    out: list[Frame] = []
    pos, i = 0, 0
    while pos < len(data):
        step = splits[i % len(splits)]
        out += d.feed(data[pos : pos + step])
        pos += step
        i += 1
        assert d.buffered <= d.max_buffer
    assert [f.payload for f in out] == payloads


@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=8),
    st.lists(st.binary(max_size=200), min_size=1, max_size=9),
    st.lists(st.integers(1, 400), min_size=1, max_size=30),
)
@SETTINGS
def test_cobs_decoder_recovers_frames_after_garbage(payloads, garbage, splits) -> None:  # type: ignore[no-untyped-def]
    frames = [cobs_frame(encode_frame(0x11, p, seq=i)) for i, p in enumerate(payloads)]
    # Line noise glued to a frame destroys that frame (no delimiter between
    # them), so noise is followed by a delimiter, as after a real glitch the
    # next frame's terminator re-syncs the receiver.
    data = b"".join(garbage[i % len(garbage)] + b"\x00" + f for i, f in enumerate(frames)) + garbage[-1]
    d = CobsDecoder(max_payload=4096)
    out: list[Frame] = []
    pos, i = 0, 0
    while pos < len(data):
        step = splits[i % len(splits)]
        out += d.feed(data[pos : pos + step])
        pos += step
        i += 1
        assert d.buffered <= d.max_buffer
    assert [f.payload for f in out] == payloads


@given(st.binary(max_size=3000), st.lists(st.integers(1, 500), min_size=1, max_size=20))
@SETTINGS
def test_random_bytes_never_raise_and_stay_bounded(data: bytes, splits: list[int]) -> None:
    decs = [StreamDecoder(max_payload=1024), CobsDecoder(max_payload=1024), FragmentDecoder(max_payload=1024)]
    for dec in decs:
        pos, i = 0, 0
        while pos < len(data):
            step = splits[i % len(splits)]
            for f in dec.feed(data[pos : pos + step]):
                try:
                    decode_message(f)
                except MessageDecodeError:
                    pass
            pos += step
            i += 1
            assert dec.buffered <= dec.max_buffer


def test_cobs_decoder_bounds_endless_garbage() -> None:
    d = CobsDecoder(max_payload=256)
    for _ in range(50):
        d.feed(b"\x01" * 1000)  # never a delimiter
        assert d.buffered <= d.max_buffer
    assert d.stats.oversize >= 1
    assert len(d.feed(b"\x00" + cobs_frame(encode_frame(2, b"abcd")))) == 1


# ---------------------------------------------------------------- BLE ---


@pytest.mark.parametrize("mtu", [23, 24, 27, 100, 185, 247, 251, 512, 517])
def test_ble_fragmentation_odd_mtus(mtu: int) -> None:
    fr = Fragmenter(mtu)
    dec = FragmentDecoder()
    frames = [encode_frame(0x21, os.urandom(n), seq=n) for n in (0, 1, mtu, 5000, 70000)]
    out = []
    for raw in frames:
        for frag in fr.fragment(raw):
            assert len(frag) <= mtu - 3
            out += dec.feed(frag)
    assert [f.encode() for f in out] == frames


def test_ble_lost_fragment_dropped_and_recovered() -> None:
    fr = Fragmenter(23)
    dec = FragmentDecoder()
    a, b = encode_frame(2, bytes(100), seq=1), encode_frame(2, bytes(10), seq=2)
    fa = fr.fragment(a)
    out = []
    for frag in fa[:3] + fa[4:]:  # fragment 3 lost
        out += dec.feed(frag)
    for frag in fr.fragment(b):
        out += dec.feed(frag)
    assert [f.seq for f in out] == [2]
    assert dec.stats.frag_errors >= 1
    with pytest.raises(ValueError):
        Fragmenter(20)


# ---------------------------------------------------------------- messages

u8, u16, u32, u64 = (st.integers(0, 2**b - 1) for b in (8, 16, 32, 64))
f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
text = st.text(max_size=40)
blob = st.binary(max_size=2000)

MESSAGES = st.one_of(
    st.builds(
        Hello,
        u8,
        u8,
        u8,
        text,
        text,
        u32,
        u8,
        u32,
        u8,
        u16,
        u8,
        st.tuples(*[u32] * 3),
        st.lists(st.tuples(u16, u16), max_size=5).map(tuple),
        u32,
    ),
    st.builds(Heartbeat, u32),
    st.builds(Error, u16, u32, text),
    st.builds(MicAudio, u8, u8, u32, blob),
    st.builds(SpeakerAudio, u8, u8, u32, blob),
    st.builds(SpeakerControl, u8),
    st.builds(CaptureRequest, u32, u16, u16, u8),
    st.builds(CameraFrameMsg, u32, u16, u16, u8, u8, u64, blob),
    st.builds(ButtonEventMsg, u8, u8),
    st.builds(LedSet, st.booleans()),
    st.builds(LedReport, st.booleans()),
    st.builds(Telemetry, f32, st.booleans(), u16, f32, u8),
    st.builds(Caption, u32, st.sampled_from([Caption.TRANSCRIPT, Caption.TRANSLATION]), st.booleans(), text, text),
)


@given(MESSAGES, u32, u64, st.integers(1, 97))
@SETTINGS
def test_any_message_roundtrips_through_every_framing(msg, seq: int, t: int, mtu_extra: int) -> None:  # type: ignore[no-untyped-def]
    raw = encode_message(msg, seq=seq, device_time_us=t)
    f = parse_frame(raw)
    assert (f.seq, f.device_time_us, f.stream) == (seq, t, msg.STREAM)
    assert decode_message(f) == msg
    assert [decode_message(x) for x in StreamDecoder().feed(raw)] == [msg]
    assert [decode_message(x) for x in CobsDecoder().feed(cobs_frame(raw))] == [msg]
    dec = FragmentDecoder()
    got = [x for frag in Fragmenter(23 + mtu_extra).fragment(raw) for x in dec.feed(frag)]
    assert [decode_message(x) for x in got] == [msg]


def test_unknown_type_and_bad_payload() -> None:
    with pytest.raises(MessageDecodeError) as ei:
        decode_message(Frame(0x7F, b""))
    assert ei.value.reason == "unknown_type"
    with pytest.raises(MessageDecodeError) as ei:
        decode_message(Frame(0x01, b"\x01"))
    assert ei.value.reason == "bad_payload"
    with pytest.raises(MessageDecodeError):
        decode_message(Frame(0x03, b"\x01\x00\x00\x00\x00\x00\x05\x00\xff\xfe"))  # bad UTF-8


def test_hello_ignores_appended_minor_fields() -> None:
    h = Hello(device_id="d", camera_resolutions=((640, 480),))
    assert Hello.decode_payload(h.encode_payload() + b"future fields") == h


def test_caption_framing_and_a_bad_kind() -> None:
    msg = Caption(7, Caption.TRANSLATION, True, "en", "Where is the station? Où est la gare ?")
    raw = encode_message(msg, seq=3)
    f = parse_frame(raw)
    assert f.type == 0x70 and decode_message(f) == msg
    # u32 id, u8 kind, u8 final, then two length-prefixed UTF-8 strings.
    assert f.payload[:6] == bytes([7, 0, 0, 0, 2, 1])
    bad = encode_frame(0x70, bytes([7, 0, 0, 0, 9, 1, 0, 0, 0, 0]))
    with pytest.raises(MessageDecodeError):
        decode_message(parse_frame(bad))
