# SPDX-License-Identifier: GPL-3.0-or-later
"""Decoder fuzz run: >= 1,000,000 mutated/random inputs through the decoders.

Runs once in the default suite (well under a minute).  Each input is one
``feed`` call; we assert no exception escapes, buffers stay bounded, time is
bounded, and unmutated frames keep being recovered in between.
"""

from __future__ import annotations

import os
import random
import struct
import time

import pytest

from firmware_bridge.checksum import crc32c
from firmware_bridge.errors import MessageDecodeError
from firmware_bridge.frame import CobsDecoder, FragmentDecoder, Fragmenter, StreamDecoder, cobs_frame, encode_frame
from firmware_bridge.messages import (
    ButtonEventMsg,
    CameraFrameMsg,
    Heartbeat,
    Hello,
    LedReport,
    MicAudio,
    Telemetry,
    decode_message,
    encode_message,
)

FUZZ_INPUTS = int(os.environ.get("BRIDGE_FUZZ_INPUTS", "1000000"))
TIME_LIMIT_S = 50.0


def _seed_frames() -> list[bytes]:
    msgs = [
        Hello(device_id="fuzz", camera_resolutions=((1280, 720),)),
        Heartbeat(7),
        MicAudio(data=bytes(range(64))),
        ButtonEventMsg(0, 2),
        LedReport(True),
        Telemetry(50.0, False, 3900, 35.5, 1),
        CameraFrameMsg(3, 64, 48, 1, 1, 123, b"\xff\xd8" + bytes(40) + b"\xff\xd9"),
    ]
    frames = [encode_message(m, seq=i, device_time_us=i * 1000) for i, m in enumerate(msgs)]
    frames.append(encode_frame(0x77, b"unknown type"))  # CRC-valid, unknown type
    frames.append(encode_frame(0x01, b"\x01"))  # CRC-valid, bad payload
    frames.append(encode_frame(0x02, b"\0\0\0\0", version=9))  # unknown version
    return frames


@pytest.mark.fuzz
def test_fuzz_decoders_million_inputs() -> None:
    rng = random.Random(1234)
    rand = rng.random
    randrange = rng.randrange
    seeds = _seed_frames()
    cobs_seeds = [cobs_frame(f) for f in seeds]
    fragmenter = Fragmenter(23)
    frag_seeds = [fragmenter.fragment(f) for f in seeds]
    pool = os.urandom(1 << 16)
    # Adversarial pieces: magic bytes, a header claiming a huge payload.
    head = struct.pack("<2sBBBBHIQII", b"GB", 1, 0x21, 0, 3, 0, 1, 2, 0x7FFFFFFF, 0)
    huge = head + struct.pack("<I", crc32c(head))  # CRC-valid header claiming a 2 GiB payload
    evil = [b"GB", b"GB\x01", b"\x00", huge, cobs_frame(huge)]

    stream = StreamDecoder(max_payload=4096)
    cobs = CobsDecoder(max_payload=4096)
    frag = FragmentDecoder(max_payload=4096)
    decoders = (stream, cobs, frag)
    inputs = 0
    recovered = 0
    msgs = 0
    t0 = time.monotonic()
    while inputs < FUZZ_INPUTS:
        k = randrange(len(seeds))
        r = rand()
        which = inputs % 3
        if which == 0:
            src, dec = seeds[k], stream
        elif which == 1:
            src, dec = cobs_seeds[k], cobs
        else:
            fr = frag_seeds[k]
            src, dec = fr[randrange(len(fr))], frag
            if r < 0.3:
                # Whole fragment sequences, so reassembly is exercised too.
                for piece in fr[:-1]:
                    recovered += len(frag.feed(piece))
                    inputs += 1
                src = fr[-1]
        if r < 0.30:
            data = src  # untouched
        elif r < 0.55:
            b = bytearray(src)
            for _ in range(1 + randrange(3)):
                b[randrange(len(b))] = randrange(256)
            data = bytes(b)
        elif r < 0.70:
            data = src[: randrange(len(src))]  # truncated (peer stopped mid-frame)
        elif r < 0.85:
            off = randrange(len(pool) - 256)
            data = pool[off : off + randrange(1, 256)]  # random bytes
        elif r < 0.95:
            cut = randrange(len(src))
            data = src[:cut] + evil[randrange(len(evil))] + src[cut:]
        else:
            data = evil[randrange(len(evil))]
        try:
            out = dec.feed(data)
        except Exception as exc:  # pragma: no cover - this is what the fuzz hunts
            pytest.fail(f"decoder raised {exc!r} on input #{inputs}: {data!r}")
        inputs += 1
        if out:
            recovered += len(out)
            for f in out:
                try:
                    decode_message(f)
                    msgs += 1
                except MessageDecodeError:
                    pass
        if dec.buffered > dec.max_buffer:  # pragma: no cover
            pytest.fail(f"{type(dec).__name__} buffer {dec.buffered} above bound {dec.max_buffer}")
        if not inputs & 0xFFFF and time.monotonic() - t0 > TIME_LIMIT_S:  # pragma: no cover
            pytest.fail(f"fuzz too slow: {inputs} inputs in {TIME_LIMIT_S} s (hang?)")
    elapsed = time.monotonic() - t0
    print(
        f"\nfuzz: {inputs} decoder inputs in {elapsed:.1f} s, {recovered} frames recovered, {msgs} messages decoded; "
        f"stream={stream.stats.as_dict()} cobs={cobs.stats.as_dict()} frag={frag.stats.as_dict()}"
    )
    assert inputs >= FUZZ_INPUTS
    assert recovered > inputs // 20  # good frames keep getting through the noise
    for d in decoders:
        assert d.buffered <= d.max_buffer
    assert stream.stats.crc_errors + stream.stats.header_crc_errors > 0
    assert cobs.stats.cobs_errors + cobs.stats.crc_errors > 0
    assert stream.stats.oversize > 0 and frag.stats.frames > 1000
