# SPDX-License-Identifier: GPL-3.0-or-later
"""Audio in and out: one small interface, with WAV files and sounddevice behind it.

Sources deliver mono float32 chunks at 16 kHz, whatever the file or device gives
(any sample rate and channel count is converted). Sinks take mono float32 at any
rate and convert to what they write. The firmware bridge adds a third pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import AudioDeviceError, AudioError

SAMPLE_RATE = 16_000
"""The rate every source delivers: what Silero VAD and Whisper take."""
BLOCK = 512
"""Samples per chunk at 16 kHz (32 ms): Silero VAD's window."""


@dataclass(frozen=True)
class AudioChunk:
    """A block of microphone audio.

    ``samples`` is mono float32 in [-1, 1] at ``sample_rate`` Hz. ``t_end`` is the
    monotonic clock time (seconds) at which the block's last sample was captured:
    for a file played in real time, when it would have been.
    """

    samples: np.ndarray
    sample_rate: int
    t_end: float


class AudioSource(Protocol):
    """Anything that yields microphone chunks until it ends or is closed."""

    def chunks(self) -> AsyncIterator[AudioChunk]: ...

    async def close(self) -> None: ...


class AudioSink(Protocol):
    """Anything that plays or stores reply audio."""

    async def write(self, samples: np.ndarray, sample_rate: int) -> None: ...

    async def flush(self) -> float:
        """Stop playback now, drop what is queued; return seconds actually played."""
        ...

    async def drain(self) -> None:
        """Wait until everything written has been played."""
        ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------- helpers
def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality resampling of mono float32 audio (soxr)."""
    if from_rate == to_rate or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(samples.astype(np.float32, copy=False), from_rate, to_rate, quality="HQ")


def to_mono(frames: np.ndarray) -> np.ndarray:
    """Average channels: (n, ch) -> (n,)."""
    if frames.ndim == 1:
        return frames
    return frames.mean(axis=1, dtype=np.float32)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV file as mono float32 plus its sample rate.

    Handles PCM 8/16/24/32-bit, IEEE float 32/64 and WAVE_FORMAT_EXTENSIBLE, any
    channel count. Anything else raises AudioError with one line saying why.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise AudioError(f"cannot read WAV file {p}: {err.strerror or err}") from None
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"cannot read WAV file {p}: not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None
    pcm: bytes | None = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise AudioError(f"cannot read WAV file {p}: fmt chunk too short")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: real tag in the GUID
                tag = struct.unpack_from("<H", body, 24)[0]
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            pcm = body  # a truncated file simply has less data: we keep what is there
            break
        pos += 8 + size + (size & 1)
    if fmt is None or pcm is None:
        raise AudioError(f"cannot read WAV file {p}: no {'fmt' if fmt is None else 'data'} chunk")
    tag, channels, rate, bits = fmt
    if channels < 1 or rate < 1000 or rate > 384_000:
        raise AudioError(f"cannot read WAV file {p}: {channels} channels at {rate} Hz is not audio")
    width = bits // 8
    if width < 1:
        raise AudioError(f"cannot read WAV file {p}: {bits}-bit samples are not supported")
    usable = len(pcm) - len(pcm) % (width * channels)
    pcm = pcm[:usable]
    if tag == 1 and bits == 8:
        arr = (np.frombuffer(pcm, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == 1 and bits == 16:
        arr = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
    elif tag == 1 and bits == 24:
        raw = np.frombuffer(pcm, np.uint8).reshape(-1, 3)
        ints = (raw[:, 0].astype(np.int32) | (raw[:, 1].astype(np.int32) << 8)
                | (raw[:, 2].astype(np.int32) << 16))
        ints = np.where(ints & 0x800000, ints - 0x1000000, ints)
        arr = ints.astype(np.float32) / 8_388_608.0
    elif tag == 1 and bits == 32:
        arr = np.frombuffer(pcm, "<i4").astype(np.float32) / 2_147_483_648.0
    elif tag == 3 and bits in (32, 64):
        arr = np.frombuffer(pcm, "<f4" if bits == 32 else "<f8").astype(np.float32)
        arr = np.nan_to_num(np.clip(arr, -1.0, 1.0))
    else:
        raise AudioError(
            f"cannot read WAV file {p}: format {tag} with {bits}-bit samples is not supported "
            "(use PCM or float)"
        )
    return to_mono(arr.reshape(-1, channels)), rate


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono float32 audio as a 16-bit PCM WAV."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


# --------------------------------------------------------------------------- WAV
class WavSource:
    """Plays WAV files into the loop as if a microphone heard them.

    Files are converted to 16 kHz mono and cut into 32 ms chunks. With
    ``realtime`` (the default) chunks arrive at the pace of speech, so
    end-of-turn silence and latency are measured as a wearer would live them;
    ``gap_s`` of silence follows each file (a microphone never stops).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        realtime: bool = True,
        gap_s: float = 1.5,
        lead_s: float = 0.3,
    ) -> None:
        self._clips = [resample(*read_wav(p), SAMPLE_RATE) for p in paths]
        self.realtime = realtime
        self.gap_s = gap_s
        self.lead_s = lead_s
        self._closed = False

    @classmethod
    def from_samples(
        cls, clips: Sequence[np.ndarray], *, realtime: bool = True, gap_s: float = 1.5, lead_s: float = 0.3
    ) -> WavSource:
        """A source over clips already at 16 kHz mono (tests, benchmarks)."""
        self = cls([], realtime=realtime, gap_s=gap_s, lead_s=lead_s)
        self._clips = [np.asarray(c, dtype=np.float32) for c in clips]
        return self

    def _stream(self) -> np.ndarray:
        lead = np.zeros(int(self.lead_s * SAMPLE_RATE), np.float32)
        gap = np.zeros(int(self.gap_s * SAMPLE_RATE), np.float32)
        parts = [lead]
        for clip in self._clips:
            parts += [clip, gap]
        audio = np.concatenate(parts)
        pad = (-len(audio)) % BLOCK
        return np.concatenate([audio, np.zeros(pad, np.float32)])

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        audio = self._stream()
        start = time.monotonic()
        block_s = BLOCK / SAMPLE_RATE
        for i in range(len(audio) // BLOCK):
            if self._closed:
                return
            t_end = start + (i + 1) * block_s
            if self.realtime:
                delay = t_end - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                t_end = time.monotonic()
                if i % 64 == 0:
                    await asyncio.sleep(0)  # let other tasks run
            yield AudioChunk(audio[i * BLOCK : (i + 1) * BLOCK], SAMPLE_RATE, t_end)

    async def close(self) -> None:
        self._closed = True


class WavSink:
    """Collects reply audio and writes it to a 16-bit WAV at the first chunk's rate."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.sample_rate: int | None = None
        self._parts: list[np.ndarray] = []
        self.samples_written = 0

    async def write(self, samples: np.ndarray, sample_rate: int) -> None:
        if self.sample_rate is None:
            self.sample_rate = sample_rate
        block = resample(samples, sample_rate, self.sample_rate)
        self._parts.append(block)
        self.samples_written += len(block)

    async def flush(self) -> float:
        return 0.0  # a file plays nothing out loud: what was written stays written

    async def drain(self) -> None:
        return None

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)

    async def close(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(self.path, self.audio, self.sample_rate or 22_050)


class TeeSink:
    """Sends reply audio to several sinks (a WAV and the speaker)."""

    def __init__(self, sinks: Sequence[AudioSink]) -> None:
        self.sinks = list(sinks)

    async def write(self, samples: np.ndarray, sample_rate: int) -> None:
        for sink in self.sinks:
            await sink.write(samples, sample_rate)

    async def flush(self) -> float:
        played = [await s.flush() for s in self.sinks]
        return max(played, default=0.0)

    async def drain(self) -> None:
        await asyncio.gather(*(s.drain() for s in self.sinks))

    async def close(self) -> None:
        for sink in self.sinks:
            await sink.close()


# --------------------------------------------------------------------------- devices
def _sounddevice():
    """Import sounddevice, turning 'PortAudio missing' into a one-line AudioDeviceError."""
    try:
        import sounddevice as sd
    except OSError as err:  # PortAudio shared library not installed
        raise AudioDeviceError(f"no audio device: {err} (apt-get install libportaudio2)") from None
    return sd


def _pick_device(kind: str, wanted: str | None) -> tuple[int, float]:
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
    except Exception as err:  # PortAudio reports errors as its own types
        raise AudioDeviceError(f"no audio {kind} device: {err}") from None
    channels_key = "max_input_channels" if kind == "input" else "max_output_channels"
    usable = [(i, d) for i, d in enumerate(devices) if d[channels_key] > 0]
    if not usable:
        raise AudioDeviceError(
            f"no audio {kind} device found (no sound card; use --wav files or --device for the glasses)"
        )
    if wanted is None:
        default = sd.default.device[0 if kind == "input" else 1]
        for i, d in usable:
            if i == default:
                return i, float(d["default_samplerate"])
        return usable[0][0], float(usable[0][1]["default_samplerate"])
    for i, d in usable:
        if wanted == str(i) or wanted.lower() in d["name"].lower():
            return i, float(d["default_samplerate"])
    names = ", ".join(f"{i}: {d['name']}" for i, d in usable)
    raise AudioDeviceError(f"no audio {kind} device matches {wanted!r} (have {names})")


def has_output_device() -> bool:
    """True when sounddevice can play somewhere (used to add the speaker to `run`)."""
    try:
        _pick_device("output", None)
    except AudioDeviceError:
        return False
    return True


class MicrophoneSource:
    """A live microphone through sounddevice; converted to 16 kHz mono chunks.

    The PortAudio callback runs on its own thread and hands blocks to the loop
    through a bounded queue; if the loop falls behind, the oldest audio is dropped
    and counted rather than letting memory grow.
    """

    def __init__(self, device: str | None = None, block_ms: int = 32, max_queue: int = 200) -> None:
        self.device, self.rate = _pick_device("input", device)
        self.block_ms = block_ms
        self.dropped_blocks = 0
        self._queue: asyncio.Queue[tuple[np.ndarray, float]] = asyncio.Queue(max_queue)
        self._stream: Any | None = None  # a sounddevice.InputStream (sounddevice is untyped)

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        sd = _sounddevice()
        loop = asyncio.get_running_loop()
        rate = int(self.rate)

        def push(item: tuple[np.ndarray, float]) -> None:
            if self._queue.full():
                self._queue.get_nowait()
                self.dropped_blocks += 1
            self._queue.put_nowait(item)

        def callback(indata, frames, time_info, status) -> None:
            loop.call_soon_threadsafe(push, (to_mono(indata.copy()), time.monotonic()))

        try:
            self._stream = sd.InputStream(
                device=self.device, samplerate=rate, channels=1, dtype="float32",
                blocksize=int(rate * self.block_ms / 1000), callback=callback,
            )
            self._stream.start()
        except Exception as err:
            raise AudioDeviceError(f"cannot open microphone: {err}") from None
        pending = np.zeros(0, np.float32)
        import soxr

        stream = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32") if rate != SAMPLE_RATE else None
        try:
            while self._stream is not None:
                try:
                    block, t = await asyncio.wait_for(self._queue.get(), 0.5)
                except asyncio.TimeoutError:
                    continue  # re-check whether we were closed
                block = stream.resample_chunk(block) if stream else block
                pending = np.concatenate([pending, block])
                while len(pending) >= BLOCK:
                    yield AudioChunk(pending[:BLOCK], SAMPLE_RATE, t)
                    pending = pending[BLOCK:]
        finally:
            await self.close()

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.stop()
                stream.close()


class SpeakerSink:
    """Plays reply audio on a sounddevice output; flush() stops it at once."""

    def __init__(self, device: str | None = None) -> None:
        self.device, self.rate = _pick_device("output", device)
        self._stream: Any | None = None  # a sounddevice.OutputStream (sounddevice is untyped)
        self._written = 0
        self._started: float | None = None

    def _open(self) -> None:
        sd = _sounddevice()
        try:
            self._stream = sd.OutputStream(
                device=self.device, samplerate=int(self.rate), channels=1, dtype="float32"
            )
            self._stream.start()
        except Exception as err:
            raise AudioDeviceError(f"cannot open speaker: {err}") from None

    async def write(self, samples: np.ndarray, sample_rate: int) -> None:
        if self._stream is None:
            self._open()
        assert self._stream is not None  # _open() either opened it or raised
        block = resample(samples, sample_rate, int(self.rate)).reshape(-1, 1)
        if self._started is None:
            self._started = time.monotonic()
        # A blocking write paces us at the device's rate: keep it off the event loop.
        await asyncio.to_thread(self._stream.write, block)
        self._written += len(block)

    async def drain(self) -> None:
        if self._started is not None:
            remaining = self._started + self._written / self.rate - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(remaining)
        self._started, self._written = None, 0

    async def flush(self) -> float:
        played = 0.0
        if self._stream is not None and self._started is not None:
            played = min(time.monotonic() - self._started, self._written / self.rate)
            with contextlib.suppress(Exception):
                self._stream.abort()
                self._stream.start()
        self._started, self._written = None, 0
        return played

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.stop()
                stream.close()
