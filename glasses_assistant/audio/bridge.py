# SPDX-License-Identifier: GPL-3.0-or-later
"""The glasses as microphone and speaker: the firmware bridge behind the audio interface."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np

from firmware_bridge.untrusted import AUDIO_RATE_MAX, AUDIO_RATE_MIN, MAX_MIC_CHUNK_S

from ..errors import AudioDeviceError
from .io import BLOCK, SAMPLE_RATE, AudioChunk, read_wav, resample

log = logging.getLogger(__name__)

RATE_RANGE = (AUDIO_RATE_MIN, AUDIO_RATE_MAX)
"""Rates (Hz) the glasses' audio may have; the bridge client enforces it, this side does not rely on it."""


class BridgeSource:
    """Microphone audio from the glasses (PCM16, 16 kHz) as 32 ms chunks.

    The bridge client has already reordered, de-duplicated and gap-filled the
    audio, and refused chunks with impossible rates or sizes; a chunk that still cannot be
    converted (a client that does not check) is dropped and counted in :attr:`dropped`, so
    one bad chunk never ends the loop. Chunks are stamped with the time they reached the host.
    """

    def __init__(self, client) -> None:
        self.client = client
        self.dropped = 0
        self._closed = asyncio.Event()
        # Subscribe now: audio that arrives while the models load is queued (bounded), not lost.
        self._mic = client.microphone()

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        pending = np.zeros(0, np.float32)
        mic = self._mic
        closed = asyncio.create_task(self._closed.wait())
        try:
            while not self._closed.is_set():
                nxt = asyncio.ensure_future(mic.__anext__())
                done, _ = await asyncio.wait({nxt, closed}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    with contextlib.suppress(BaseException):
                        await nxt
                    return
                try:
                    chunk = nxt.result()
                except StopAsyncIteration:
                    return
                audio = self._convert(chunk)
                if audio is None:
                    continue
                pending = np.concatenate([pending, audio])
                now = time.monotonic()
                while len(pending) >= BLOCK:
                    yield AudioChunk(pending[:BLOCK], SAMPLE_RATE, now)
                    pending = pending[BLOCK:]
        finally:
            closed.cancel()
            aclose = getattr(mic, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def _convert(self, chunk) -> np.ndarray | None:
        """16 kHz float32 of one chunk, or None (dropped, counted) when it cannot be audio."""
        rate, pcm = getattr(chunk, "sample_rate", 0), getattr(chunk, "pcm", b"")
        if not (RATE_RANGE[0] <= rate <= RATE_RANGE[1]) or len(pcm) % 2 or len(pcm) / 2 / rate > MAX_MIC_CHUNK_S:
            self.dropped += 1
            return None
        audio = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
        if rate != SAMPLE_RATE:
            try:
                audio = resample(audio, rate, SAMPLE_RATE)
            except (ValueError, RuntimeError, MemoryError) as err:
                self.dropped += 1
                log.debug("microphone chunk at %d Hz dropped: %s", rate, err)
                return None
        return audio

    async def close(self) -> None:
        self._closed.set()


class BridgeSink:
    """Reply audio to the glasses' speaker, at a rate the device says it plays."""

    def __init__(self, client) -> None:
        self.client = client
        self._started: float | None = None
        self._sent_s = 0.0

    def _rate_for(self, rate: int) -> int:
        """The device's rate to send ``rate`` audio at: the same if it plays it, else its highest.
        Only 8-48 kHz rates count: a device's Hello is untrusted, and a "rate" of 0 or 4 GHz
        must not reach the resampler."""
        caps = self.client.capabilities
        rates = [r for r in (getattr(caps, "speaker_sample_rates", ()) or ())
                 if isinstance(r, int) and RATE_RANGE[0] <= r <= RATE_RANGE[1]] or [16_000]
        return rate if rate in rates else max(rates)

    async def write(self, samples: np.ndarray, sample_rate: int) -> None:
        rate = self._rate_for(sample_rate)
        pcm = (np.clip(resample(samples, sample_rate, rate), -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        if self._started is None:
            self._started = time.monotonic()
        self._sent_s += len(pcm) / 2 / rate
        await self.client.play(pcm, rate)

    async def drain(self) -> None:
        """Wait until the glasses have played everything sent (play() runs ahead by a lead)."""
        if self._started is not None:
            remaining = self._started + self._sent_s - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(remaining + 0.05)
        self._started, self._sent_s = None, 0.0

    async def flush(self) -> float:
        played = 0.0
        if self._started is not None:
            played = min(time.monotonic() - self._started, self._sent_s)
        await self.client.stop_playback()
        self._started, self._sent_s = None, 0.0
        return played

    async def close(self) -> None:
        """The client is closed by whoever opened it."""


def _die_with_parent() -> None:
    """In the child: be sent SIGTERM when the assistant dies, even by SIGKILL (Linux prctl)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: stop() still ends it on every normal exit


class VirtualGlasses:
    """Runs `glasses-sim` as a separate process and gives its URL.

    What a developer without hardware uses: the same protocol, over TCP on
    127.0.0.1 or over a serial pseudo-terminal, with WAV files as microphone.
    """

    def __init__(self, mic_wavs: Sequence[Path], *, speaker_wav: Path | None = None, link: str = "tcp",
                 camera: Sequence[Path] = (), extra: Sequence[str] = (), mic_gap_s: float = 1.5) -> None:
        self.args = [sys.executable, "-m", "firmware_bridge.sim", "--no-stdin", "--mic-gap", str(mic_gap_s)]
        self.args += ["--listen", "tcp://127.0.0.1:0"] if link == "tcp" else ["--pty"]
        for wav in mic_wavs:
            self.args += ["--mic-wav", str(wav)]
        for image in camera:
            self.args += ["--camera", str(image)]
        if speaker_wav is not None:
            self.args += ["--speaker-wav", str(speaker_wav)]
        self.args += list(extra)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.audio_seconds = 0.0
        """How long the microphone WAVs last, gaps included."""
        for wav in mic_wavs:
            with contextlib.suppress(Exception):
                audio, rate = read_wav(wav)
                self.audio_seconds += len(audio) / rate + mic_gap_s

    def start(self, timeout: float = 30.0) -> str:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.match(r"LISTENING (\S+)", line)
            if m:
                self.url = m.group(1)
                return self.url
        err = self.proc.stderr.read() if self.proc.stderr else ""
        self.stop()
        last = (err.strip().splitlines() or ["it exited without saying where it listens"])[-1]
        raise AudioDeviceError(f"the virtual glasses did not start: {last}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> VirtualGlasses:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
