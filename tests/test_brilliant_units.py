# SPDX-License-Identifier: GPL-3.0-or-later
"""Brilliant Labs Frame and Halo without models: the message parsers, and our app in the vendor's emulator.

The emulator (``halo-emulator``) runs Halo's Lua runtime with our ``ga_app.lua`` and the vendor's
Lua modules; the client talks to it through the SDK's own interface. What arrives from glasses is
untrusted, so the parsers get hostile input too.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import until

from glasses_assistant.devices.brilliant import open_client, parse_url
from glasses_assistant.devices.brilliant import protocol as P
from glasses_assistant.devices.brilliant.emulator import EmulatedGlasses
from glasses_assistant.errors import ConfigError
from glasses_assistant.tools.phrasing import device_status

DOG = Path("/usr/share/darknet/data/dog.jpg")


# ---------------------------------------------------------------------------- parsers
def test_hello_is_parsed_and_anything_malformed_is_refused() -> None:
    h = P.parse_hello(b"hw=Frame;fw=v25.1;mic=pcm;cam=1;spk=0;w=640;h=400;mtu=247")
    assert h is not None and h.is_frame and h.has_camera and not h.has_speaker and h.mic_codec == "pcm"
    for bad in (b"", b"hw=Frame", b"hw=a;fw=b;mic=opus;cam=1;spk=0;w=640;h=400;mtu=247",
                b"hw=a;fw=b;mic=pcm;cam=1;spk=0;w=640;h=400;mtu=247;x=1", b"hw=a;hw=b;fw=b;mic=pcm;cam=1;spk=0;w=6;h=4",
                b"hw=a;fw=b;mic=pcm;cam=1;spk=0;w=99999;h=400;mtu=247", b"\xff\xfe" * 10, b"x" * 500):
        assert P.parse_hello(bad) is None, bad
    evil = P.parse_hello(b"hw=\x07Evil\x1b;fw=1;mic=lc3;cam=0;spk=1;w=256;h=256;mtu=243")
    assert evil is not None and evil.hardware == "?Evil?"


def test_taps_buttons_battery_and_lua_errors_are_checked() -> None:
    assert P.parse_tap(b"") == "tap" and P.parse_tap(b"\x02") == "double_tap"
    assert P.parse_tap(b"\x09") is None and P.parse_tap(b"\x01\x01") is None
    assert P.parse_button(b"\x03") == "long_press" and P.parse_button(b"") is None
    assert P.parse_battery(b"\x2a") == (42, None) and P.parse_battery(b"\x2a\x01") == (42, True)
    assert P.parse_battery(b"\xff") is None and P.parse_battery(b"\x10\x02") is None and P.parse_battery(b"") is None
    line = P.parse_lua_error(b"message 0x11: attempt to index a nil value\n\x1b[2Jstack")
    assert "\n" not in line and "\x1b" not in line and "attempt to index a nil value" in line


def test_display_text_wraps_keeps_the_newest_lines_and_drops_what_the_font_cannot_draw() -> None:
    hello = P.parse_hello(b"hw=EMULATOR;fw=1;mic=lc3;cam=0;spk=1;w=256;h=256;mtu=243")
    assert hello is not None
    layout = P.layout_for(hello)
    lines = P.wrap_for_display("Où est la gare? " + "word " * 60, layout)
    assert len(lines) == layout.rows and all(len(line) <= layout.columns for line in lines)
    assert P.wrap_for_display("Où est la gare?", layout) == ["Ou est la", "gare?"]


def test_device_urls() -> None:
    assert parse_url("brilliant://").name is None
    assert parse_url("brilliant://Halo%2008").name == "Halo 08"
    assert parse_url("halo-emulator?flavour=frame").flavour == "frame"
    assert parse_url("halo-emulator?rate=8000").mic_rate == 8000
    for bad in ("brilliant://x?flavour=frame", "halo-emulator?flavour=monocle", "halo-emulator://x",
                "brilliant://?rate=44100", "brilliant://?volume=3"):
        with pytest.raises(ConfigError):
            parse_url(bad)


# ---------------------------------------------------------------------------- our app in the emulator
def with_glasses(body: Callable[[Any, EmulatedGlasses], Awaitable[None]], **kw: Any) -> None:
    glasses = EmulatedGlasses(**kw)
    glasses.speak()

    async def main() -> None:
        client = open_client("halo-emulator" + ("?flavour=frame" if kw.get("flavour") == "frame" else ""),
                             glasses=glasses, backoff_initial=0.05)
        await client.start()
        try:
            await body(client, glasses)
        finally:
            await client.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        glasses.close()



def tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(16_000 * seconds)) / 16_000
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_halo_microphone_is_lc3_decoded_to_16_khz_and_taps_and_battery_arrive() -> None:
    async def body(client: Any, glasses: EmulatedGlasses) -> None:
        caps = client.capabilities
        assert caps.audio_format.codec == "lc3" and caps.has_speaker and not caps.has_camera
        mic, buttons = client.microphone(), client.buttons()
        glasses.say(tone(1.0))
        pcm = b""
        async for chunk in mic:
            assert chunk.sample_rate == 16_000
            pcm += chunk.pcm
            if len(pcm) >= 2 * 16_000 * 2:
                break
        audio = np.frombuffer(pcm, "<i2") / 32768.0
        assert audio.max() > 0.3  # the tone came through the codec, at its level
        spectrum = np.abs(np.fft.rfft(audio[: 32_000]))
        assert abs(np.argmax(spectrum) * 16_000 / 32_000 - 440) < 5
        glasses.tap("single")
        assert (await asyncio.wait_for(buttons.__anext__(), 3)).kind == "tap"
        glasses.tap("double")
        assert (await asyncio.wait_for(buttons.__anext__(), 3)).kind == "double_tap"
        glasses.set_battery(37, charging=True)
        await client.request_battery()
        await until(lambda: client.telemetry is not None and client.telemetry.battery_percent == 37)
        assert device_status(client) == "The battery is at 37 percent, charging."

    with_glasses(body)


def test_a_lua_error_on_the_glasses_is_one_line_and_the_app_goes_on() -> None:
    async def body(client: Any, glasses: EmulatedGlasses) -> None:
        glasses.fail_next("display.text", "display bus busy")
        client.show_text("first")
        await until(lambda: client.stats.lua_errors == 1)
        assert "display bus busy" in client.lua_errors[-1] and "message 0x11" in client.lua_errors[-1]
        # Hostile input from the host side too: a text message too short to parse.
        await client._send(P.TEXT, b"\x00")
        await until(lambda: client.stats.lua_errors == 2)
        client.show_text("second")
        await until(lambda: client.stats.display_updates >= 2)
        assert glasses.lua_error() is None and client.connected and client.stats.link_lost == 0

    with_glasses(body)


def test_a_dropped_link_reconnects_and_the_microphone_streams_again() -> None:
    async def body(client: Any, glasses: EmulatedGlasses) -> None:
        mic = client.microphone()
        await asyncio.wait_for(mic.__anext__(), 3)
        glasses.drop_link()
        await until(lambda: client.stats.link_lost == 1)
        await until(lambda: client.connected and client.stats.reconnects == 1, timeout=10)
        before = client.stats.mic_chunks
        await until(lambda: client.stats.mic_chunks > before + 20)

    with_glasses(body)


def test_frame_camera_stub_photo_arrives_upright_only_when_asked_for() -> None:
    async def body(client: Any, glasses: EmulatedGlasses) -> None:
        from PIL import Image

        caps = client.capabilities
        assert caps.has_camera and not caps.has_speaker and caps.audio_format.codec == "pcm"
        # A photo nobody asked for (the app's camera.lua sending on its own) is dropped, never used.
        client._dispatch(bytes([P.PHOTO]) + b"\xff\xd8" + bytes(100))
        client._dispatch(bytes([P.PHOTO_FINAL]))
        assert client.stats.camera_unrequested == 2
        frame = await client.capture(timeout=10)
        assert glasses.camera is not None and glasses.camera.captures == 1
        from PIL import ImageOps

        with Image.open(DOG) as src, Image.open(io.BytesIO(frame.jpeg)) as got:
            ref = np.asarray(ImageOps.pad(src.convert("L"), (64, 64)), float)
            img = np.asarray(got.convert("L").resize((64, 64)), float)
        assert frame.width == frame.height == 512
        assert np.corrcoef(ref.ravel(), img.ravel())[0, 1] > 0.9  # upright: RxPhoto undid the sensor's turn
        # Frame's single taps are counted into gestures on the host.
        buttons = client.buttons()
        glasses.tap()
        glasses.tap()
        assert (await asyncio.wait_for(buttons.__anext__(), 3)).kind == "double_tap"

    with_glasses(body, flavour="frame", camera=[DOG])


def test_no_bluetooth_adapter_is_one_line_and_exit_2() -> None:
    result = subprocess.run([sys.executable, "-m", "glasses_assistant", "run", "--device", "brilliant://"],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Bluetooth adapter" in result.stderr


def test_no_glasses_found_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """With an adapter and nobody around, the SDK's scan finds nothing (the scan itself is bleak's)."""
    import bleak

    from firmware_bridge.errors import BridgeError

    async def nothing(*_a: Any, **_k: Any) -> None:
        return None

    monkeypatch.setattr(bleak.BleakScanner, "find_device_by_filter", nothing)

    async def main() -> None:
        client = open_client("brilliant://Frame 4F", connect_timeout=1.0)
        with pytest.raises(BridgeError, match="no Brilliant Labs glasses found"):
            await client.start()

    asyncio.run(main())


def test_doctor_reports_the_emulated_glasses_and_a_missing_adapter() -> None:
    from glasses_assistant.doctor import _glasses

    ok = _glasses("halo-emulator")
    assert ok.status == "ok" and "microphone lc3 16 kHz" in ok.detail and "speaker" in ok.detail
    frame = _glasses("halo-emulator?flavour=frame")
    assert frame.status == "ok" and "pcm" in frame.detail and "camera" not in frame.detail  # no photos given
    missing = _glasses("brilliant://")
    assert missing.status == "fail" and "Bluetooth adapter" in missing.detail
