# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile glasses: nothing a device sends takes the assistant down.

One real assistant process (``glasses-assistant run --device``, the real models) is served by a
scripted device on 127.0.0.1 (:mod:`scripted`) that connects again and again. Each connection
sends one batch of valid-CRC frames with hostile values in every field of one message type
(:mod:`hostile_cases`: hand-picked edges, then hypothesis-generated values, the same every
run), then asks a normal question by voice ("What time is it?"), by a double tap on the
camera's batch (a look at the view) and about the battery on the telemetry's batch. Three
connections announce hostile Hellos at the handshake instead (the first, with a speaker rate of
0, is also asked by a tap). The first connection, before any attack, asks the bundled "What is
the capital of France?" (the chat LLM), looks and asks the battery: the RSS baseline.

The per-batch question is one the tools answer by rule (no LLM call): with the view's
description in its history, the 135M chat model sometimes answered "What is the capital of
France?" by repeating it, and a suite about the device must not fail on the model's manners.

For every case: the process is alive and its RSS is under the bound; for every batch: the
question is answered (within 90 s: no hang) and the answer is heard on the glasses' speaker
at a rate a speaker can play. At the end: the peak RSS (VmHWM) is under the bound, nothing
printed holds a raw escape character from the device, no traceback, and the log stayed small
though 2000 device errors were sent. The figures (cases per message type, peak RSS, the bound)
go to out/hostile-glasses.json.

Not in the batches: a Hello with another protocol *major*. That one ends the session by design:
the last connection's device "restarts" into major 2 mid-session, and the assistant must then
exit with status 2 and one line (a fatal link error once exited 0, so systemd's
Restart=on-failure never restarted it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # works under any --import-mode
from hostile_cases import CASES, hostile_handshakes  # noqa: E402
from scripted import ScriptedDevice, Session, device_hello  # noqa: E402

from firmware_bridge.messages import ButtonEventMsg, Hello, MsgType, Telemetry  # noqa: E402
from glasses_assistant.audio.io import SAMPLE_RATE, read_wav, resample  # noqa: E402
from glasses_assistant.cli import bundled_question  # noqa: E402

pytestmark = pytest.mark.models

RSS_HEADROOM_MIB = 256
"""Peak RSS under attack may exceed the RSS after the first ordinary answers by at most this."""
ANSWER_TIMEOUT_S = 90.0
DOG = Path("/usr/share/darknet/data/dog.jpg")  # a real photo (Debian's darknet package, make system-deps)


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def speech(path: Path) -> bytes:
    audio, rate = read_wav(path)
    return pcm16(resample(audio, rate, SAMPLE_RATE))


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


class Run:
    """The assistant process and what the suite measured of it."""

    def __init__(self, proc: asyncio.subprocess.Process, workdir: Path) -> None:
        self.proc = proc
        self.trace = workdir / "turns.jsonl"
        self.stdout = workdir / "stdout.txt"
        self.stderr = workdir / "stderr.txt"
        self.peak_rss_kib = 0
        self.bound_kib = 0
        self.exit_code: int | None = None
        self.cases: dict[str, int] = {}
        self.per_type: dict[str, int] = {}

    def alive(self, what: str) -> None:
        if self.proc.returncode is not None:
            raise AssertionError(f"the assistant died (exit {self.proc.returncode}) after {what}:\n"
                                 + self.stderr.read_text(errors="replace")[-3000:])

    def sample(self, what: str, bound_kib: int | None) -> int:
        self.alive(what)
        try:
            status = proc_status(self.proc.pid)
        except OSError as err:
            raise AssertionError(f"the assistant is gone after {what}: {err}") from None
        self.peak_rss_kib = max(self.peak_rss_kib, status.get("VmHWM", 0), status.get("VmRSS", 0))
        if bound_kib is not None:
            assert status["VmRSS"] <= bound_kib, f"RSS {status['VmRSS'] // 1024} MiB over the bound after {what}"
        return status["VmRSS"]

    def turns(self) -> list[dict[str, Any]]:
        if not self.trace.exists():
            return []
        return [json.loads(line) for line in self.trace.read_text().splitlines() if line.strip()]


async def ask(run: Run, s: Session, what: str, *, voice: bytes | None = None, tap: bool = False,
              expect: tuple[str, ...] = ()) -> dict[str, Any]:
    """Ask one normal question in session ``s``; the trace of its answer (fails on a hang)."""
    seen = len(run.turns())
    spoken = s.speaker_bytes
    if tap:
        await s.send(ButtonEventMsg(0, 2))  # double tap: "what am I looking at?"
    if voice is not None:
        s.mic_seq = (s.mic_seq + 7919) & 0xFFFFFFFF  # a fresh numbering: the jitter buffer follows it
        await s.mic(voice)
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while time.monotonic() < deadline:
        await s.mic(bytes(640 * 10))  # the microphone goes on (silence, in real time) as real glasses' does
        run.alive(f"asking after {what}")
        for t in run.turns()[seen:]:
            reply = (t.get("reply") or "").lower()
            asked = "[tap]" in (t.get("transcript") or "") if tap else t.get("outcome") != "announcement"
            if asked and t.get("outcome") == "answered" and all(w in reply for w in expect):
                await s.mic(bytes(640 * 25), speed=2.0)  # let the last of the reply play out
                assert s.speaker_bytes > spoken, f"the answer after {what} never reached the glasses' speaker"
                assert s.speaker_rates <= set(range(8000, 48001)), f"speaker audio at {s.speaker_rates} Hz"
                return t
    turns = run.turns()[seen:]
    raise AssertionError(f"no answer {expect} within {ANSWER_TIMEOUT_S:g} s after {what} (a hang); turns: "
                         f"{[(t.get('transcript'), t.get('outcome'), t.get('reply')) for t in turns]}")


TYPE_NAMES = {v: k for k, v in vars(MsgType).items() if not k.startswith("_") and isinstance(v, int)}


async def attack(run: Run, s: Session, name: str, frames: Any, bound_kib: int) -> None:
    n = 0
    for frame in frames:
        await s.send_raw(frame)
        n += 1
        kind = TYPE_NAMES.get(frame[3], "unknown type")  # header byte 3: the message type
        run.per_type[kind] = run.per_type.get(kind, 0) + 1
        if n % 20 == 0 or len(frame) > 65536:
            await asyncio.sleep(0)  # let the host read: cases go through it, not into socket buffers
            run.sample(f"{n} {name} cases", bound_kib)
    run.cases[name] = run.cases.get(name, 0) + n
    await s.mic(bytes(640 * 50))  # a second of ordinary silence: what real glasses send next
    run.sample(f"all {n} {name} cases", bound_kib)


async def suite(workdir: Path, voices: dict[str, bytes], jpeg: bytes, logs: tuple[Any, Any]) -> Run:
    question, battery, clock = voices["france"], voices["battery"], voices["time"]
    handshakes = hostile_handshakes()

    def hello_for(n: int) -> Hello | bytes:
        # Connections 2..4 announce hostile Hellos at the handshake; the others a sane one.
        return handshakes[n - 2] if 2 <= n < 2 + len(handshakes) else device_hello()

    device = ScriptedDevice(hello_for, jpeg=jpeg)
    url = await device.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "glasses_assistant", "run", "--device", url, "--listen-mode", "always",
        "--out", str(workdir / "reply.wav"), "--trace", str(workdir / "turns.jsonl"),
        stdin=subprocess.DEVNULL, stdout=logs[0], stderr=logs[1], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    run = Run(proc, workdir)
    try:
        s = await device.next_session(60)
        deadline = time.monotonic() + 240
        while "listening:" not in run.stdout.read_text(errors="replace"):
            run.alive("starting")
            assert time.monotonic() < deadline, "the assistant did not start listening within 240 s"
            await asyncio.sleep(0.2)
        # The baseline uses every model once (a look at the view too), so the bound measures what
        # the attack adds, not the arenas onnxruntime and llama.cpp grow on their first use.
        await ask(run, s, "nothing (baseline)", voice=question, expect=("paris",))
        await ask(run, s, "nothing (baseline)", tap=True)
        await ask(run, s, "nothing (baseline)", voice=battery, expect=("battery",))
        bound = run.sample("the first answers", None) + RSS_HEADROOM_MIB * 1024
        await s.close()
        for i, h in enumerate(handshakes):
            s = await device.next_session(30)
            run.cases["Hello (at the handshake)"] = run.cases.get("Hello (at the handshake)", 0) + 1
            what = f"a Hello with speaker rates {h.speaker_sample_rates}"
            if i == 0:  # a speaker rate of 0 once killed the turn worker on the next tap's answer
                await ask(run, s, what, tap=True)
            await ask(run, s, what, voice=clock, expect=("it's",))
            run.sample("a hostile handshake", bound)
            await s.close()
        for name, cases in CASES.items():
            s = await device.next_session(30)
            await s.send(Telemetry(80.0, False, 4000, 31.0, 0))  # one sane report, then the batch
            await attack(run, s, name, cases(), bound)
            if name == "CameraFrame":
                reply = (await ask(run, s, name, tap=True))["reply"].lower()
                assert "didn't send a picture" not in reply, f"blind after the camera batch: {reply!r}"
            if name == "Telemetry":
                await ask(run, s, name, voice=battery, expect=("battery",))
            await ask(run, s, name, voice=clock, expect=("it's",))
            await s.close()
        run.sample("the whole attack", bound)
        assert run.peak_rss_kib <= bound, f"peak RSS {run.peak_rss_kib // 1024} MiB over {bound // 1024} MiB"
        run.bound_kib = bound
        # Last: the glasses restart into a protocol major this host does not speak. Every connection from
        # now on announces it at its handshake, and it is sent on each session the host opens: a batch can
        # leave a session queued that the host already dropped (it reconnected on its own), and a Hello
        # sent only there reached nobody (a TimeoutError in CI, the host still serving).
        v2 = dataclasses.replace(device_hello(), proto_major=2)
        device.hello = v2
        deadline = time.monotonic() + 60
        while proc.returncode is None and time.monotonic() < deadline:
            with contextlib.suppress(asyncio.TimeoutError):
                s = await device.next_session(5)
                with contextlib.suppress(Exception):  # a session the host already closed
                    await s.send(v2)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
        run.exit_code = await asyncio.wait_for(proc.wait(), 5)
        return run
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 30)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await device.close()


def test_hostile_glasses_never_take_the_assistant_down(tmp_path: Path, record_property: Any) -> None:
    voices = {"france": speech(bundled_question())}
    for name, text in (("battery", "How much battery is left?"), ("time", "What time is it?")):
        wav = tmp_path / f"{name}.wav"
        r = subprocess.run([sys.executable, "-m", "glasses_assistant", "say", text, "-o", str(wav),
                            "--tts-noise-scale", "0", "--tts-noise-w", "0"],
                           capture_output=True, text=True, timeout=120, check=False)
        assert r.returncode == 0, r.stderr
        voices[name] = speech(wav)
    t0 = time.monotonic()
    with (tmp_path / "stdout.txt").open("wb") as out_f, (tmp_path / "stderr.txt").open("wb") as err_f:
        run = asyncio.run(asyncio.wait_for(suite(tmp_path, voices, DOG.read_bytes(), (out_f, err_f)), 900))
    seconds = time.monotonic() - t0
    out = run.stdout.read_text(errors="replace")
    err = run.stderr.read_text(errors="replace")
    assert "Traceback" not in err, err[-3000:]
    # Device strings never reach the terminal or the log raw: no escape codes, no forged lines.
    assert "\x1b" not in out + err and "\u202e" not in out + err
    assert not any(line.startswith("CRITICAL glasses_assistant: forged") for line in (out + err).splitlines())
    assert len(err) < 200_000, f"{len(err)} bytes of log for 2000 device errors: not rate-limited"
    # The fatal link error (protocol major 2) ends the assistant with status 2 and one line saying why.
    assert run.exit_code == 2, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("glasses-assistant: error: the link to the glasses"), err[-2000:]
    assert "speak protocol v2" in err.strip().splitlines()[-1]
    report = {"cases": run.cases, "per_message_type": dict(sorted(run.per_type.items())), "crashes": 0,
              "hangs": 0, "peak_rss_mib": run.peak_rss_kib // 1024,
              "rss_bound_mib": run.bound_kib // 1024, "log_bytes": len(err), "seconds": round(seconds)}
    out = Path(__file__).resolve().parents[2] / "out"
    out.mkdir(exist_ok=True)
    (out / "hostile-glasses.json").write_text(json.dumps(report, indent=2) + "\n")
    record_property("hostile_report", json.dumps(report))
    print("hostile glasses:", json.dumps(report, indent=2))
