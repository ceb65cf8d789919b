# SPDX-License-Identifier: GPL-3.0-or-later
"""BridgeClient against the simulator (in-process, subprocess, pty) and scripted fake devices."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # works under any --import-mode
from conftest import ROOT, eventually, run, take, write_wav  # noqa: E402

from firmware_bridge import (
    BridgeClient,
    BridgeError,
    CaptureRefused,
    LinkClosed,
    ProtocolVersionError,
    TransportUnavailable,
    open_transport,
    parse_url,
)
from firmware_bridge.frame import encode_frame
from firmware_bridge.messages import (
    CameraFrameMsg,
    CaptureRequest,
    Error,
    ErrorCode,
    Hello,
    LedReport,
    LedSet,
    LedState,
    Role,
    decode_message,
    encode_message,
)
from firmware_bridge.sim import GlassesSim, SimConfig
from firmware_bridge.transport import TCP_WRITE_HIGH_WATER, Transport, serve_tcp
from firmware_bridge.wavio import read_wav


def tcp_sim(**kw: Any) -> GlassesSim:
    return GlassesSim(SimConfig(listen="tcp://127.0.0.1:0", **kw))


class FakeDevice:
    """A scripted device: answers Hello/LedSet, records capture requests, sends what the test says."""

    def __init__(self, hello: Hello | None = None, frame_version: int = 1, led: bool = True) -> None:
        self.hello = hello or Hello(role=Role.DEVICE, device_id="fake", camera_resolutions=((64, 48),))
        self.frame_version = frame_version
        self.led = led
        self.link: Transport | None = None
        self.requests: asyncio.Queue[CaptureRequest] = asyncio.Queue()
        self.read = True
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self.server = await serve_tcp("127.0.0.1", 0, self._serve)
        return f"tcp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def send(self, msg: Any, t: int = 0, seq: int = 0) -> None:
        assert self.link is not None
        await self.link.send(encode_message(msg, seq=seq, device_time_us=t))

    async def _serve(self, t: Transport) -> None:
        self.link = t
        while True:
            if not self.read:
                await asyncio.sleep(3600)  # stop reading: the host's writes back up
            try:
                frames = await t.recv()
            except LinkClosed:
                return
            for f in frames:
                msg = decode_message(f)
                if isinstance(msg, Hello):
                    raw = self.hello.encode_payload()
                    await t.send(encode_frame(Hello.TYPE, raw, version=self.frame_version))
                    await t.send(encode_message(LedReport(self.led)))
                elif isinstance(msg, LedSet):
                    self.led = msg.on
                    await t.send(encode_message(LedReport(msg.on)))
                elif isinstance(msg, CaptureRequest):
                    self.requests.put_nowait(msg)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.link is not None:
            await self.link.close()


def frame_msg(rid: int, t: int, led: int = LedState.ON) -> CameraFrameMsg:
    return CameraFrameMsg(rid, 64, 48, led, CameraFrameMsg.FORMAT_JPEG, t, b"\xff\xd8jpeg%d\xff\xd9" % t)


# --------------------------------------------------------------- basics


def test_end_to_end_in_process(tmp_path: Path) -> None:
    spk = tmp_path / "spk.wav"

    async def main() -> None:
        sim = tcp_sim(speaker_wav=str(spk), capture_latency_ms=5)
        url = await sim.start()
        try:
            async with BridgeClient(url) as c:
                caps = c.capabilities
                assert caps is not None and caps.device_id == "glasses-sim"
                assert caps.audio_format.sample_rate == 16000 and caps.audio_format.codec == "pcm16"
                assert caps.has_camera and caps.has_speaker and not caps.has_display
                assert (1280, 720) in caps.camera_resolutions
                chunks = await take(c.microphone(), 25)
                seqs = [ch.seq for ch in chunks]
                assert seqs == list(range(seqs[0], seqs[0] + 25))
                assert all(ch.sample_rate == 16000 and len(ch.pcm) == 640 for ch in chunks)

                buttons = c.buttons()
                sim.press("double_tap")
                sim.press("long_press")
                kinds = [b.kind for b in await take(buttons, 3)]
                assert kinds == ["double_tap", "long_press_start", "long_press_end"]

                await c.set_capture_led(True)
                assert sim.led_on and c.led_on
                f = await c.capture()
                assert f.jpeg[:2] == b"\xff\xd8" and (f.width, f.height) == (1280, 720) and f.led_on
                small = await c.capture(width=320, height=240)
                assert (small.width, small.height) == (320, 240) and small.device_time_us > f.device_time_us
                assert c.latest_frame() is small

                tone = struct.pack("<8000h", *(int(8000 * math.sin(i / 5)) for i in range(8000)))
                await c.play(tone, 16000)
                await eventually(lambda: sim.speaker.played_samples >= 8000, 3)
                # The WAV is readable, with a valid header, while the sim still runs.
                await eventually(lambda: len(read_wav(spk)[0]) == 8000, 3)
                await c.stop_playback()
                await eventually(lambda: sim.stats.speaker_flushes == 1, 2)
                await eventually(lambda: c.telemetry is not None, 3)
                assert c.telemetry is not None and 0 < c.telemetry.battery_percent <= 100
                assert c.telemetry.thermal_state in ("nominal", "warm", "hot", "critical")
                assert c.stats.decoder.crc_errors == 0 and c.stats.mic_queue_dropped == 0
        finally:
            await sim.stop()
        x, rate = read_wav(spk)
        assert rate == 16000 and len(x) == 8000

    run(main())


def test_start_fails_with_one_line_error() -> None:
    async def main() -> None:
        c = BridgeClient("tcp://127.0.0.1:1", connect_timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(BridgeError) as ei:
            await c.start()
        assert time.monotonic() - t0 < 3
        assert "\n" not in str(ei.value) and "127.0.0.1:1" in str(ei.value)

    run(main())


def test_urls_and_ble_unavailable() -> None:
    assert parse_url("tcp://127.0.0.1:5000").port == 5000
    s = parse_url("serial:///dev/ttyACM0?baud=115200")
    assert (s.path, s.baud) == ("/dev/ttyACM0", 115200)
    assert parse_url("ble://AA:BB:CC:DD:EE:FF").address == "AA:BB:CC:DD:EE:FF"
    for bad in ("foo", "udp://x:1", "tcp://host", "serial://", "ble://"):
        with pytest.raises(TransportUnavailable):
            parse_url(bad)

    async def main() -> None:
        # No Bluetooth stack in CI: a clean, one-line TransportUnavailable
        # (or the address simply isn't found within the timeout).
        with pytest.raises((TransportUnavailable, LinkClosed)) as ei:
            await open_transport("ble://AA:BB:CC:DD:EE:FF", timeout=3)
        assert "\n" not in str(ei.value)

    run(main())


def test_unknown_major_version_refused() -> None:
    async def main() -> None:
        dev = FakeDevice(Hello(proto_major=2, role=Role.DEVICE))
        url = await dev.start()
        with pytest.raises(ProtocolVersionError, match="v2"):
            await BridgeClient(url, connect_timeout=2).start()
        await dev.close()
        dev = FakeDevice(frame_version=3)  # header version the host can't parse
        url = await dev.start()
        with pytest.raises(ProtocolVersionError, match="v3"):
            await BridgeClient(url, connect_timeout=2).start()
        await dev.close()

    run(main())


# --------------------------------------------------------------- camera


def test_latest_wins_never_older() -> None:
    async def main() -> None:
        dev = FakeDevice()
        url = await dev.start()
        async with BridgeClient(url, heartbeat_timeout=30) as c:
            await c.set_capture_led(True)
            await dev.send(frame_msg(0, 1000))  # streamed frame, exists before the request
            await eventually(lambda: c.latest_frame() is not None)
            cap = asyncio.create_task(c.capture())
            req = await asyncio.wait_for(dev.requests.get(), 2)
            await asyncio.sleep(0.05)
            assert not cap.done()  # the pre-existing frame must not satisfy it
            await dev.send(frame_msg(req.request_id, 2000))
            f = await cap
            assert (f.request_id, f.device_time_us) == (req.request_id, 2000)

            # Two overlapping captures; the device answers only the newer
            # one: it was taken after both requests, so it serves both.
            a = asyncio.create_task(c.capture())
            r1 = await dev.requests.get()
            b = asyncio.create_task(c.capture())
            r2 = await dev.requests.get()
            await dev.send(frame_msg(r2.request_id, 4000))
            fa, fb = await a, await b
            assert fa.device_time_us == fb.device_time_us == 4000
            # The late answer to r1 is older: dropped, never handed out.
            await dev.send(frame_msg(r1.request_id, 3000))
            await dev.send(frame_msg(0, 3500))
            await eventually(lambda: c.stats.camera_stale_dropped == 2)
            assert c.latest_frame().device_time_us == 4000  # type: ignore[union-attr]
            # A newer streamed frame replaces an untaken one: counted as superseded.
            await dev.send(frame_msg(0, 5000))
            await dev.send(frame_msg(0, 6000))
            await eventually(lambda: c.stats.camera_superseded >= 1)
            assert c.latest_frame().device_time_us == 6000  # type: ignore[union-attr]
        await dev.close()

    run(main())


def test_led_privacy_host_refuses_frames_without_led() -> None:
    async def main() -> None:
        dev = FakeDevice()
        url = await dev.start()
        async with BridgeClient(url, heartbeat_timeout=30) as c:
            await c.set_capture_led(True)
            await dev.send(frame_msg(0, 100, LedState.OFF))
            await dev.send(frame_msg(0, 200, LedState.UNKNOWN))
            await eventually(lambda: c.stats.camera_refused_led == 2)
            assert c.latest_frame() is None
            cap = asyncio.create_task(c.capture())
            req = await dev.requests.get()
            await dev.send(frame_msg(req.request_id, 300, LedState.OFF))
            with pytest.raises(CaptureRefused):
                await cap
            assert c.latest_frame() is None and c.stats.camera_refused_led == 3
            await c.set_capture_led(False)
            with pytest.raises(CaptureRefused):
                await c.capture()  # refused on the host, nothing sent
            assert dev.requests.empty()
        await dev.close()

    run(main())


def test_led_privacy_sim_refuses_capture_when_led_off() -> None:
    async def main() -> None:
        sim = tcp_sim()
        url = await sim.start()
        t = await open_transport(url)
        await t.send(encode_message(Hello()))
        await t.send(encode_message(CaptureRequest(42)))
        errors: list[Error] = []
        while not errors:
            for f in await t.recv():
                m = decode_message(f)
                if isinstance(m, Error):
                    errors.append(m)
                assert not isinstance(m, CameraFrameMsg)
        assert errors[0].code == ErrorCode.CAPTURE_REFUSED_LED_OFF and errors[0].ref_id == 42
        assert sim.stats.captures_refused == 1 and sim.stats.captures == 0
        await t.close()
        await sim.stop()

    run(main())


# --------------------------------------------------------------- serial


def test_serial_over_pty() -> None:
    async def main() -> None:
        sim = GlassesSim(SimConfig(pty=True, capture_latency_ms=5, camera_resolution=(640, 480)))
        url = await sim.start()
        assert url.startswith("serial:///dev/")
        try:
            async with BridgeClient(url + "?baud=921600") as c:
                assert c.capabilities is not None
                chunks = await take(c.microphone(), 20)
                assert [x.seq for x in chunks] == list(range(chunks[0].seq, chunks[0].seq + 20))
                await c.set_capture_led(True)
                f = await c.capture()
                assert (f.width, f.height) == (640, 480) and f.jpeg[:2] == b"\xff\xd8"
                buttons = c.buttons()
                sim.press("tap")
                assert (await take(buttons, 1))[0].kind == "tap"
                assert c.stats.decoder.cobs_errors == 0
        finally:
            await sim.stop()

    run(main())


def test_serial_pty_device_reboot_reconnects() -> None:
    async def main() -> None:
        sim = GlassesSim(SimConfig(pty=True, disconnect_every=0.8, heartbeat_timeout=3))
        url = await sim.start()
        try:
            async with BridgeClient(url, heartbeat_timeout=0.6, backoff_initial=0.05) as c:
                mic = c.microphone()
                await take(mic, 5)
                await eventually(lambda: c.stats.reconnects >= 1, 8)
                after = await take(mic, 10)  # audio keeps flowing after the reconnect
                assert len(after) == 10
        finally:
            await sim.stop()

    run(main(), 40)


# --------------------------------------------------------------- faults


def test_fault_injection_drop_corrupt_disconnect() -> None:
    async def main() -> None:
        sim = tcp_sim(drop=5, corrupt=5, disconnect_every=1.2, seed=7, mic_speed=2)
        url = await sim.start()
        try:
            async with BridgeClient(url, heartbeat_timeout=1.0, backoff_initial=0.05, connect_timeout=5) as c:
                mic = c.microphone()
                got = 0
                end = time.monotonic() + 4.0
                reconnects_seen: set[int] = set()
                async for _chunk in mic:
                    got += 1
                    reconnects_seen.add(c.stats.reconnects)
                    if time.monotonic() > end and c.stats.reconnects >= 2:
                        break
                s = c.stats
                assert s.reconnects >= 2 and len(reconnects_seen) >= 3  # audio in every session
                assert s.decoder.crc_errors + s.decoder.header_crc_errors > 0
                assert s.jitter.gaps_filled > 0
                assert got > 200
        finally:
            await sim.stop()

    run(main(), 40)


# --------------------------------------------------------------- backpressure


def test_mic_queue_is_bounded() -> None:
    async def main() -> None:
        sim = tcp_sim(mic_speed=10)
        url = await sim.start()
        try:
            async with BridgeClient(url, mic_queue=8) as c:
                mic = c.microphone()
                await asyncio.sleep(1.0)  # consumer stalls: ~500 chunks arrive
                assert mic.qsize() <= 8  # type: ignore[attr-defined]
                assert c.stats.mic_queue_dropped > 400
                fresh = await take(mic, 9)
                assert fresh[-1].seq - fresh[0].seq == 8 or fresh[-1].seq > fresh[0].seq
        finally:
            await sim.stop()

    run(main())


def test_speaker_play_is_paced_and_backpressured() -> None:
    async def main() -> None:
        dev = FakeDevice()
        url = await dev.start()
        async with BridgeClient(url, heartbeat_timeout=30, speaker_lead=0.2) as c:
            t0 = time.monotonic()
            await c.play(bytes(32000), 16000)  # 1 s of audio
            assert time.monotonic() - t0 >= 0.7  # paced to real time, not dumped
            dev.read = False  # device stops reading
            c.speaker_lead = 1e9  # disable pacing: only backpressure limits us now
            play = asyncio.create_task(c.play(bytes(64 * 1024 * 1024), 16000))
            await asyncio.sleep(1.5)
            assert not play.done()  # waiting for drain, not buffering 64 MiB
            w = c._transport._writer  # type: ignore[union-attr]
            assert w.transport.get_write_buffer_size() <= TCP_WRITE_HIGH_WATER + 4096
            play.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await play
        await dev.close()

    run(main())


# --------------------------------------------------------------- subprocess


def test_subprocess_sim_end_to_end(tmp_path: Path) -> None:
    # 44.1 kHz stereo, so the sim's conversion to 16 kHz mono is exercised.
    n = 44100 // 2
    tone = [int(10000 * math.sin(2 * math.pi * 440 * i / 44100)) for i in range(n) for _ in (0, 1)]
    wav = write_wav(tmp_path / "in.wav", tone, rate=44100, channels=2)
    spk = tmp_path / "out.wav"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_bridge.sim",
            "--listen",
            "tcp://127.0.0.1:0",
            "--mic-wav",
            str(wav),
            "--mic-speed",
            "2",
            "--press",
            "tap@0.3",
            "--speaker-wav",
            str(spk),
            "--seed",
            "1",
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(ROOT),
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("LISTENING tcp://127.0.0.1:"), line
        url = line.split()[1]

        async def main() -> None:
            async with BridgeClient(url) as c:
                buttons = c.buttons()
                chunks = await take(c.microphone(), 10)
                loud = [max(abs(v) for v in struct.unpack(f"<{len(x.pcm) // 2}h", x.pcm)) for x in chunks]
                assert max(loud) > 5000  # the tone, not silence
                assert (await take(buttons, 1))[0].kind == "tap"
                proc.stdin.write("double_tap\n")  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
                assert (await take(buttons, 1))[0].kind == "double_tap"
                await c.play(bytes(3200), 16000)
                await asyncio.sleep(0.4)

        run(main())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    x, rate = read_wav(spk)
    assert rate == 16000 and len(x) == 1600


def test_sim_cli_errors_are_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "firmware_bridge.sim",
            "--listen",
            "tcp://127.0.0.1:0",
            "--mic-wav",
            str(tmp_path / "missing.wav"),
            "--no-stdin",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=30,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "missing.wav" in r.stderr


def test_captions_reach_a_display_and_are_not_sent_to_glasses_without_one(tmp_path: Path) -> None:
    captions = tmp_path / "captions.jsonl"

    async def main() -> None:
        shown = tcp_sim(has_display=True, captions_file=str(captions))
        blind = tcp_sim()
        try:
            async with BridgeClient(await shown.start()) as c:
                assert c.capabilities is not None and c.capabilities.has_display
                assert await c.caption("Où est la gare ?", kind=1, language="fr", caption_id=4)
                assert await c.caption("Where is the station?", kind=2, language="en", caption_id=4)
                await eventually(lambda: len(shown.captions) == 2, 3)
            async with BridgeClient(await blind.start()) as c:
                assert not await c.caption("nothing to show it on")
                await asyncio.sleep(0.2)
                assert blind.captions == [] and c.stats.frames_tx >= 1
        finally:
            await shown.stop()
            await blind.stop()

    run(main())
    lines = [json.loads(line) for line in captions.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"id": 4, "kind": "transcript", "final": True, "language": "fr", "text": "Où est la gare ?"},
        {"id": 4, "kind": "translation", "final": True, "language": "en", "text": "Where is the station?"},
    ]
