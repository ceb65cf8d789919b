# SPDX-License-Identifier: GPL-3.0-or-later
"""``glasses-sim``: a virtual pair of glasses speaking the device side of the protocol.

Run ``python -m firmware_bridge.sim --help``.  It listens on TCP
(``--listen tcp://127.0.0.1:0``), on a serial device (``--serial PATH``) or on
a pty pair it creates (``--pty``), prints ``LISTENING <url>`` on stdout, and
then behaves like the firmware: after a host Hello it streams microphone
audio (from WAV files, then silence), heartbeats and telemetry, takes photos
on request (only while the capture LED is on), plays speaker audio into a
WAV file, and emits button events from ``--press`` and stdin.  Faults
(drop/corrupt/delay/disconnect) can be injected.

The device clock is the host's CLOCK_MONOTONIC in microseconds, which is
system-wide on Linux, so latency measured by a host on the same machine is
meaningful.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import os
import random
import signal
import sys
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shtab

from .aio import cancel_and_wait
from .errors import LinkClosed, MessageDecodeError
from .frame import DEFAULT_MAX_PAYLOAD, PROTOCOL_VERSION, Frame
from .messages import (
    PROTOCOL_MINOR,
    ButtonEventMsg,
    ButtonKind,
    CameraFrameMsg,
    Caption,
    CaptureRequest,
    Codec,
    Error,
    ErrorCode,
    Feature,
    FwBegin,
    FwChunk,
    FwEnd,
    FwQuery,
    FwState,
    FwStatus,
    Heartbeat,
    Hello,
    LedReport,
    LedSet,
    LedState,
    Message,
    MicAudio,
    Role,
    SpeakerAudio,
    SpeakerControl,
    Telemetry,
    ThermalState,
    decode_message,
    encode_message,
)
from .transport import FdTransport, Transport, parse_url, serve_tcp, set_vmin1

__all__ = ["SimConfig", "GlassesSim", "main", "parse_args"]

log = logging.getLogger("firmware_bridge.sim")

MIC_RATE = 16000
MIC_FRAME_MS = 20
FIRMWARE_VERSION = "sim-1.0.0"
PRESS_KINDS = ("tap", "double_tap", "long_press", "long_press_start", "long_press_end")
VIDEO_EXTS = {".mp4", ".mkv", ".avi", ".mov", ".webm"}


def device_time_us() -> int:
    """The simulated device clock (µs): CLOCK_MONOTONIC, shared with the host."""
    return time.monotonic_ns() // 1000


class SimError(Exception):
    """Configuration/environment problem reported as one line by :func:`main`."""


@dataclass
class SimConfig:
    """Simulator settings (mirrors the command line; times in seconds unless noted)."""

    listen: str | None = None  # tcp://HOST:PORT
    serial: str | None = None  # device path
    pty: bool = False
    mic_wavs: list[str] = field(default_factory=list)
    mic_gap: float = 1.0
    mic_after_reply: bool = False  # each WAV after the first: after a reply was heard, and mic_gap of quiet
    mic_speed: float = 1.0
    mic_device: str | None = None
    camera: list[str] = field(default_factory=list)
    camera_resolution: tuple[int, int] = (1280, 720)
    capture_latency_ms: float = 20.0
    stream_camera_fps: float = 0.0
    speaker_wav: str | None = None
    speaker_device: str | None = None
    presses: list[tuple[float, str]] = field(default_factory=list)
    stdin_buttons: bool = False
    battery: float = 100.0
    drop: float = 0.0  # percent of outgoing frames dropped
    corrupt: float = 0.0  # percent of outgoing frames with a flipped byte
    delay_ms: float = 0.0
    disconnect_every: float = 0.0
    seed: int | None = None
    heartbeat_interval: float = 0.5
    heartbeat_timeout: float = 3.0
    device_id: str = "glasses-sim"
    has_display: bool = False
    captions_file: str | None = None  # append received captions here as JSON lines ("-": stdout)
    max_payload: int = DEFAULT_MAX_PAYLOAD
    out_queue_bytes: int = 8 * 1024 * 1024
    firmware_keys: list[bytes] = field(default_factory=list)  # raw Ed25519 keys firmware must be signed by
    device_model: str = "glasses-sim"  # what a firmware image must be built for
    reboot_s: float = 0.5  # how long a firmware reboot keeps the glasses off the link


@dataclass
class SimStats:
    """Device-side counters."""

    sessions: int = 0
    frames_tx: int = 0
    frames_rx: int = 0
    dropped_injected: int = 0
    corrupted_injected: int = 0
    tx_queue_dropped: int = 0
    mic_chunks: int = 0
    captures: int = 0
    captures_refused: int = 0
    speaker_samples: int = 0
    speaker_flushes: int = 0
    buttons: int = 0
    disconnects_injected: int = 0
    bad_frames: int = 0
    fw_chunks: int = 0
    fw_crc_errors: int = 0
    fw_reboots: int = 0


class CameraSource:
    """Images for captures: files (cycled), a video file, or a synthetic test card."""

    def __init__(self, files: Sequence[str], default_res: tuple[int, int]) -> None:
        self.files = [Path(f) for f in files]
        self.default_res = default_res
        self._index = 0
        self._images: dict[int, Any] = {}
        self._jpeg_cache: dict[tuple[int, int, int, int], bytes] = {}
        self._video: Any = None
        self._counter = 0
        for f in self.files:
            if not f.exists():
                raise SimError(f"camera file not found: {f}")

    def _cv2(self) -> Any:
        try:
            import cv2
        except ImportError as exc:
            raise SimError("camera needs OpenCV: pip install opencv-python-headless") from exc
        return cv2

    def capture(self, width: int, height: int, quality: int) -> tuple[bytes, int, int]:
        """One JPEG (bytes, width, height); blocking, run it in a thread."""
        cv2 = self._cv2()
        import numpy as np

        w, h = (width, height) if width and height else self.default_res
        q = quality or 85
        self._counter += 1
        if not self.files:
            img = _test_card(w, h)
            cv2.putText(
                img,
                f"frame {self._counter}",
                (20, max(40, h // 10)),
                cv2.FONT_HERSHEY_SIMPLEX,
                max(0.5, h / 480),
                (255, 255, 255),
                2,
            )
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
            return bytes(buf), w, h
        idx = self._index
        self._index = (self._index + 1) % len(self.files)
        path = self.files[idx]
        if path.suffix.lower() in VIDEO_EXTS:
            img = self._video_frame(cv2, path)
        else:
            key = (idx, w, h, q)
            if key in self._jpeg_cache:
                return self._jpeg_cache[key], w, h
            raw = path.read_bytes()
            img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise SimError(f"cannot decode image {path}")
            if img.shape[1] == w and img.shape[0] == h and raw[:2] == b"\xff\xd8" and not quality:
                # Already a JPEG of the right size: pass it through untouched
                # (no generational loss, and cheap enough for 30 fps).
                self._jpeg_cache[key] = raw
                return raw, w, h
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
            self._jpeg_cache[key] = bytes(buf)
            return self._jpeg_cache[key], w, h
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
        return bytes(buf), w, h

    def _video_frame(self, cv2: Any, path: Path) -> Any:
        if self._video is None:
            self._video = cv2.VideoCapture(str(path))
        ok, img = self._video.read()
        if not ok:
            self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop the clip
            ok, img = self._video.read()
        if not ok:
            raise SimError(f"cannot read video {path}")
        return img


def _test_card(w: int, h: int) -> Any:
    import numpy as np

    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    img = np.stack([np.broadcast_to(x, (h, w)), np.broadcast_to(y, (h, w)), np.full((h, w), 96.0)], axis=2)
    return np.ascontiguousarray(img.astype(np.uint8))


class MicSource:
    """WAV files in order (with ``gap`` s of silence between), then silence forever.

    With ``may_start`` (``--mic-after-reply``), each file after the first waits (in silence)
    until ``may_start()`` says so: a conversation partner who speaks once the reply to the
    previous words has been heard, however long the assistant took, instead of on a clock.
    ``on_clip_end`` is called when a file has been read to its end.
    """

    def __init__(self, wavs: Sequence[str], gap: float, *, may_start: Callable[[], bool] | None = None,
                 on_clip_end: Callable[[], None] | None = None) -> None:
        from .wavio import to_pcm16_mono

        self._segments: collections.deque[tuple[bytes, bool]] = collections.deque()
        gap_bytes = bytes(int(gap * MIC_RATE) * 2)
        for i, p in enumerate(wavs):
            if not Path(p).exists():
                raise SimError(f"microphone WAV not found: {p}")
            try:
                self._segments.append((to_pcm16_mono(p, MIC_RATE), i > 0 and may_start is not None))
            except ValueError as exc:
                raise SimError(str(exc)) from exc
            if i < len(wavs) - 1 and gap_bytes and may_start is None:
                self._segments.append((gap_bytes, False))
        self._may_start = may_start
        self._on_clip_end = on_clip_end
        self._cur = b""
        self._pos = 0
        self._in_clip = False

    def read(self, nbytes: int) -> bytes:
        """Next ``nbytes`` of PCM16 (silence once the files are exhausted, or while a file waits)."""
        out = bytearray()
        while len(out) < nbytes:
            if self._pos >= len(self._cur):
                if self._in_clip and self._on_clip_end is not None:
                    self._on_clip_end()
                self._in_clip = False
                if not self._segments or (self._segments[0][1] and not (self._may_start and self._may_start())):
                    out += bytes(nbytes - len(out))
                    break
                self._cur, _gated = self._segments.popleft()
                self._pos, self._in_clip = 0, True
            take = min(nbytes - len(out), len(self._cur) - self._pos)
            out += self._cur[self._pos : self._pos + take]
            self._pos += take
        return bytes(out)


class _SoundDeviceMic:
    """Real microphone via sounddevice, pushing 20 ms PCM16 chunks into a queue."""

    def __init__(self, device: str, loop: asyncio.AbstractEventLoop) -> None:
        try:
            import sounddevice as sd
        except Exception as exc:  # ImportError or missing PortAudio (OSError)
            raise SimError(f"real microphone needs sounddevice/PortAudio: {exc}") from exc
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(100)
        dev = None if device in ("", "default") else device

        def cb(indata: Any, _frames: int, _t: Any, _status: Any) -> None:
            data = bytes(indata)

            def put() -> None:
                if self.queue.full():
                    self.queue.get_nowait()
                self.queue.put_nowait(data)

            loop.call_soon_threadsafe(put)

        try:
            self.stream = sd.RawInputStream(
                samplerate=MIC_RATE,
                channels=1,
                dtype="int16",
                blocksize=MIC_RATE * MIC_FRAME_MS // 1000,
                device=dev,
                callback=cb,
            )
            self.stream.start()
        except Exception as exc:
            raise SimError(f"cannot open microphone {device!r}: {' '.join(str(exc).split())}") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.stop()
            self.stream.close()


class SpeakerSink:
    """Models the speaker: a bounded buffer played out at real time into a WAV
    file and/or a sounddevice output.  FLUSH drops what has not been played."""

    def __init__(self, wav_path: str | None, device: str | None, max_seconds: float = 10.0) -> None:
        self.wav_path = wav_path
        self.rate: int | None = None
        self._buf = bytearray()
        self._writer: Any = None
        self._out: Any = None
        self._device = device
        self.max_seconds = max_seconds
        self.overflow_bytes = 0
        self.played_samples = 0
        self.last_played = 0.0  # monotonic time the speaker last played a sample

    def feed(self, pcm: bytes, rate: int) -> None:
        """Queue received PCM16 mono."""
        from .wavio import StreamingWavWriter, resample_pcm16

        if self.rate is None:
            self.rate = rate
            if self.wav_path:
                self._writer = StreamingWavWriter(self.wav_path, rate)
            if self._device is not None:
                self._open_device(rate)
        elif rate != self.rate:
            pcm = resample_pcm16(pcm, rate, self.rate)
        room = int(self.max_seconds * self.rate) * 2 - len(self._buf)
        if len(pcm) > room:
            self.overflow_bytes += len(pcm) - max(room, 0)
            pcm = pcm[: max(room, 0)]
        self._buf += pcm

    def _open_device(self, rate: int) -> None:
        try:
            import sounddevice as sd

            dev = None if self._device in ("", "default") else self._device
            self._out = sd.RawOutputStream(samplerate=rate, channels=1, dtype="int16", device=dev)
            self._out.start()
        except Exception as exc:
            log.error("speaker device unavailable (%s); writing WAV only", " ".join(str(exc).split()))
            self._out = None

    def flush(self) -> None:
        """Drop unplayed audio (SpeakerControl FLUSH)."""
        self._buf.clear()

    def play_for(self, seconds: float) -> None:
        """Advance the playback clock by ``seconds``."""
        if self.rate is None or not self._buf:
            return
        n = min(len(self._buf), int(seconds * self.rate) * 2)
        n -= n % 2
        chunk = bytes(self._buf[:n])
        del self._buf[:n]
        self.played_samples += n // 2
        if n:
            self.last_played = time.monotonic()
        if self._writer is not None:
            self._writer.write(chunk)
        if self._out is not None:
            with contextlib.suppress(Exception):
                self._out.write(chunk)

    def tick(self) -> None:
        """Periodic housekeeping: keep the WAV header current for live readers."""
        if self._writer is not None:
            self._writer.tick()

    @property
    def buffered_s(self) -> float:
        """Seconds of audio waiting to be played."""
        return len(self._buf) / (2 * self.rate) if self.rate else 0.0

    def close(self) -> None:
        """Play nothing more; finalise the WAV."""
        if self._writer is not None:
            self._writer.close()
        if self._out is not None:
            with contextlib.suppress(Exception):
                self._out.stop()
                self._out.close()


class _Link:
    """One device-side link: a transport plus a bounded, fault-injecting send queue."""

    def __init__(self, sim: GlassesSim, transport: Transport, kind: str) -> None:
        self.sim = sim
        self.transport = transport
        self.kind = kind  # "tcp" or "serial"
        self.active = False  # a host session is running on this link
        self.last_rx = time.monotonic()
        self.session_start = 0.0
        self._queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._writer = asyncio.create_task(self._write_loop())
        self.closed = False

    def send(self, msg: Message, *, flags: int = 0, t_us: int | None = None) -> None:
        """Queue ``msg`` (never blocks: a real firmware drops, it doesn't stall)."""
        sim = self.sim
        seq = sim.tx_seq.get(msg.STREAM, 0)
        sim.tx_seq[msg.STREAM] = (seq + 1) & 0xFFFFFFFF
        data = encode_message(msg, seq=seq, device_time_us=device_time_us() if t_us is None else t_us, flags=flags)
        cfg = sim.config
        if cfg.drop and sim.rng.random() * 100 < cfg.drop:
            sim.stats.dropped_injected += 1
            return
        if cfg.corrupt and sim.rng.random() * 100 < cfg.corrupt:
            # Flip a byte after the CRCs were computed: the host must see a CRC error.
            b = bytearray(data)
            i = sim.rng.randrange(2, len(b))
            b[i] ^= 1 << sim.rng.randrange(8)
            data = bytes(b)
            sim.stats.corrupted_injected += 1
        while self._queue and self._queued_bytes + len(data) > cfg.out_queue_bytes:
            _, old = self._queue.popleft()
            self._queued_bytes -= len(old)
            sim.stats.tx_queue_dropped += 1
        self._queue.append((time.monotonic() + cfg.delay_ms / 1000.0, data))
        self._queued_bytes += len(data)
        self._wake.set()

    def clear(self) -> None:
        """Forget queued frames (session over)."""
        self._queue.clear()
        self._queued_bytes = 0

    async def _write_loop(self) -> None:
        try:
            while True:
                while not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                due, data = self._queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                self._queue.popleft()
                self._queued_bytes -= len(data)
                await self.transport.send(data)
                self.sim.stats.frames_tx += 1
        except (LinkClosed, OSError):
            self.closed = True
        except asyncio.CancelledError:
            pass

    async def close(self) -> None:
        """Stop writing and close the transport."""
        self.closed = True
        await cancel_and_wait(self._writer)
        await self.transport.close()


class GlassesSim:
    """The simulated device.  ``await start()`` returns the URL a host should use."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stats = SimStats()
        self.rng = random.Random(config.seed)
        self.tx_seq: dict[int, int] = {}
        self.led_on = False
        self.battery = float(config.battery)
        self.temperature = 30.0
        self.url = ""
        self._links: list[_Link] = []
        self._active: _Link | None = None
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._first_session = False
        self._first_session_event = asyncio.Event()
        self._stop = asyncio.Event()
        self._muted_until = 0.0
        self._pty_fds: tuple[int, int] | None = None
        self._mic: MicSource | None = None
        self._live_mic: _SoundDeviceMic | None = None
        self.camera = CameraSource(config.camera, config.camera_resolution)
        self.speaker = SpeakerSink(config.speaker_wav, config.speaker_device)
        self._last_capture = 0.0
        self.received_speaker_rates: set[int] = set()
        self.captions: list[Caption] = []
        self.fw = _FirmwareSlots(config)
        self._clip_end_t = 0.0  # when the microphone finished its last WAV (monotonic)
        self._played_at_clip_end = 0

    # ------------------------------------------------------------ setup
    async def start(self) -> str:
        """Open the listening endpoint and background tasks; return the host URL."""
        cfg = self.config
        for _t, kind in cfg.presses:
            if kind not in PRESS_KINDS:
                raise SimError(f"unknown button press {kind!r} (one of {', '.join(PRESS_KINDS)})")
        if cfg.mic_device is not None:
            self._live_mic = _SoundDeviceMic(cfg.mic_device, asyncio.get_running_loop())
        else:
            self._mic = MicSource(cfg.mic_wavs, cfg.mic_gap,
                                  may_start=self._partner_may_speak if cfg.mic_after_reply else None,
                                  on_clip_end=self._clip_ended)
        if cfg.listen:
            link = parse_url(cfg.listen)
            if link.scheme != "tcp":
                raise SimError("--listen takes tcp://HOST:PORT")
            self._server = await serve_tcp(link.host, link.port, self._on_tcp, max_payload=cfg.max_payload)
            sock = self._server.sockets[0]
            host, port = sock.getsockname()[:2]
            self.url = f"tcp://{host}:{port}"
        elif cfg.pty:
            master, slave = os.openpty()
            # Raw mode: no echo (echo would loop our frames back to us) and no
            # newline translation.
            tty.setraw(slave)
            self._pty_fds = (master, slave)
            self.url = f"serial://{os.ttyname(slave)}"
            self._start_serial(
                FdTransport(master, url=self.url, on_close=lambda: os.close(master), max_payload=cfg.max_payload)
            )
        elif cfg.serial:
            try:
                import serial
            except ImportError as exc:
                raise SimError("--serial needs pyserial: pip install pyserial") from exc
            try:
                port = serial.Serial(cfg.serial, baudrate=921600, timeout=0)
            except Exception as exc:
                raise SimError(f"cannot open {cfg.serial}: {exc}") from exc
            set_vmin1(port.fileno())
            self.url = f"serial://{cfg.serial}"
            self._start_serial(
                FdTransport(port.fileno(), url=self.url, on_close=port.close, max_payload=cfg.max_payload)
            )
        else:
            raise SimError("one of --listen, --serial or --pty is required")
        for coro in (
            self._mic_loop(),
            self._telemetry_loop(),
            self._heartbeat_loop(),
            self._watchdog_loop(),
            self._speaker_loop(),
            self._camera_stream_loop(),
            self._disconnect_loop(),
        ):
            self._tasks.append(asyncio.create_task(coro))
        if cfg.stdin_buttons:
            self._start_stdin()
        return self.url

    def _start_serial(self, transport: FdTransport) -> None:
        link = _Link(self, transport, "serial")
        self._links.append(link)
        self._tasks.append(asyncio.create_task(self._serve_link(link)))

    async def _on_tcp(self, transport: Transport) -> None:
        link = _Link(self, transport, "tcp")
        self._links.append(link)
        try:
            await self._serve_link(link)
        finally:
            await link.close()
            with contextlib.suppress(ValueError):
                self._links.remove(link)

    def _start_stdin(self) -> None:
        loop = asyncio.get_running_loop()

        def reader() -> None:
            # A thread, because stdin may be a pipe, a file or a tty.
            for line in sys.stdin:
                kind = line.strip()
                if kind:
                    loop.call_soon_threadsafe(self.press, kind)

        threading.Thread(target=reader, name="sim-stdin", daemon=True).start()

    async def stop(self) -> None:
        """Stop everything and finalise outputs."""
        self._stop.set()
        if self._server is not None:
            self._server.close()
        await cancel_and_wait(*self._tasks)
        for link in list(self._links):
            await link.close()
        if self._pty_fds is not None:
            with contextlib.suppress(OSError):
                os.close(self._pty_fds[1])
        if self._live_mic is not None:
            self._live_mic.close()
        self.speaker.close()

    async def wait_stopped(self) -> None:
        """Wait until :meth:`request_stop` is called."""
        await self._stop.wait()

    def request_stop(self) -> None:
        """Ask :meth:`wait_stopped` to return (signal handler)."""
        self._stop.set()

    # ------------------------------------------------------------ session
    @property
    def session_active(self) -> bool:
        """True while a host is connected and handshaken."""
        return self._active is not None and self._active.active

    def _send(self, msg: Message, **kw: Any) -> bool:
        link = self._active
        if link is None or not link.active or link.closed:
            return False
        link.send(msg, **kw)
        return True

    def _hello(self) -> Hello:
        cfg = self.config
        feats = Feature.CAMERA | Feature.SPEAKER | Feature.MICROPHONE | Feature.BUTTONS | Feature.CAPTURE_LED
        if cfg.has_display:
            feats |= Feature.DISPLAY
        w, h = cfg.camera_resolution
        res = [(w, h)] + [r for r in ((1280, 720), (640, 480), (320, 240)) if r != (w, h)]
        return Hello(
            role=Role.DEVICE,
            proto_minor=PROTOCOL_MINOR,
            device_id=cfg.device_id,
            firmware_version=self.fw.running_version,
            features=feats,
            mic_codec=Codec.PCM16,
            mic_sample_rate=MIC_RATE,
            mic_channels=1,
            mic_frame_ms=MIC_FRAME_MS,
            speaker_codec=Codec.PCM16,
            speaker_sample_rates=(16000, 22050, 24000, 44100, 48000),
            camera_resolutions=tuple(res),
            max_payload=cfg.max_payload,
        )

    def _begin_session(self, link: _Link) -> None:
        old = self._active
        if old is not None and old is not link:
            self._end_session(old, "replaced by a new host")
            if old.kind == "tcp":
                asyncio.ensure_future(old.transport.close())
        link.clear()
        link.active = True
        link.session_start = time.monotonic()
        self._active = link
        self.stats.sessions += 1
        if not self._first_session:
            self._first_session = True
            self._first_session_event.set()
            for t, kind in self.config.presses:
                asyncio.get_running_loop().call_later(t, self.press, kind)
        log.info("host session started on %s", link.kind)

    def _end_session(self, link: _Link, why: str) -> None:
        if not link.active:
            return
        link.active = False
        link.clear()
        if self._active is link:
            self._active = None
        # Privacy: with no host in charge, the camera is off and so is the LED.
        self.led_on = False
        self.speaker.flush()
        log.info("host session ended: %s", why)

    async def _serve_link(self, link: _Link) -> None:
        try:
            while True:
                frames = await link.transport.recv()
                for f in frames:
                    if time.monotonic() < self._muted_until and link.kind == "serial":
                        continue  # simulated reboot: deaf
                    link.last_rx = time.monotonic()
                    self.stats.frames_rx += 1
                    await self._handle(link, f)
        except (LinkClosed, OSError):
            pass
        finally:
            self._end_session(link, "link closed")

    async def _handle(self, link: _Link, f: Frame) -> None:
        try:
            msg = decode_message(f)
        except MessageDecodeError:
            self.stats.bad_frames += 1
            return
        if isinstance(msg, Hello):
            if self.fw.rebooting:
                return  # simulated firmware reboot: the device is off
            if msg.proto_major != 1:
                link.send(
                    Error(
                        ErrorCode.UNSUPPORTED_VERSION, 0, f"device supports protocol v1, host sent v{msg.proto_major}"
                    )
                )
                return
            self._begin_session(link)
            link.send(self._hello())
            link.send(LedReport(self.led_on))
            return
        if not link.active:
            return  # no session: ignore everything but Hello
        if isinstance(msg, LedSet):
            self.led_on = msg.on
            link.send(LedReport(self.led_on))
        elif isinstance(msg, CaptureRequest):
            await self._capture(link, msg)
        elif isinstance(msg, SpeakerAudio):
            if msg.codec == Codec.PCM16 and msg.channels == 1 and msg.sample_rate > 0:
                self.received_speaker_rates.add(msg.sample_rate)
                self.speaker.feed(msg.data, msg.sample_rate)
                self.stats.speaker_samples += len(msg.data) // 2
            else:
                link.send(Error(ErrorCode.BAD_REQUEST, f.seq, "speaker accepts PCM16 mono only"))
        elif isinstance(msg, Caption):
            self._show_caption(msg)
        elif isinstance(msg, SpeakerControl):
            if msg.action == SpeakerControl.FLUSH:
                self.speaker.flush()
                self.stats.speaker_flushes += 1
        elif isinstance(msg, FwChunk):
            if self.fw.chunk(msg):
                self.stats.fw_chunks += 1
            else:
                self.stats.fw_crc_errors += 1
        elif isinstance(msg, FwBegin):
            link.send(self.fw.begin(msg))
        elif isinstance(msg, FwQuery):
            link.send(self.fw.status())
        elif isinstance(msg, FwEnd):
            link.send(self.fw.end(msg))
            if self.fw.state == FwState.APPLYING:
                asyncio.ensure_future(self._fw_reboot(into_new=True))
        # Heartbeat: nothing to do, last_rx was refreshed.

    def _show_caption(self, msg: Caption) -> None:
        """The display: keep the caption, and write it to --captions-file (JSON lines) if asked."""
        if not self.config.has_display:
            return  # no display: a caption has nowhere to go
        self.captions.append(msg)
        path = self.config.captions_file
        if not path:
            return
        line = json.dumps({"id": msg.caption_id, "kind": "translation" if msg.kind == Caption.TRANSLATION
                           else "transcript", "final": msg.final, "language": msg.language, "text": msg.text},
                          ensure_ascii=False)
        if path == "-":
            print(f"CAPTION {line}", flush=True)
            return
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as exc:
            log.warning("cannot write caption to %s: %s", path, exc)

    async def _capture(self, link: _Link, req: CaptureRequest) -> None:
        if not self.led_on:
            # Privacy rule: the camera never runs while the LED is off.
            self.stats.captures_refused += 1
            link.send(Error(ErrorCode.CAPTURE_REFUSED_LED_OFF, req.request_id, "capture LED is off"))
            return
        asyncio.ensure_future(self._do_capture(link, req.request_id, req.width, req.height, req.quality))

    async def _do_capture(self, link: _Link, request_id: int, w: int, h: int, q: int) -> None:
        t_capture = device_time_us()
        led = self.led_on
        if self.config.capture_latency_ms:
            await asyncio.sleep(self.config.capture_latency_ms / 1000.0)
        try:
            jpeg, w, h = await asyncio.to_thread(self.camera.capture, w, h, q)
        except SimError as exc:
            link.send(Error(ErrorCode.INTERNAL, request_id, str(exc)))
            return
        self.stats.captures += 1
        self._last_capture = time.monotonic()
        if link.active:
            link.send(
                CameraFrameMsg(
                    request_id, w, h, LedState.ON if led else LedState.OFF, CameraFrameMsg.FORMAT_JPEG, t_capture, jpeg
                )
            )

    def press(self, kind: str) -> None:
        """Simulate a button press ("tap", "double_tap", "long_press", ...)."""
        if kind == "long_press":
            self._button(ButtonKind.LONG_PRESS_START)
            asyncio.get_running_loop().call_later(0.8, self._button, ButtonKind.LONG_PRESS_END)
        elif kind in ButtonKind.IDS:
            self._button(ButtonKind.IDS[kind])
        else:
            log.warning("unknown button press %r", kind)

    def _button(self, kind: int) -> None:
        if self._send(ButtonEventMsg(0, kind)):
            self.stats.buttons += 1

    # ------------------------------------------------------------ turn taking (--mic-after-reply)
    REPLY_WAIT_S = 90.0
    """A partner who hears no reply speaks anyway after this long (a scenario must never hang)."""

    def _clip_ended(self) -> None:
        self._clip_end_t = time.monotonic()
        self._played_at_clip_end = self.speaker.played_samples

    def _partner_may_speak(self) -> bool:
        """A reply was played since the last WAV ended, and the speaker has been quiet for mic_gap."""
        now = time.monotonic()
        replied = self.speaker.played_samples > self._played_at_clip_end
        quiet = self.speaker.buffered_s == 0 and now - self.speaker.last_played >= self.config.mic_gap
        return (replied and quiet) or now - self._clip_end_t > self.REPLY_WAIT_S

    # ------------------------------------------------------------ loops
    async def _mic_loop(self) -> None:
        chunk_samples = MIC_RATE * MIC_FRAME_MS // 1000
        chunk_s = MIC_FRAME_MS / 1000.0
        # The microphone starts with the first host, then runs like a real one.
        await self._first_session_event.wait()
        if self._live_mic is not None:
            while True:
                pcm = await self._live_mic.queue.get()
                t = device_time_us() - int(1e6 * len(pcm) / 2 / MIC_RATE)
                if self._send(MicAudio(Codec.PCM16, 1, MIC_RATE, pcm), t_us=t):
                    self.stats.mic_chunks += 1
        assert self._mic is not None
        speed = max(self.config.mic_speed, 1e-3)
        t0 = time.monotonic()
        n = 0
        while True:
            # Absolute schedule: chunk n is complete at t0 + (n+1)*chunk/speed.
            due = t0 + (n + 1) * chunk_s / speed
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            pcm = self._mic.read(chunk_samples * 2)
            # Header time = first sample (the chunk was recorded over the last chunk_s).
            t_first = device_time_us() - int(chunk_s * 1e6 / speed)
            if self._send(MicAudio(Codec.PCM16, 1, MIC_RATE, pcm), t_us=t_first):
                self.stats.mic_chunks += 1
            n += 1

    async def _telemetry_loop(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            dt, last = now - last, now
            streaming = self.session_active
            camera_busy = now - self._last_capture < 2.0 or (self.config.stream_camera_fps and self.led_on)
            speaking = self.speaker.buffered_s > 0
            # Battery model: %/s drain for idle, mic streaming, camera, speaker.
            drain = 0.003 + (0.006 if streaming else 0) + (0.03 if camera_busy else 0) + (0.01 if speaking else 0)
            self.battery = max(0.0, self.battery - drain * dt)
            target = 30.0 + (4.0 if streaming else 0) + (14.0 if camera_busy else 0) + (2.0 if speaking else 0)
            self.temperature += (target - self.temperature) * min(1.0, dt / 30.0)
            th = (
                ThermalState.CRITICAL
                if self.temperature >= 50
                else ThermalState.HOT
                if self.temperature >= 45
                else ThermalState.WARM
                if self.temperature >= 40
                else ThermalState.NOMINAL
            )
            self._send(
                Telemetry(round(self.battery, 3), False, int(3300 + 9 * self.battery), round(self.temperature, 2), th)
            )

    async def _heartbeat_loop(self) -> None:
        nonce = 0
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            if self.fw.state == FwState.TRIAL and self.session_active and not self.fw.rebooting:
                if self.fw.trial_fails:
                    # The new firmware crashes before its first heartbeat: the bootloader's
                    # watchdog reboots into the old slot.
                    self.fw.roll_back("new firmware failed its first heartbeat")
                    await self._fw_reboot(into_new=False)
                    continue
                self.fw.confirm()
            nonce += 1
            self._send(Heartbeat(nonce & 0xFFFFFFFF))

    async def _fw_reboot(self, into_new: bool) -> None:
        """Drop the link, stay off for ``reboot_s``, come back on the chosen firmware slot."""
        self.fw.rebooting = True
        self.stats.fw_reboots += 1
        await asyncio.sleep(0.05)  # let the FwStatus go out first
        link = self._active
        if link is not None:
            self._end_session(link, "firmware reboot")
            if link.kind == "tcp":
                await link.transport.close()
        self._muted_until = time.monotonic() + self.config.reboot_s
        await asyncio.sleep(self.config.reboot_s)
        if into_new:
            self.fw.boot_new()
        self.fw.rebooting = False
        log.info("firmware reboot done: running %s (%s)", self.fw.running_version,
                 FwState.NAMES.get(self.fw.state, "?"))

    async def _watchdog_loop(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            link = self._active
            if link is not None and link.active and time.monotonic() - link.last_rx > self.config.heartbeat_timeout:
                self._end_session(link, "host heartbeat timeout")
                if link.kind == "tcp":
                    await link.transport.close()

    async def _speaker_loop(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            self.speaker.play_for(now - last)
            self.speaker.tick()
            last = now

    async def _camera_stream_loop(self) -> None:
        fps = self.config.stream_camera_fps
        if fps <= 0:
            return
        period = 1.0 / fps
        nxt = time.monotonic()
        while True:
            nxt += period
            wait = nxt - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                nxt = time.monotonic()  # fell behind: don't burst
            link = self._active
            if link is None or not link.active or not self.led_on:
                continue
            t_capture = device_time_us()
            jpeg, w, h = self.camera.capture(0, 0, 0)
            self.stats.captures += 1
            self._last_capture = time.monotonic()
            link.send(CameraFrameMsg(0, w, h, LedState.ON, CameraFrameMsg.FORMAT_JPEG, t_capture, jpeg))

    async def _disconnect_loop(self) -> None:
        every = self.config.disconnect_every
        if every <= 0:
            return
        while True:
            await asyncio.sleep(0.05)
            link = self._active
            if link is None or not link.active or time.monotonic() - link.session_start < every:
                continue
            self.stats.disconnects_injected += 1
            self._end_session(link, "injected disconnect")
            if link.kind == "tcp":
                await link.transport.close()
            else:
                # A serial device can't hang up: simulate a reboot (1 s deaf and mute).
                self._muted_until = time.monotonic() + 1.0


class _FirmwareSlots:
    """The glasses' two firmware slots and the update state machine (see docs/protocol.md §8).

    Received chunks are kept (keyed by the image sha256) across links, as a real device keeps
    them in flash, so an interrupted transfer resumes where it stopped.
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.slots: list[dict[str, Any] | None] = [{"version": FIRMWARE_VERSION, "counter": 0}, None]
        self.active = 0
        self.state = FwState.IDLE
        self.message = ""
        self.sha = bytes(32)
        self.size = self.chunk_size = self.count = 0
        self.force = False
        self.chunks: dict[int, bytes] = {}
        self.pending: dict[str, Any] | None = None
        self.rebooting = False
        self.trial_fails = False

    @property
    def running_version(self) -> str:
        slot = self.slots[self.active]
        return str(slot["version"]) if slot else FIRMWARE_VERSION

    def status(self) -> FwStatus:
        bitmap = bytearray((self.count + 7) // 8)
        for i in self.chunks:
            bitmap[i // 8] |= 1 << (i % 8)
        return FwStatus(self.state, self.active, self.sha, self.count, len(self.chunks), self.running_version,
                        self.message, bytes(bitmap))

    def _refuse(self, why: str) -> FwStatus:
        self.state, self.message = FwState.REFUSED, why
        return self.status()

    def begin(self, msg: FwBegin) -> FwStatus:
        if self.state in (FwState.APPLYING, FwState.TRIAL):
            return self._refuse("busy applying the previous image")
        if msg.chunk_size <= 0 or msg.image_size <= 0 or msg.image_size > 64 * 1024 * 1024:
            return self._refuse("bad image or chunk size")
        same = msg.image_sha256 == self.sha and msg.image_size == self.size and msg.chunk_size == self.chunk_size
        if not same:
            self.chunks = {}
        self.sha, self.size, self.chunk_size = msg.image_sha256, msg.image_size, msg.chunk_size
        self.count = (msg.image_size + msg.chunk_size - 1) // msg.chunk_size
        self.force = bool(msg.flags & 1)
        self.state, self.message = FwState.RECEIVING, f"resuming with {len(self.chunks)} chunks" if same else ""
        return self.status()

    def chunk(self, msg: FwChunk) -> bool:
        from .checksum import crc32c

        if self.state != FwState.RECEIVING or not 0 <= msg.index < self.count:
            return False
        expect = min(self.chunk_size, self.size - msg.index * self.chunk_size)
        if len(msg.data) != expect or crc32c(msg.data) != msg.crc:
            return False  # shows up as missing in the next status
        self.chunks[msg.index] = msg.data
        return True

    def end(self, msg: FwEnd) -> FwStatus:
        import hashlib

        from .firmware import FirmwareError, parse_image

        if self.state != FwState.RECEIVING or msg.image_sha256 != self.sha:
            return self._refuse("FwEnd for an image that is not being received")
        if len(self.chunks) != self.count:
            self.message = f"{self.count - len(self.chunks)} chunks missing"
            return self.status()
        image = b"".join(self.chunks[i] for i in range(self.count))
        self.chunks = {}
        if hashlib.sha256(image).digest() != self.sha:
            return self._refuse("image sha256 mismatch")
        if not self.config.firmware_keys:
            return self._refuse("no trusted firmware key is configured (--firmware-key)")
        try:
            img = parse_image(image, trusted=list(self.config.firmware_keys))
        except FirmwareError as exc:
            return self._refuse(str(exc))
        if img.device_model != self.config.device_model:
            return self._refuse(f"image is for {img.device_model!r}, these glasses are {self.config.device_model!r}")
        cur = self.slots[self.active] or {"counter": 0}
        if img.counter < int(cur["counter"]) and not self.force:
            return self._refuse(f"downgrade refused: counter {img.counter} < running {cur['counter']}")
        # Written to the inactive slot; the running one is untouched until the new one is confirmed.
        self.pending = {"version": img.version, "counter": img.counter, "fail": img.fail_first_heartbeat}
        self.slots[1 - self.active] = dict(self.pending)
        self.state, self.message = FwState.APPLYING, f"applying {img.version}; rebooting"
        return self.status()

    def boot_new(self) -> None:
        assert self.pending is not None
        self.previous = self.active
        self.active = 1 - self.active
        self.trial_fails = bool(self.pending["fail"])
        self.state, self.message = FwState.TRIAL, f"running {self.pending['version']} on trial"

    def confirm(self) -> None:
        self.state, self.message = FwState.CONFIRMED, f"{self.running_version} confirmed"
        self.pending = None

    def roll_back(self, why: str) -> None:
        failed = self.running_version
        self.active = 1 - self.active
        self.slots[1 - self.active] = None
        self.trial_fails = False
        self.pending = None
        self.state, self.message = FwState.ROLLED_BACK, f"{failed}: {why}; rolled back to {self.running_version}"


# ---------------------------------------------------------------- CLI --
def _press(arg: str) -> tuple[float, str]:
    kind, sep, at = arg.partition("@")
    try:
        return (float(at) if sep else 0.0), kind.strip()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected KIND@SECONDS, got {arg!r}") from exc


def _pct(arg: str) -> float:
    v = float(arg)
    if not 0 <= v <= 100:
        raise argparse.ArgumentTypeError("percent must be within 0..100")
    return v


def version_line() -> str:
    """``glasses-sim 0.1.0 (firmware sim-1.0.0, bridge protocol 1)``: what a bug report needs."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        dist = version("glasses-assistant")  # the distribution glasses-sim ships in
    except PackageNotFoundError:  # pragma: no cover - run from a bare source tree
        dist = "unknown"
    return f"glasses-sim {dist} (firmware {FIRMWARE_VERSION}, bridge protocol {PROTOCOL_VERSION})"


def parse_args(argv: Sequence[str] | None = None) -> SimConfig:
    """Parse the command line into a :class:`SimConfig`."""
    p = argparse.ArgumentParser(
        prog="glasses-sim", description="Virtual smart glasses (device side of the bridge protocol)."
    )
    p.add_argument("--version", action="version", version=version_line())
    shtab.add_argument_to(p, ["--print-completion"], help="print a shell completion script (bash, zsh, tcsh)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", metavar="URL", help="tcp://HOST:PORT to listen on (PORT 0 picks a free port)")
    where.add_argument("--serial", metavar="PATH", help="serial device / pty to use")
    where.add_argument("--pty", action="store_true", help="create a pty pair and print its host-side path")
    p.add_argument(
        "--mic-wav", action="append", default=[], metavar="FILE", help="WAV played as microphone (repeatable)"
    )
    p.add_argument("--mic-gap", type=float, default=1.0, metavar="S", help="silence between WAV files (s)")
    p.add_argument("--mic-after-reply", action="store_true",
                   help="say each --mic-wav after the first only once the speaker has played a reply and been "
                   "quiet for --mic-gap seconds (a conversation partner), not on a fixed schedule")
    p.add_argument("--mic-speed", type=float, default=1.0, help="stream faster than real time by this factor")
    p.add_argument("--mic-device", nargs="?", const="default", help="use a real microphone (sounddevice)")
    p.add_argument(
        "--camera", action="append", default=[], metavar="FILE", help="image/video for captures (repeatable, cycled)"
    )
    p.add_argument("--camera-resolution", default="1280x720", help="default capture size WxH")
    p.add_argument("--capture-latency", type=float, default=20.0, metavar="MS", help="time to take a photo")
    p.add_argument(
        "--stream-camera", type=float, default=0.0, metavar="FPS", help="push frames at FPS while the LED is on"
    )
    p.add_argument("--speaker-wav", metavar="FILE", help="write received speaker audio to this WAV")
    p.add_argument("--display", action="store_true", help="the glasses have a display (captions are shown)")
    p.add_argument("--captions-file", metavar="FILE",
                   help="with --display: append received captions to FILE as JSON lines ('-': stdout)")
    p.add_argument("--speaker-device", nargs="?", const="default", help="play speaker audio on a real device")
    p.add_argument(
        "--press",
        action="append",
        type=_press,
        default=[],
        metavar="KIND@S",
        help="button press S seconds after the first host connects (tap, double_tap, long_press)",
    )
    p.add_argument("--no-stdin", action="store_true", help="don't read button presses from stdin")
    p.add_argument("--battery", type=_pct, default=100.0, metavar="PCT", help="starting battery level")
    p.add_argument("--drop", type=_pct, default=0.0, metavar="PCT", help="drop this %% of outgoing frames")
    p.add_argument("--corrupt", type=_pct, default=0.0, metavar="PCT", help="corrupt this %% of outgoing frames")
    p.add_argument("--delay", type=float, default=0.0, metavar="MS", help="delay every outgoing frame")
    p.add_argument("--disconnect-every", type=float, default=0.0, metavar="S", help="drop the host every S seconds")
    p.add_argument("--seed", type=int, default=None, help="random seed for fault injection")
    p.add_argument("--heartbeat-timeout", type=float, default=3.0, metavar="S")
    p.add_argument("--device-id", default="glasses-sim")
    p.add_argument("--device-model", default="glasses-sim", help="model firmware images must be built for")
    p.add_argument("--firmware-key", action="append", default=[], metavar="PUB",
                   help="trust firmware signed by this key (file: 'ed25519 <hex> [name]'; repeatable)")
    p.add_argument("--reboot-s", type=float, default=0.5, metavar="S", help="how long a firmware reboot takes")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    try:
        w, h = (int(v) for v in a.camera_resolution.lower().split("x"))
    except ValueError:
        p.error(f"--camera-resolution must be WxH, got {a.camera_resolution!r}")
    if a.mic_speed <= 0:
        p.error("--mic-speed must be positive")
    for _t, kind in a.press:
        if kind not in PRESS_KINDS:
            p.error(f"unknown press kind {kind!r} (one of {', '.join(PRESS_KINDS)})")
    logging.basicConfig(
        level=logging.INFO if a.verbose else logging.WARNING, stream=sys.stderr, format="glasses-sim: %(message)s"
    )
    return SimConfig(
        listen=a.listen,
        serial=a.serial,
        pty=a.pty,
        mic_wavs=a.mic_wav,
        mic_gap=a.mic_gap,
        mic_after_reply=a.mic_after_reply,
        mic_speed=a.mic_speed,
        mic_device=a.mic_device,
        camera=a.camera,
        camera_resolution=(w, h),
        capture_latency_ms=a.capture_latency,
        stream_camera_fps=a.stream_camera,
        speaker_wav=a.speaker_wav,
        speaker_device=a.speaker_device,
        has_display=a.display or bool(a.captions_file),
        captions_file=a.captions_file,
        presses=a.press,
        stdin_buttons=not a.no_stdin,
        battery=a.battery,
        drop=a.drop,
        corrupt=a.corrupt,
        delay_ms=a.delay,
        disconnect_every=a.disconnect_every,
        seed=a.seed,
        heartbeat_timeout=a.heartbeat_timeout,
        device_id=a.device_id,
        device_model=a.device_model,
        firmware_keys=[_firmware_key(p, k) for k in a.firmware_key],
        reboot_s=a.reboot_s,
    )


def _firmware_key(p: argparse.ArgumentParser, path: str) -> bytes:
    try:
        parts = Path(path).read_text().split()
        raw = bytes.fromhex(parts[1]) if len(parts) >= 2 and parts[0] == "ed25519" else b""
    except (OSError, ValueError):
        raw = b""
    if len(raw) != 32:
        p.error(f"--firmware-key {path}: not a readable 'ed25519 <hex>' public key file")
    return raw


async def _amain(cfg: SimConfig) -> None:
    sim = GlassesSim(cfg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, sim.request_stop)
    try:
        url = await sim.start()
        print(f"LISTENING {url}", flush=True)
        await sim.wait_stopped()
    finally:
        await sim.stop()
        log.info("stats: %s", sim.stats)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``glasses-sim``); returns the exit status."""
    cfg = parse_args(argv)
    try:
        asyncio.run(_amain(cfg))
    except SimError as exc:
        print(f"glasses-sim: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
