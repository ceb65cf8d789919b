# SPDX-License-Identifier: GPL-3.0-or-later
"""What the host accepts from a device (firmware_bridge.untrusted) and how the client applies it.

Fast tests of the rules, then the client against a scripted device on 127.0.0.1 for the
failures seen on main: deaf after a far-ahead sequence number, blind after a far-future
timestamp, megabytes of silence from gaps, reconnect storms, raw device strings in the log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # works under any --import-mode
from conftest import eventually, run, take  # noqa: E402
from scripted import ScriptedDevice, device_hello, now_us  # noqa: E402

from firmware_bridge import BridgeClient, ProtocolVersionError  # noqa: E402
from firmware_bridge.client import Capabilities, _Subscription, hello_fixes  # noqa: E402
from firmware_bridge.jitter import JitterBuffer, MicChunk  # noqa: E402
from firmware_bridge.messages import (  # noqa: E402
    CameraFrameMsg,
    Codec,
    Error,
    Hello,
    LedState,
    MicAudio,
    Telemetry,
)
from firmware_bridge.untrusted import (  # noqa: E402
    DeviceClock,
    LogLimiter,
    mic_problem,
    printable,
    sane_speaker_rates,
    telemetry_problem,
)

CH = 640  # 20 ms at 16 kHz


def chunk(seq: int, n: int = CH) -> MicChunk:
    return MicChunk(bytes([seq % 251 + 1]) * n, 16000, seq, seq * 20_000)


# --------------------------------------------------------------- the rules


@pytest.mark.parametrize(("raw", "shown"), [
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("a\nb\r\n", "a\\x0ab\\x0d\\x0a"),
    ("\u202egnp.exe", "\\u202egnp.exe"),
    ("nul\x00", "nul\\x00"),
    ("café ✓", "café ✓"),
])
def test_printable_escapes_controls(raw: str, shown: str) -> None:
    assert printable(raw) == shown


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None, database=None)
def test_printable_never_lets_a_control_through(text: str) -> None:
    out = printable(text, 50)
    assert all(ord(c) >= 0x20 and c not in "\x7f\u2028\u2029\u202e" for c in out)
    assert len(out) <= 50 * 10 + 1  # each kept character becomes at most one escape


def test_log_limiter_lets_a_burst_through_then_counts() -> None:
    t = [0.0]
    lim = LogLimiter(burst=3, per_s=3.0, clock=lambda: t[0])
    assert [lim.allow("e") for _ in range(5)] == [True, True, True, False, False]
    t[0] = 1.0  # one token back
    assert lim.allow("e") and lim.note("e") == " (2 similar lines suppressed)"
    assert lim.allow("other")  # keys are independent
    assert lim.suppressed == 2


def test_rules_for_audio_rates_sizes_and_telemetry() -> None:
    assert mic_problem(Codec.PCM16, 1, 16000, 640, Codec.PCM16) is None
    assert mic_problem(Codec.PCM16, 1, 1, 640, Codec.PCM16) == "rate"
    assert mic_problem(Codec.PCM16, 1, 0xFFFFFFFF, 640, Codec.PCM16) == "rate"
    assert mic_problem(Codec.OPUS, 1, 16000, 640, Codec.PCM16) == "codec"
    assert mic_problem(Codec.PCM16, 2, 16000, 640, Codec.PCM16) == "channels"
    assert mic_problem(Codec.PCM16, 1, 16000, 641, Codec.PCM16) == "length"
    assert mic_problem(Codec.PCM16, 1, 16000, 4 << 20, Codec.PCM16) == "too-long"
    assert sane_speaker_rates([0, 4294967295]) == ((16000,), True)
    assert sane_speaker_rates([22050, 22050, 48000]) == ((22050, 48000), True)
    for bad in (math.nan, math.inf, -1.0, 101.0):
        assert telemetry_problem(bad, 4000, 30.0) == "battery"
    for bad in (math.nan, math.inf, -math.inf, 200.0):
        assert telemetry_problem(50.0, 4000, bad) == "temperature"
    assert telemetry_problem(50.0, 4000, 30.0) is None


def test_hostile_hello_becomes_usable_capabilities() -> None:
    h = device_hello(device_id="\x1b[2J" + "A" * 500, firmware_version="1\n2", speaker_sample_rates=(0, 4294967295),
                     mic_sample_rate=1, mic_channels=0, mic_frame_ms=0, max_payload=0,
                     camera_resolutions=((0, 0), (640, 480)))
    caps = Capabilities.from_hello(h)
    assert caps.speaker_sample_rates == (16000,) and caps.audio_format.sample_rate == 16000
    assert caps.audio_format.channels == 1 and caps.audio_format.frame_ms == 20
    assert caps.camera_resolutions == ((640, 480),) and caps.max_payload == 256
    assert "\x1b" not in caps.device_id and len(caps.device_id) <= 80 and caps.firmware_version == "1\\x0a2"
    assert set(hello_fixes(h)) == {"device_id", "firmware_version", "speaker_sample_rates", "mic_sample_rate",
                                   "mic_channels", "mic_frame_ms", "camera_resolutions", "max_payload"}
    assert hello_fixes(device_hello()) == []


def test_device_clock_ignores_a_few_absurd_times() -> None:
    clock = DeviceClock(window=9)
    for i in range(9):
        clock.observe(5_000_000 + i, i)  # the device runs 5 s ahead of the host
    clock.observe(2**63, 9)  # one absurd header time
    clock.observe(0, 10)
    now = clock.now_us(100)
    assert now is not None and abs(now - (100 + 5_000_000)) < 10


# --------------------------------------------------------------- jitter buffer


def test_one_far_ahead_chunk_does_not_make_the_buffer_deaf() -> None:
    jb = JitterBuffer(depth=3)
    out = [c.seq for s in range(0, 10) for c in jb.push(chunk(s))]
    out += [c.seq for c in jb.push(chunk(3_000_000))]  # one stray, far ahead
    out += [c.seq for s in range(10, 30) for c in jb.push(chunk(s))]
    assert out == list(range(30)) and jb.stats.late_dropped == 0
    assert jb.stats.resyncs == 0 and len(jb.flush()) == 0


@pytest.mark.parametrize("restart", [0, 2**32 - 3, 7_000_000])
def test_counter_restart_in_either_direction_is_followed(restart: int) -> None:
    jb = JitterBuffer(depth=3)
    first = [c.seq for s in range(5000, 5020) for c in jb.push(chunk(s))]
    after = [c.seq for i in range(20) for c in jb.push(chunk((restart + i) % 2**32))]
    after += [c.seq for c in jb.flush()]
    assert first == list(range(5000, 5020))
    assert after == [(restart + i) % 2**32 for i in range(20)]  # every chunk of the new numbering
    assert jb.stats.resyncs == 1 and jb.stats.late_dropped == 0


def test_gap_fill_is_capped_per_gap_and_per_second() -> None:
    t = [0.0]
    jb = JitterBuffer(depth=0, clock=lambda: t[0], max_fill_s=1.0, fill_burst_s=2.0)
    half = 16000  # 0.5 s chunks
    out = [c for s in (0, 40) for c in jb.push(chunk(s, half))]  # 39 lost: 19.5 s of silence once
    assert not any(c.filled for c in out) and jb.stats.fill_skipped == 39
    # One lost between each: 0.5 s of silence per 0.5 s received, all at one instant. The budget
    # (2 s, refilled at one second per second) stops silence from outrunning real time.
    out = [c for s in range(100, 140, 2) for c in jb.push(chunk(s, half))]
    filled = sum(c.duration_s for c in out if c.filled)
    assert filled <= 2.0 + 1e-9 and jb.stats.fill_skipped > 39
    t[0] = 10.0
    out = [c for s in range(200, 206, 2) for c in jb.push(chunk(s, half))]
    assert sum(c.duration_s for c in out if c.filled) == 1.0  # refilled with time


def test_subscription_is_bounded_in_bytes() -> None:
    dropped = []
    sub: _Subscription[MicChunk] = _Subscription(1000, lambda: dropped.append(1), [], max_bytes=10 * CH,
                                                 size=lambda c: len(c.pcm))
    for s in range(50):
        sub.put(chunk(s))
    assert sub.qsize() == 10 and len(dropped) == 40 and sub._bytes == 10 * CH


# --------------------------------------------------------------- the client against a scripted device


def test_client_drops_hostile_audio_and_telemetry_and_keeps_listening() -> None:
    async def main() -> None:
        dev = ScriptedDevice()
        url = await dev.start()
        async with BridgeClient(url, heartbeat_timeout=30) as c:
            s = await dev.next_session()
            mic = c.microphone()
            for rate in (1, 0, 0xFFFFFFFF):
                await s.send(MicAudio(Codec.PCM16, 1, rate, bytes(CH)))
            await s.send(MicAudio(Codec.PCM16, 1, 16000, bytes((4 << 20) - 8)))  # 4 MiB: 131 s of audio
            await s.send(MicAudio(Codec.PCM16, 1, 16000, bytes(CH)), seq=2**31)  # far ahead
            for _ in range(5):
                await s.send(MicAudio(Codec.PCM16, 1, 16000, b"\x01\x00" * (CH // 2)))
            got = await take(mic, 5)
            assert all(g.sample_rate == 16000 and len(g.pcm) == CH for g in got)
            assert c.stats.mic_format_errors == 4
            for pct, temp in ((math.nan, 30.0), (math.inf, 30.0), (50.0, -math.inf), (250.0, 30.0)):
                await s.send(Telemetry(pct, False, 4000, temp, 0))
            await s.send(Telemetry(42.0, True, 3900, 33.0, 1))
            await eventually(lambda: c.telemetry is not None)
            assert c.telemetry is not None and c.telemetry.battery_percent == 42.0
            assert c.stats.telemetry_invalid == 4
        await dev.close()

    run(main())


def test_one_far_future_frame_does_not_blind_the_camera() -> None:
    async def main() -> None:
        dev = ScriptedDevice(jpeg=b"\xff\xd8\xff\xe0 fresh \xff\xd9")
        url = await dev.start()
        async with BridgeClient(url, heartbeat_timeout=30) as c:
            s = await dev.next_session()
            await c.set_capture_led(True)
            t = now_us()
            await s.send(CameraFrameMsg(0, 64, 48, LedState.ON, 1, t, b"\xff\xd8 a"))
            await s.send(CameraFrameMsg(0, 64, 48, LedState.ON, 1, 2**63, b"\xff\xd8 liar"))
            await s.send(CameraFrameMsg(0, 64, 48, LedState.ON, 1, t + 1000, b"\xff\xd8 b"))
            await eventually(lambda: c.stats.camera_frames == 2)
            assert c.stats.camera_bad_time == 1 and c.latest_frame().jpeg == b"\xff\xd8 b"  # type: ignore[union-attr]
            frame = await c.capture()  # answered by the scripted device: fresh, not "stale"
            assert b"fresh" in frame.jpeg
        await dev.close()

    run(main())


def test_no_reconnect_storm_against_glasses_that_hang_up() -> None:
    """A device that completes the handshake and hangs up at once: the client backs off."""

    async def main() -> None:
        dev = ScriptedDevice()
        url = await dev.start()

        async def hang_up() -> None:
            while True:
                s = await dev.next_session()
                await s.close()

        killer = asyncio.create_task(hang_up())
        c = BridgeClient(url, heartbeat_timeout=30)
        await c.start()
        await asyncio.sleep(3.0)
        connects = dev.connections
        await c.close()
        killer.cancel()
        await dev.close()
        # 0.1 s doubling (±25 %): at most about 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s of waits in 3 s.
        assert 3 <= connects <= 7, connects

    run(main())


def test_glasses_restarting_into_another_major_end_the_client_for_good() -> None:
    async def main() -> None:
        dev = ScriptedDevice()
        url = await dev.start()
        c = BridgeClient(url, heartbeat_timeout=30)
        await c.start()
        s = await dev.next_session()
        v2 = dataclasses.replace(device_hello(), proto_major=2)
        dev.hello = v2
        await s.send(v2)  # the device "restarted" into protocol 2: the link closes, the handshake refuses
        mic = c.microphone()
        await eventually(lambda: c.fatal is not None, timeout=10)
        assert isinstance(c.fatal, ProtocolVersionError) and "v2" in str(c.fatal)
        assert [x async for x in mic] == []  # the streams end, so the assistant's loop ends
        await c.close()
        await dev.close()

    run(main())


def test_device_strings_are_escaped_and_error_floods_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        dev = ScriptedDevice(device_hello(device_id="\x1b]0;owned\x07glasses", firmware_version="1.0\nroot# "))
        url = await dev.start()
        async with BridgeClient(url, heartbeat_timeout=30) as c:
            s = await dev.next_session()
            caps = c.capabilities
            assert caps is not None and caps.device_id == "\\x1b]0;owned\\x07glasses"
            assert caps.firmware_version == "1.0\\x0aroot# "
            for i in range(500):
                await s.send(Error(6, 0, f"\x1b[2Kfail {i}\nCRITICAL forged"))
            await eventually(lambda: c.stats.device_errors == 500)
            assert c.stats.log_suppressed >= 490
        await dev.close()

    with caplog.at_level(logging.WARNING, logger="firmware_bridge.client"):
        run(main())
    lines = [r.getMessage() for r in caplog.records if "device error" in r.getMessage()]
    assert 1 <= len(lines) <= 10
    assert all("\x1b" not in line and "\n" not in line for line in lines)


def test_hello_payload_is_what_it_says() -> None:
    """Sanity of the scripted device itself: it answers with the Hello it was given."""

    async def main() -> None:
        dev = ScriptedDevice(device_hello(firmware_version="x-9"))
        url = await dev.start()
        async with BridgeClient(url) as c:
            assert c.capabilities is not None and c.capabilities.firmware_version == "x-9"
        await dev.close()

    run(main())
    assert Hello().proto_major == 1
