# SPDX-License-Identifier: GPL-3.0-or-later
"""Glasses firmware update over the bridge, against the virtual glasses: signed images, chunks
with CRC, resume after a cut, apply to the inactive slot, confirm or roll back, refusals."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ROOT, run  # noqa: E402

from firmware_bridge import BridgeClient  # noqa: E402
from firmware_bridge.checksum import crc32c  # noqa: E402
from firmware_bridge.firmware import FirmwareError, build_image, parse_image, update_firmware  # noqa: E402
from firmware_bridge.frame import Frame  # noqa: E402
from firmware_bridge.messages import (  # noqa: E402
    FwBegin,
    FwChunk,
    FwEnd,
    FwQuery,
    FwState,
    FwStatus,
    decode_message,
    encode_message,
)
from firmware_bridge.sim import FIRMWARE_VERSION, GlassesSim, SimConfig  # noqa: E402

CHUNK = 4096


def keypair() -> tuple[Any, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    k = Ed25519PrivateKey.generate()
    return k, k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


KEY, PUB = keypair()
OTHER, OTHER_PUB = keypair()


def image(version: str = "sim-2.0.0", *, counter: int = 2, model: str = "glasses-sim", key: Any = KEY,
          pub: bytes = PUB, fail: bool = False, size: int = 100_000) -> bytes:
    return build_image(os.urandom(size), version=version, device_model=model, counter=counter, sign=key.sign,
                       public_raw=pub, fail_first_heartbeat=fail)


def sim(**kw: Any) -> GlassesSim:
    return GlassesSim(SimConfig(listen="tcp://127.0.0.1:0", firmware_keys=[PUB], heartbeat_interval=0.2,
                                reboot_s=0.2, **kw))


async def with_sim(fn: Any, **kw: Any) -> Any:
    s = sim(**kw)
    url = await s.start()
    try:
        return await fn(s, url)
    finally:
        await s.stop()


async def hello_version(url: str) -> str:
    async with BridgeClient(url) as c:
        assert c.capabilities is not None
        return c.capabilities.firmware_version


def test_image_format_and_signature() -> None:
    data = image()
    img = parse_image(data, trusted=[PUB])
    assert (img.version, img.device_model, img.counter, img.fail_first_heartbeat) == ("sim-2.0.0", "glasses-sim", 2,
                                                                                      False)
    with pytest.raises(FirmwareError, match="unknown key"):
        parse_image(data, trusted=[OTHER_PUB])
    tampered = bytearray(data)
    tampered[len(data) // 2] ^= 1
    with pytest.raises(FirmwareError, match="sha256"):
        parse_image(bytes(tampered))
    # Flipping the test flag in the header breaks the signature (it is signed).
    flagged = bytearray(data)
    flagged[5] ^= 1
    with pytest.raises(FirmwareError, match="bad signature"):
        parse_image(bytes(flagged), trusted=[PUB])
    with pytest.raises(FirmwareError, match="too short|sizes"):
        parse_image(data[:-10])


def test_messages_round_trip() -> None:
    sha = hashlib.sha256(b"x").digest()
    for msg in (FwBegin(sha, 12345, 4096, 1), FwChunk(7, 0xDEADBEEF, b"abc"), FwEnd(sha), FwQuery(),
                FwStatus(FwState.TRIAL, 1, sha, 20, 3, "sim-2", "hello", b"\x07\x00\x01")):
        raw = encode_message(msg)
        from firmware_bridge.frame import StreamDecoder

        (frame,) = StreamDecoder().feed(raw)
        assert decode_message(frame) == msg
    # Old peers: an unknown type is counted, not fatal (the protocol's minor-version rule).
    assert isinstance(Frame, type)


def test_update_confirmed_after_reboot() -> None:
    data = image()

    async def go(s: GlassesSim, url: str) -> None:
        assert await hello_version(url) == FIRMWARE_VERSION
        res = await update_firmware(url, data, chunk_size=CHUNK, timeout=30)
        assert res.confirmed, res.summary()
        assert res.running_version == "sim-2.0.0" and res.chunks_sent == res.chunks_total
        assert s.fw.active == 1 and s.fw.slots[0]["version"] == FIRMWARE_VERSION  # old slot kept
        assert s.stats.fw_reboots == 1
        assert await hello_version(url) == "sim-2.0.0"

    run(with_sim(go), 60)


def test_failed_first_heartbeat_rolls_back() -> None:
    data = image("sim-2.0.0-bad", fail=True)

    async def go(s: GlassesSim, url: str) -> None:
        res = await update_firmware(url, data, chunk_size=CHUNK, timeout=30)
        assert not res.confirmed and res.state == "rolled-back"
        assert "first heartbeat" in res.message and res.running_version == FIRMWARE_VERSION
        assert s.stats.fw_reboots == 2  # into the new firmware, and back
        assert await hello_version(url) == FIRMWARE_VERSION

    run(with_sim(go), 60)


def test_resume_after_host_dies_mid_transfer() -> None:
    data = image(size=200_000)

    async def go(s: GlassesSim, url: str) -> None:
        with pytest.raises(FirmwareError, match="stopped after 20"):
            await update_firmware(url, data, chunk_size=CHUNK, stop_after_chunks=20)
        await asyncio.sleep(0.2)
        res = await update_firmware(url, data, chunk_size=CHUNK, timeout=30)
        assert res.confirmed
        assert res.chunks_already_there == 20 and res.chunks_sent == res.chunks_total - 20

    run(with_sim(go), 60)


def test_link_cut_mid_transfer_is_repaired() -> None:
    data = image(size=400_000)

    async def go(s: GlassesSim, url: str) -> None:
        async def cutter() -> None:
            while s.stats.fw_chunks < 30:  # noqa: ASYNC110 - polling a counter of the sim
                await asyncio.sleep(0.001)
            link = s._active
            assert link is not None
            await link.transport.close()  # the link dies in the middle of the image

        task = asyncio.create_task(cutter())
        res = await update_firmware(url, data, chunk_size=CHUNK, timeout=40)
        await task
        assert res.confirmed and res.running_version == "sim-2.0.0"
        assert s.stats.sessions >= 3  # the cut, the reboot, the reconnects

    run(with_sim(go), 60)


def test_bad_crc_chunk_is_dropped_and_resent() -> None:
    data = image(size=20_000)
    sha = hashlib.sha256(data).digest()

    async def go(s: GlassesSim, url: str) -> None:
        async with BridgeClient(url) as c:
            st = await c.firmware_request(FwBegin(sha, len(data), CHUNK, 0))
            assert st.state == FwState.RECEIVING and st.chunks_received == 0
            chunk = data[:CHUNK]
            await c.firmware_send(FwChunk(0, crc32c(chunk) ^ 1, chunk))
            await c.firmware_send(FwChunk(1, crc32c(data[CHUNK:2 * CHUNK]), data[CHUNK:2 * CHUNK]))
            st = await c.firmware_request(FwQuery())
            assert st.chunks_received == 1 and st.bitmap[0] == 0b10
            assert s.stats.fw_crc_errors == 1
            # FwEnd with chunks missing applies nothing.
            st = await c.firmware_request(FwEnd(sha))
            assert st.state == FwState.RECEIVING and "missing" in st.message
        res = await update_firmware(url, data, chunk_size=CHUNK, timeout=30)
        assert res.confirmed and res.chunks_already_there == 1

    run(with_sim(go), 60)


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: image(key=OTHER, pub=OTHER_PUB), "unknown key"),
        (lambda: image(model="other-glasses"), "is for 'other-glasses'"),
        (lambda: _bad_signature(), "bad signature"),
    ],
    ids=["unknown-key", "other-device", "bad-signature"],
)
def test_glasses_refuse(make: Any, why: str) -> None:
    data = make()

    async def go(s: GlassesSim, url: str) -> None:
        with pytest.raises(FirmwareError, match=why):
            await update_firmware(url, data, chunk_size=CHUNK, timeout=20)
        assert s.fw.active == 0 and s.stats.fw_reboots == 0

    run(with_sim(go), 60)


def _bad_signature() -> bytes:
    data = bytearray(image())
    data[-1] ^= 0xFF  # body and sha256 intact; only the signature is wrong
    return bytes(data)


def test_downgrade_refused_unless_forced() -> None:
    async def go(s: GlassesSim, url: str) -> None:
        assert (await update_firmware(url, image("sim-5", counter=5), chunk_size=CHUNK, timeout=30)).confirmed
        with pytest.raises(FirmwareError, match="downgrade"):
            await update_firmware(url, image("sim-3", counter=3), chunk_size=CHUNK, timeout=30)
        res = await update_firmware(url, image("sim-3", counter=3), chunk_size=CHUNK, timeout=30, force=True)
        assert res.confirmed and res.running_version == "sim-3"

    run(with_sim(go), 60)


def test_cli_firmware_build_and_update(tmp_path: Path) -> None:
    from glasses_assistant.deploy.keys import generate

    key, pub = generate(tmp_path / "fw")
    cli = [sys.executable, "-m", "glasses_assistant.deploy.cli"]
    img = tmp_path / "fw.img"
    r = subprocess.run([*cli, "firmware-build", "-o", str(img), "--key", str(key), "--version", "sim-9",
                        "--counter", "9", "--size", "50000"], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    proc = subprocess.Popen([sys.executable, "-m", "firmware_bridge.sim", "--listen", "tcp://127.0.0.1:0",
                             "--no-stdin", "--firmware-key", str(pub), "--reboot-s", "0.2"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[1]
        r = subprocess.run([*cli, "firmware", str(img), "--glasses", url, "--trust", str(pub)],
                           capture_output=True, text=True, check=False, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "firmware sim-9 confirmed" in r.stdout
        # A refused image is one line on stderr and exit status 2.
        r = subprocess.run([*cli, "firmware", str(img), "--glasses", url, "--trust", str(tmp_path / "missing.pub")],
                           capture_output=True, text=True, check=False, timeout=60)
        assert r.returncode == 2 and r.stderr.startswith("glasses-assistant: error: ")
    finally:
        proc.terminate()
        proc.wait(10)


# ---------------------------------------------------------------- untrusted glasses


class _LyingGlasses:
    """Accepts every chunk and says "confirmed", but keeps running another firmware version."""

    def __init__(self, running: str) -> None:
        from scripted import ScriptedDevice

        self.running = running
        self.device = ScriptedDevice()
        self.sha = bytes(32)
        self.count = 0
        answer = self.device._answer

        async def fw_answer(s: Any, msg: Any, flags: int) -> None:
            if isinstance(msg, FwBegin):
                self.sha, self.count = msg.image_sha256, -(-msg.image_size // msg.chunk_size)
                await s.send(self.status(FwState.RECEIVING))
            elif isinstance(msg, FwQuery):
                await s.send(self.status(FwState.CONFIRMED))
            elif isinstance(msg, FwEnd):
                await s.send(self.status(FwState.APPLYING))
            elif not isinstance(msg, FwChunk):
                await answer(s, msg, flags)

        self.device._answer = fw_answer  # type: ignore[method-assign]

    def status(self, state: int) -> FwStatus:
        return FwStatus(state, 0, self.sha, self.count, self.count, self.running, "all good\x1b[0m",
                        b"\xff" * (-(-self.count // 8)))


def test_confirmed_only_when_the_glasses_run_the_image_version() -> None:
    async def main() -> None:
        liar = _LyingGlasses("sim-1.0.0\x1b[31m")
        url = await liar.device.start()
        try:
            result = await update_firmware(url, image("sim-2.0.0"), chunk_size=CHUNK, timeout=20)
        finally:
            await liar.device.close()
        assert not result.confirmed and result.state == "not-confirmed"
        assert "sim-2.0.0" in result.message and "\x1b" not in result.summary()

    run(main())


def test_unreachable_glasses_is_a_firmware_error() -> None:
    with pytest.raises(FirmwareError, match="cannot reach the glasses"):
        run(update_firmware("tcp://127.0.0.1:9", image(), timeout=5))


@given(st.binary(max_size=200), st.integers(0, 190), st.binary(max_size=8))
@settings(max_examples=300, deadline=None, database=None)
def test_malformed_images_are_one_firmware_error(noise: bytes, at: int, patch: bytes) -> None:
    good = image(size=64)
    for data in (noise, good[:at] + patch + good[at + len(patch):], good[: max(0, len(good) - at)]):
        try:
            parse_image(data, trusted=[PUB])
        except FirmwareError as err:
            assert "\n" not in str(err)
