# SPDX-License-Identifier: GPL-3.0-or-later
"""Asyncio host client for the glasses: :class:`BridgeClient`.

The client owns one link at a time, performs the Hello handshake, sends
heartbeats and declares the link dead after ``heartbeat_timeout`` seconds
without any received frame, and reconnects with exponential backoff.  Data
flows to the assistant through bounded structures only:

* microphone: jitter buffer (reorder + silence fill) -> one bounded queue per
  :meth:`BridgeClient.microphone` iterator (drop-oldest, counted: the device
  clock cannot be slowed down, so old audio is the right thing to lose);
* camera: latest wins, a frame older than the newest one is never handed out;
* buttons: bounded queue per :meth:`BridgeClient.buttons` iterator;
* speaker: :meth:`BridgeClient.play` paces chunks to real time plus a small
  lead and awaits the transport's drain, so nothing queues without bound.

Privacy: a camera frame whose capture-LED state is not ON is refused and
counted, never stored or returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

from .aio import cancel_and_wait
from .errors import (
    BridgeError,
    CaptureRefused,
    LinkClosed,
    MessageDecodeError,
    ProtocolVersionError,
    TransportUnavailable,
)
from .frame import DEFAULT_MAX_PAYLOAD, FLAG_END_OF_STREAM, PROTOCOL_VERSION, DecoderStats, Frame
from .jitter import JitterBuffer, JitterStats, MicChunk
from .messages import (
    ButtonEventMsg,
    ButtonKind,
    CameraFrameMsg,
    Caption,
    CaptureRequest,
    Codec,
    Error,
    ErrorCode,
    Feature,
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
    decode_message,
    encode_message,
)
from .transport import Transport, open_transport
from .untrusted import (
    AUDIO_RATE_MAX,
    DeviceClock,
    LogLimiter,
    audio_rate_ok,
    mic_problem,
    printable,
    sane_speaker_rates,
    telemetry_problem,
)

__all__ = [
    "BridgeClient",
    "BridgeStats",
    "Capabilities",
    "AudioFormat",
    "CameraFrame",
    "ButtonEvent",
    "TelemetrySample",
    "MicChunk",
]

log = logging.getLogger("firmware_bridge.client")

T = TypeVar("T")
_THERMAL_NAMES = {0: "nominal", 1: "warm", 2: "hot", 3: "critical"}
CAMERA_CLOCK_TOLERANCE_US = 2_000_000
"""How far ahead of the device's estimated clock a capture time may be (µs) before it is a lie."""
_CODEC_NAMES = {Codec.PCM16: "pcm16", Codec.OPUS: "opus", Codec.LC3: "lc3"}


def _now_us() -> int:
    # CLOCK_MONOTONIC: system-wide on Linux, so a simulator on the same
    # machine using the same clock gives directly comparable timestamps.
    return time.monotonic_ns() // 1000


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Microphone stream format: codec name, rate (Hz), channels, chunk length (ms)."""

    codec: str = "pcm16"
    sample_rate: int = 16000
    channels: int = 1
    frame_ms: int = 20


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the connected glasses reported in their Hello."""

    device_id: str
    firmware_version: str
    protocol_version: tuple[int, int]
    camera_resolutions: tuple[tuple[int, int], ...]
    audio_format: AudioFormat
    speaker_sample_rates: tuple[int, ...]
    has_camera: bool
    has_speaker: bool
    has_display: bool
    has_microphone: bool
    has_buttons: bool
    max_payload: int

    @classmethod
    def from_hello(cls, h: Hello) -> Capabilities:
        """Build from a device Hello message, keeping only values the host can use.

        The Hello is untrusted: strings are escaped and shortened (:func:`.untrusted.printable`),
        rates outside 8-48 kHz, channel counts, chunk lengths and sizes outside the protocol's
        sense are replaced by the protocol 1.0 defaults. :func:`hello_fixes` says which.
        """
        speaker_rates, _ = sane_speaker_rates(h.speaker_sample_rates)
        return cls(
            device_id=printable(h.device_id, 64),
            firmware_version=printable(h.firmware_version, 64),
            protocol_version=(h.proto_major, h.proto_minor),
            camera_resolutions=tuple((w, hh) for w, hh in h.camera_resolutions if w > 0 and hh > 0),
            audio_format=AudioFormat(
                _CODEC_NAMES.get(h.mic_codec, f"codec{h.mic_codec}"),
                h.mic_sample_rate if audio_rate_ok(h.mic_sample_rate) else 16000,
                h.mic_channels if 1 <= h.mic_channels <= 8 else 1,
                h.mic_frame_ms if 1 <= h.mic_frame_ms <= 1000 else 20,
            ),
            speaker_sample_rates=speaker_rates,
            has_camera=bool(h.features & Feature.CAMERA),
            has_speaker=bool(h.features & Feature.SPEAKER),
            has_display=bool(h.features & Feature.DISPLAY),
            has_microphone=bool(h.features & Feature.MICROPHONE),
            has_buttons=bool(h.features & Feature.BUTTONS),
            max_payload=min(max(h.max_payload, 256), DEFAULT_MAX_PAYLOAD),
        )


def hello_fixes(h: Hello) -> list[str]:
    """The fields of a device Hello that :meth:`Capabilities.from_hello` had to replace or cut."""
    fixes = [name for name, bad in (
        ("device_id", printable(h.device_id, 64) != h.device_id),
        ("firmware_version", printable(h.firmware_version, 64) != h.firmware_version),
        ("mic_sample_rate", not audio_rate_ok(h.mic_sample_rate)),
        ("mic_channels", not 1 <= h.mic_channels <= 8),
        ("mic_frame_ms", not 1 <= h.mic_frame_ms <= 1000),
        ("speaker_sample_rates", sane_speaker_rates(h.speaker_sample_rates)[1]),
        ("camera_resolutions", any(w <= 0 or hh <= 0 for w, hh in h.camera_resolutions)),
        ("max_payload", not 256 <= h.max_payload <= DEFAULT_MAX_PAYLOAD),
    ) if bad]
    return fixes


@dataclass(frozen=True, slots=True)
class CameraFrame:
    """A photo from the glasses.

    ``jpeg``: JPEG bytes; ``width``/``height`` in pixels; ``device_time_us``:
    device clock at capture (µs); ``led_on``: capture LED at capture time
    (always True for frames handed out); ``request_id``: the capture request
    it answers (0 = streamed); ``sent_time_us``: device clock when sent;
    ``received_us``: host monotonic clock on arrival (µs).
    """

    jpeg: bytes
    width: int
    height: int
    device_time_us: int
    led_on: bool
    request_id: int = 0
    sent_time_us: int = 0
    received_us: int = 0
    session: int = 0


@dataclass(frozen=True, slots=True)
class ButtonEvent:
    """A button event.  ``kind`` is one of "tap", "double_tap",
    "long_press_start", "long_press_end"; ``device_time_us`` device clock (µs)."""

    kind: str
    button: int = 0
    device_time_us: int = 0
    received_us: int = 0


@dataclass(frozen=True, slots=True)
class TelemetrySample:
    """Latest battery/thermal report: percent (0-100), charging, millivolts,
    temperature in °C, thermal state name ("nominal", "warm", "hot", "critical")."""

    battery_percent: float
    charging: bool
    battery_mv: int
    temperature_c: float
    thermal_state: str
    device_time_us: int = 0
    received_us: int = 0


@dataclass(slots=True)
class LinkCounters:
    """What any glasses link counts about itself, under the same names for every kind of link
    (our bridge, Brilliant's BLE), so that logs and tests read them alike."""

    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    link_lost: int = 0
    heartbeat_timeouts: int = 0
    frames_rx: int = 0
    frames_tx: int = 0


@dataclass(slots=True)
class BridgeStats(LinkCounters):
    """Counters for everything the client dropped, refused or repaired.

    ``decoder`` (framing: CRC errors, resyncs, ...) and ``jitter`` (gap fill,
    reorder) accumulate across reconnects.  :meth:`as_dict` flattens them.
    """

    unknown_type: int = 0
    bad_payload: int = 0
    unexpected_type: int = 0  # a host-to-device message sent by the device: ignored
    hello_fields_fixed: int = 0  # device Hello fields out of range, replaced by protocol defaults
    hello_bad_version: int = 0  # a device Hello mid-session with an unknown major: link closed
    device_errors: int = 0
    log_suppressed: int = 0  # repeated device complaints not logged (rate limit)
    mic_chunks: int = 0  # chunks delivered into the jitter buffer
    mic_format_errors: int = 0  # non-PCM16, not mono, rate outside 8-48 kHz, odd or over-long: dropped
    mic_queue_dropped: int = 0  # dropped because a consumer fell behind
    camera_frames: int = 0  # accepted frames
    camera_superseded: int = 0  # accepted but replaced by a newer one before anyone took it
    camera_stale_dropped: int = 0  # arrived older than the newest: never handed out
    camera_bad_time: int = 0  # capture time far ahead of the device's own clock: dropped
    camera_refused_led: int = 0  # LED off/unknown at capture: refused (privacy)
    camera_queue_dropped: int = 0
    capture_requests: int = 0
    capture_timeouts: int = 0
    capture_refused: int = 0
    buttons: int = 0
    buttons_dropped: int = 0
    buttons_invalid: int = 0  # unknown button kind: dropped
    telemetry: int = 0
    telemetry_invalid: int = 0  # NaN, infinity or out-of-range readings: dropped
    speaker_chunks: int = 0
    speaker_bytes: int = 0
    decoder: DecoderStats = field(default_factory=DecoderStats)
    jitter: JitterStats = field(default_factory=JitterStats)

    def as_dict(self) -> dict[str, int]:
        """Flat dict of all counters (decoder_* and mic_* prefixes for sub-stats)."""
        out: dict[str, int] = {}
        for k, v in asdict(self).items():
            if k == "decoder":
                out.update({f"decoder_{kk}": vv for kk, vv in v.items()})
            elif k == "jitter":
                out.update({f"mic_{kk}": vv for kk, vv in v.items()})
            else:
                out[k] = v
        return out


class _Subscription(Generic[T]):
    """Bounded async iterator fed by the client (drop-oldest on overflow).

    Bounded in items and, with ``max_bytes``, in the bytes the items hold (``size(item)``):
    a device decides how big its chunks are, so a count alone bounds nothing.
    """

    _END: Any = object()

    def __init__(self, maxsize: int, on_drop: Callable[[], None], owner: list[_Subscription[T]], *,
                 max_bytes: int = 0, size: Callable[[Any], int] = lambda _item: 0) -> None:
        self._q: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._on_drop = on_drop
        self._owner = owner
        self._ended = False
        self._max_bytes = max_bytes
        self._size = size
        self._bytes = 0

    def _drop_oldest(self) -> None:
        try:
            old = self._q.get_nowait()
        except asyncio.QueueEmpty:
            return
        if old is not self._END:
            self._bytes -= self._size(old)
            self._on_drop()

    def put(self, item: Any) -> None:
        n = 0 if item is self._END else self._size(item)
        if self._max_bytes:
            while self._bytes + n > self._max_bytes and not self._q.empty():
                self._drop_oldest()
        if self._q.full():
            self._drop_oldest()
        self._q.put_nowait(item)
        self._bytes += n

    def end(self) -> None:
        self.put(self._END)

    def qsize(self) -> int:
        return self._q.qsize()

    def __aiter__(self) -> _Subscription[T]:
        return self

    async def __anext__(self) -> T:
        if self._ended:
            raise StopAsyncIteration
        item = await self._q.get()
        if item is self._END:
            self._ended = True
            self.close()
            raise StopAsyncIteration
        self._bytes -= self._size(item)
        return item

    def close(self) -> None:
        """Stop receiving (frees the queue)."""
        with contextlib.suppress(ValueError):
            self._owner.remove(self)

    async def aclose(self) -> None:
        """Async-generator style close."""
        self.close()


class BridgeClient:
    """Host-side connection to a pair of glasses (or ``glasses-sim``).

    ``url``: ``tcp://HOST:PORT``, ``serial:///dev/ttyACM0?baud=921600`` or
    ``ble://ADDR``.  Times are in seconds.  ``heartbeat_timeout``: the link is
    declared dead after this long without any frame.  ``connect_timeout``:
    how long :meth:`start` keeps trying.  ``jitter_depth``: microphone chunks
    of reorder window.  ``mic_queue``/``button_queue``: per-iterator bounds
    (``mic_queue_bytes``: the microphone's in bytes too, default 5 s at 48 kHz).
    After a link loss the client waits before each reconnect, doubling from
    ``backoff_initial`` to ``backoff_max`` (±25 %), and starts again from
    ``backoff_initial`` only after a session that lasted ``stable_s``.
    ``speaker_chunk_ms``/``speaker_lead``: speaker frame size and how far
    ahead of real time :meth:`play` may run.
    """

    def __init__(
        self,
        url: str,
        *,
        heartbeat_interval: float = 0.5,
        heartbeat_timeout: float = 3.0,
        reconnect: bool = True,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        stable_s: float = 2.0,
        jitter_depth: int = 3,
        mic_queue: int = 250,
        mic_queue_bytes: int = 5 * 2 * AUDIO_RATE_MAX,
        button_queue: int = 64,
        camera_queue: int = 1,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        speaker_chunk_ms: int = 40,
        speaker_lead: float = 0.3,
        host_id: str = "firmware_bridge",
        transport_factory: Callable[[str, DecoderStats], Awaitable[Transport]] | None = None,
    ) -> None:
        self.url = url
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.reconnect = reconnect
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_s = stable_s
        self.max_payload = max_payload
        self.speaker_chunk_ms = speaker_chunk_ms
        self.speaker_lead = speaker_lead
        self.host_id = host_id
        self._mic_queue = mic_queue
        self._mic_queue_bytes = mic_queue_bytes
        self._button_queue = button_queue
        self._camera_queue = camera_queue
        self._factory = transport_factory
        self.stats = BridgeStats()
        self._jitter = JitterBuffer(jitter_depth, stats=self.stats.jitter)
        self.capabilities: Capabilities | None = None
        self.telemetry: TelemetrySample | None = None
        self.led_on: bool | None = None  # last state reported by the device
        self._led_desired: bool | None = None
        self._transport: Transport | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._fatal: BaseException | None = None
        self._session = 0
        self._last_rx = 0.0
        self._tx_seq: dict[int, int] = {}
        self._mic_subs: list[_Subscription[MicChunk]] = []
        self._button_subs: list[_Subscription[ButtonEvent]] = []
        self._camera_subs: list[_Subscription[CameraFrame]] = []
        self._latest: CameraFrame | None = None
        self._latest_taken = True
        self._captures: dict[int, asyncio.Future[CameraFrame]] = {}
        self._capture_ids = itertools.count(1)
        self._led_waiters: list[tuple[bool, asyncio.Future[None]]] = []
        self._play_gen = 0
        self._rng = random.Random()
        self._device_clock = DeviceClock()
        self._log_limit = LogLimiter()
        # Firmware update (firmware_bridge.firmware): the latest FwStatus and who waits for one.
        self.firmware_status: FwStatus | None = None
        self._fw_waiters: list[asyncio.Future[FwStatus]] = []

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> BridgeClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """True while a handshaken link is up."""
        return self._connected.is_set()

    @property
    def fatal(self) -> BaseException | None:
        """Why the client gave up for good (an unsupported protocol, no transport), or None."""
        return self._fatal

    async def start(self) -> None:
        """Connect and handshake, retrying until ``connect_timeout``.

        Raises :class:`BridgeError` (one line) if no device answered in time,
        :class:`ProtocolVersionError` if it speaks an unsupported major
        version, :class:`TransportUnavailable` if the transport can't be used.
        """
        if self._supervisor is not None:
            return
        self._closing = False
        deadline = time.monotonic() + self.connect_timeout
        backoff = self.backoff_initial
        last: BaseException | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BridgeError(f"cannot connect to {self.url} within {self.connect_timeout:g} s: {last}")
            try:
                await asyncio.wait_for(self._connect_once(), remaining)
                break
            except (ProtocolVersionError, TransportUnavailable):
                raise
            except asyncio.TimeoutError:
                last = last or TimeoutError("no answer")
            except (BridgeError, OSError) as exc:
                last = exc
                self.stats.connect_failures += 1
                await asyncio.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, self.backoff_max)
        self._supervisor = asyncio.create_task(self._run(), name="bridge-supervisor")

    async def close(self) -> None:
        """Disconnect, stop reconnecting and end all iterators."""
        self._closing = True
        sup, self._supervisor = self._supervisor, None
        await cancel_and_wait(sup)
        await self._drop_transport()
        self._end_streams()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until a link is up; raises :class:`BridgeError` on timeout or if closed."""
        if self._connected.is_set():
            return
        if self._closing or self._fatal is not None:
            raise BridgeError(f"bridge to {self.url} is closed" + (f": {self._fatal}" if self._fatal else ""))
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except asyncio.TimeoutError as exc:
            raise BridgeError(f"glasses not connected ({self.url}) within {timeout:g} s") from exc

    # ------------------------------------------------------------ streams
    def microphone(self) -> AsyncIterator[MicChunk]:
        """Async iterator of :class:`MicChunk` (PCM16 mono, 16 kHz), in order,
        gaps filled with silence.  Continues across reconnects; ends on close."""
        sub: _Subscription[MicChunk] = _Subscription(
            self._mic_queue, self._count("mic_queue_dropped"), self._mic_subs, max_bytes=self._mic_queue_bytes,
            size=lambda c: len(c.pcm))
        self._mic_subs.append(sub)
        if self._closing:
            sub.end()
        return sub

    def buttons(self) -> AsyncIterator[ButtonEvent]:
        """Async iterator of :class:`ButtonEvent`; ends on close."""
        sub: _Subscription[ButtonEvent] = _Subscription(
            self._button_queue, self._count("buttons_dropped"), self._button_subs
        )
        self._button_subs.append(sub)
        if self._closing:
            sub.end()
        return sub

    def camera_frames(self) -> AsyncIterator[CameraFrame]:
        """Async iterator of accepted camera frames (captured or streamed).

        Latest wins: the queue holds ``camera_queue`` frames (default 1); a
        slow consumer gets the newest frame, older ones are counted as dropped.
        """
        sub: _Subscription[CameraFrame] = _Subscription(
            self._camera_queue, self._count("camera_queue_dropped"), self._camera_subs
        )
        self._camera_subs.append(sub)
        if self._closing:
            sub.end()
        return sub

    def latest_frame(self, max_age: float | None = None) -> CameraFrame | None:
        """Newest accepted camera frame, or None (also if older than ``max_age`` seconds)."""
        f = self._latest
        if f is None:
            return None
        if max_age is not None and (_now_us() - f.received_us) > max_age * 1e6:
            return None
        self._latest_taken = True
        return f

    # ------------------------------------------------------------ commands
    async def play(self, pcm: bytes, sample_rate: int) -> None:
        """Send PCM16 mono audio to the speaker; returns once all of it is sent.

        Chunks of ``speaker_chunk_ms`` are paced to real time with at most
        ``speaker_lead`` seconds of lead, and each send awaits the link's
        drain.  :meth:`stop_playback` interrupts it.
        """
        if len(pcm) % 2:
            raise ValueError("PCM16 data must have an even number of bytes")
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        gen = self._play_gen
        chunk = max(2, (sample_rate * self.speaker_chunk_ms // 1000) * 2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent_s = 0.0
        for off in range(0, len(pcm), chunk):
            if gen != self._play_gen:
                return  # stop_playback() was called
            ahead = sent_s - (loop.time() - start) - self.speaker_lead
            if ahead > 0:
                await asyncio.sleep(ahead)
                if gen != self._play_gen:
                    return
            data = pcm[off : off + chunk]
            last = off + chunk >= len(pcm)
            await self._send(SpeakerAudio(Codec.PCM16, 1, sample_rate, data), flags=FLAG_END_OF_STREAM if last else 0)
            self.stats.speaker_chunks += 1
            self.stats.speaker_bytes += len(data)
            sent_s += len(data) / (2 * sample_rate)

    async def caption(self, text: str, *, kind: int = Caption.TRANSCRIPT, language: str = "",
                      final: bool = True, caption_id: int = 0) -> bool:
        """Show a caption on the glasses' display; False (nothing sent) when they have none."""
        if self.capabilities is None or not self.capabilities.has_display:
            return False
        await self._send(Caption(caption_id, kind, final, language, text[:2000]))
        return True

    async def stop_playback(self) -> None:
        """Interrupt :meth:`play` and tell the device to flush its speaker buffer."""
        self._play_gen += 1
        await self._send(SpeakerControl(SpeakerControl.FLUSH))

    async def set_capture_led(self, on: bool, timeout: float = 2.0) -> None:
        """Switch the capture LED and wait for the device to confirm it.

        The desired state is re-applied after a reconnect (the device turns the
        LED off whenever its host goes away).
        """
        self._led_desired = on
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._led_waiters.append((on, fut))
        try:
            await self._send(LedSet(on), timeout=timeout)
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError as exc:
            raise BridgeError(
                f"glasses did not confirm capture LED {'on' if on else 'off'} within {timeout:g} s"
            ) from exc
        finally:
            with contextlib.suppress(ValueError):
                self._led_waiters.remove((on, fut))

    async def capture(self, timeout: float = 2.0, *, width: int = 0, height: int = 0) -> CameraFrame:
        """Request a photo and return a frame captured after this call.

        Never returns an older frame: only a frame answering this request
        (or a later one) qualifies.  Raises :class:`CaptureRefused` if the
        capture LED is off, :class:`BridgeError` on timeout.  If the link
        drops meanwhile, the request is re-sent after reconnecting.
        """
        if self.led_on is False or self._led_desired is False:
            self.stats.capture_refused += 1
            raise CaptureRefused("capture LED is off; call set_capture_led(True) first")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.stats.capture_timeouts += 1
                raise BridgeError(f"no camera frame within {timeout:g} s")
            await self.wait_connected(remaining)
            rid = next(self._capture_ids) & 0xFFFFFFFF
            fut: asyncio.Future[CameraFrame] = loop.create_future()
            self._captures[rid] = fut
            try:
                self.stats.capture_requests += 1
                await self._send(CaptureRequest(rid, width, height), timeout=max(0.01, deadline - loop.time()))
                return await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
            except LinkClosed:
                continue  # reconnect and ask again
            except asyncio.TimeoutError:
                continue  # loop reports the timeout
            except CaptureRefused:
                self.stats.capture_refused += 1
                raise
            finally:
                self._captures.pop(rid, None)

    # ------------------------------------------------------------ firmware update
    async def firmware_send(self, msg: Message, *, timeout: float | None = None) -> None:
        """Send a firmware-update message that gets no answer (FwChunk); waits for the link."""
        await self._send(msg, timeout=timeout)

    async def firmware_request(self, msg: Message, *, timeout: float = 3.0) -> FwStatus:
        """Send FwBegin/FwQuery/FwEnd and return the device's next FwStatus (see firmware.py)."""
        fut: asyncio.Future[FwStatus] = asyncio.get_running_loop().create_future()
        self._fw_waiters.append(fut)
        try:
            await self._send(msg, timeout=timeout)
            return await asyncio.wait_for(fut, timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._fw_waiters.remove(fut)

    # ------------------------------------------------------------ internals
    def _count(self, name: str) -> Callable[[], None]:
        def inc() -> None:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

        return inc

    def _end_streams(self) -> None:
        streams: tuple[list[_Subscription[Any]], ...] = (self._mic_subs, self._button_subs, self._camera_subs)
        for subs in streams:
            for s in list(subs):
                s.end()
        for fut in self._captures.values():
            if not fut.done():
                fut.set_exception(BridgeError("bridge closed"))

    async def _send(self, msg: Message, *, flags: int = 0, timeout: float | None = None) -> None:
        t = self._transport
        if t is None or not self._connected.is_set():
            await self.wait_connected(timeout if timeout is not None else self.connect_timeout)
            t = self._transport
            if t is None:
                raise LinkClosed("link lost")
        seq = self._tx_seq.get(msg.STREAM, 0)
        self._tx_seq[msg.STREAM] = (seq + 1) & 0xFFFFFFFF
        data = encode_message(msg, seq=seq, device_time_us=_now_us(), flags=flags)
        if timeout is None:
            await t.send(data)
        else:
            try:
                await asyncio.wait_for(t.send(data), timeout)
            except asyncio.TimeoutError as exc:
                raise BridgeError(f"link to {self.url} is not draining") from exc
        self.stats.frames_tx += 1

    async def _open(self) -> Transport:
        if self._factory is not None:
            return await self._factory(self.url, self.stats.decoder)
        return await open_transport(
            self.url, max_payload=self.max_payload, stats=self.stats.decoder, timeout=self.connect_timeout
        )

    async def _connect_once(self) -> None:
        t = await self._open()
        try:
            hello, rest = await self._handshake(t)
        except BaseException:
            await t.close()
            raise
        self._session += 1
        self._jitter.reset()
        self._device_clock.reset()
        self._tx_seq.clear()
        self._new_capabilities(hello)
        self._transport = t
        self._last_rx = time.monotonic()
        self.stats.connects += 1
        self._connected.set()
        caps = self.capabilities
        assert caps is not None  # set just above
        log.info("connected to %s (%s fw %s)", self.url, caps.device_id, caps.firmware_version)
        for f in rest:
            self.stats.frames_rx += 1
            with contextlib.suppress(_Restarted):  # a second, odd Hello right after the first: counted
                self._dispatch(f)

    def _new_capabilities(self, hello: Hello) -> None:
        """Take a device Hello's capabilities, replacing what is out of range (counted, logged)."""
        fixes = hello_fixes(hello)
        if fixes:
            self.stats.hello_fields_fixed += len(fixes)
            self._warn("hello", "glasses at %s announced unusable %s; using protocol defaults", self.url,
                       ", ".join(fixes))
        self.capabilities = Capabilities.from_hello(hello)

    def _warn(self, key: str, fmt: str, *args: object) -> None:
        """A warning about what the device sent, rate-limited per ``key`` (a flood costs a few lines)."""
        if self._log_limit.allow(key):
            log.warning(fmt + "%s", *args, self._log_limit.note(key))
        else:
            self.stats.log_suppressed += 1

    async def _handshake(self, t: Transport) -> tuple[Hello, list[Frame]]:
        hello = Hello(role=Role.HOST, device_id=self.host_id, max_payload=self.max_payload)
        seq = 0
        bad0 = t.stats.bad_version
        next_hello = 0.0
        while True:
            now = time.monotonic()
            if now >= next_hello:
                # Re-sent every 0.5 s: a lossy link may eat the first one.
                await t.send(encode_message(hello, seq=seq, device_time_us=_now_us()))
                seq += 1
                next_hello = now + 0.5
            try:
                frames = await asyncio.wait_for(t.recv(), max(0.01, next_hello - time.monotonic()))
            except asyncio.TimeoutError:
                frames = []
            if t.stats.bad_version > bad0:
                # CRC-valid frames with another header version: a clear error
                # beats a silent handshake timeout.
                raise ProtocolVersionError(
                    f"glasses at {self.url} speak protocol v{t.stats.last_bad_version}, "
                    f"this host supports v{PROTOCOL_VERSION}"
                )
            for i, f in enumerate(frames):
                try:
                    msg = decode_message(f)
                except MessageDecodeError as exc:
                    self._count(exc.reason)()
                    continue
                if isinstance(msg, Hello) and msg.role == Role.DEVICE:
                    self.stats.frames_rx += 1
                    if msg.proto_major != PROTOCOL_VERSION:
                        raise ProtocolVersionError(
                            f"glasses at {self.url} speak protocol v{msg.proto_major}.{msg.proto_minor}, "
                            f"this host supports v{PROTOCOL_VERSION}"
                        )
                    return msg, frames[i + 1 :]
                if isinstance(msg, Error) and msg.code == ErrorCode.UNSUPPORTED_VERSION:
                    raise ProtocolVersionError(
                        f"glasses at {self.url} refused our protocol: {printable(msg.message)}")
                # Anything else before the Hello is left over from an old session.

    async def _drop_transport(self) -> None:
        self._connected.clear()
        t, self._transport = self._transport, None
        if t is not None:
            await t.close()
        for chunk in self._jitter.flush():
            self._deliver_mic(chunk)
        self._jitter.reset()
        for fut in self._captures.values():
            if not fut.done():
                fut.set_exception(LinkClosed("link lost"))
        self.led_on = None  # unknown until the device reports again

    async def _run(self) -> None:
        backoff = self.backoff_initial
        try:
            while not self._closing:
                if self._transport is None:
                    # Jittered exponential backoff before every reconnect, also after a handshake
                    # that succeeded: a device that hangs up at once is not hammered, and many
                    # hosts don't retry in lockstep.
                    await asyncio.sleep(backoff * (0.75 + 0.5 * self._rng.random()))
                    backoff = min(backoff * 2, self.backoff_max)
                    try:
                        await asyncio.wait_for(self._connect_once(), self.connect_timeout)
                        self.stats.reconnects += 1
                    except (ProtocolVersionError, TransportUnavailable) as exc:
                        self._fatal = exc
                        log.error("giving up on %s: %s", self.url, exc)
                        break
                    except (asyncio.TimeoutError, BridgeError, OSError) as exc:
                        self.stats.connect_failures += 1
                        log.debug("reconnect to %s failed: %s", self.url, exc)
                        continue
                assert self._transport is not None  # set above, or by _connect_once()
                started = time.monotonic()
                await self._serve(self._transport)
                self.stats.link_lost += 1
                await self._drop_transport()
                if time.monotonic() - started >= self.stable_s:
                    backoff = self.backoff_initial  # a session that worked: start the backoff over
                if not self.reconnect:
                    break
        finally:
            if not self._closing:
                # Permanent end (no reconnect or fatal error): finish iterators.
                self._closing = True
                await self._drop_transport()
                self._end_streams()

    async def _serve(self, t: Transport) -> None:
        reader = asyncio.create_task(self._reader(t), name="bridge-reader")
        beater = asyncio.create_task(self._heartbeat(t), name="bridge-heartbeat")
        try:
            done, _ = await asyncio.wait({reader, beater}, return_when=asyncio.FIRST_COMPLETED)
            for d in done:
                exc = d.exception()
                if exc is not None and not isinstance(exc, (LinkClosed, BridgeError, OSError)):
                    log.error("bridge task failed: %r", exc)
        finally:
            await cancel_and_wait(reader, beater)

    async def _reader(self, t: Transport) -> None:
        if self._led_desired is not None:
            # Re-apply what the assistant asked for; the device switches the
            # LED off whenever its host goes away.
            with contextlib.suppress(BridgeError):
                await self._send(LedSet(self._led_desired), timeout=self.heartbeat_timeout)
        while True:
            frames = await t.recv()
            self._last_rx = time.monotonic()
            for f in frames:
                self.stats.frames_rx += 1
                try:
                    self._dispatch(f)
                except _Restarted:
                    return  # the device restarted into a protocol we may not speak: handshake again
                except Exception as exc:  # a bug in a handler must not kill the link
                    if self._log_limit.allow("handler"):
                        log.exception("error handling frame type 0x%02x: %s%s", f.type, exc,
                                      self._log_limit.note("handler"))
                    else:
                        self.stats.log_suppressed += 1

    async def _heartbeat(self, t: Transport) -> None:
        nonce = 0
        tick = min(self.heartbeat_interval, self.heartbeat_timeout / 4)
        next_beat = time.monotonic()
        while not self._closing:
            now = time.monotonic()
            if now - self._last_rx > self.heartbeat_timeout:
                self.stats.heartbeat_timeouts += 1
                log.warning("no frame from %s for %.1f s: link dead", self.url, now - self._last_rx)
                return
            if now >= next_beat:
                nonce = (nonce + 1) & 0xFFFFFFFF
                try:
                    await self._send(Heartbeat(nonce), timeout=self.heartbeat_timeout)
                except BridgeError:
                    return
                next_beat = now + self.heartbeat_interval
            await asyncio.sleep(tick)

    def _dispatch(self, f: Frame) -> None:
        try:
            msg = decode_message(f)
        except MessageDecodeError as exc:
            self._count(exc.reason)()
            return
        self._device_clock.observe(f.device_time_us, _now_us())
        if isinstance(msg, MicAudio):
            self._on_mic(f, msg)
        elif isinstance(msg, CameraFrameMsg):
            self._on_camera(f, msg)
        elif isinstance(msg, ButtonEventMsg):
            name = ButtonKind.NAMES.get(msg.kind)
            if name is None:
                self.stats.buttons_invalid += 1
                return
            self.stats.buttons += 1
            ev = ButtonEvent(name, msg.button, f.device_time_us, _now_us())
            for s in list(self._button_subs):
                s.put(ev)
        elif isinstance(msg, Telemetry):
            if telemetry_problem(msg.battery_percent, msg.battery_mv, msg.temperature_c) is not None:
                self.stats.telemetry_invalid += 1
                return
            self.stats.telemetry += 1
            self.telemetry = TelemetrySample(
                msg.battery_percent,
                msg.charging,
                msg.battery_mv,
                msg.temperature_c,
                _THERMAL_NAMES.get(msg.thermal_state, "unknown"),
                f.device_time_us,
                _now_us(),
            )
        elif isinstance(msg, LedReport):
            self.led_on = msg.on
            for want, led_waiter in list(self._led_waiters):
                if want == msg.on and not led_waiter.done():
                    led_waiter.set_result(None)
        elif isinstance(msg, Error):
            self.stats.device_errors += 1
            text = printable(msg.message)
            capture = self._captures.get(msg.ref_id)
            if capture is not None and not capture.done():
                if msg.code == ErrorCode.CAPTURE_REFUSED_LED_OFF:
                    capture.set_exception(CaptureRefused(f"glasses refused capture: {text}"))
                else:
                    capture.set_exception(BridgeError(f"glasses error {msg.code}: {text}"))
            else:
                self._warn("device-error", "device error %d: %s", msg.code, text)
        elif isinstance(msg, FwStatus):
            self.firmware_status = msg
            for fw_waiter in list(self._fw_waiters):
                if not fw_waiter.done():
                    fw_waiter.set_result(msg)
        elif isinstance(msg, Hello):
            if msg.role == Role.DEVICE:
                if msg.proto_major != PROTOCOL_VERSION:
                    # Restarted into firmware speaking another major version: close the link and
                    # let the handshake decide (it refuses for good if the device insists).
                    self.stats.hello_bad_version += 1
                    raise _Restarted
                # Device restarted without the link dropping (serial): new session.
                self._new_capabilities(msg)
                self._session += 1
                for chunk in self._jitter.flush():
                    self._deliver_mic(chunk)
                self._jitter.reset()
                self._device_clock.reset()
        elif not isinstance(msg, Heartbeat):
            # A host-to-device message (SpeakerAudio, CaptureRequest, FwBegin...) from the device.
            self.stats.unexpected_type += 1
        # Heartbeats need no handling: any frame refreshes _last_rx.

    def _on_mic(self, f: Frame, msg: MicAudio) -> None:
        if mic_problem(msg.codec, msg.channels, msg.sample_rate, len(msg.data), Codec.PCM16) is not None:
            self.stats.mic_format_errors += 1
            return
        self.stats.mic_chunks += 1
        chunk = MicChunk(msg.data, msg.sample_rate, f.seq, f.device_time_us, False, _now_us())
        for out in self._jitter.push(chunk):
            self._deliver_mic(out)

    def _deliver_mic(self, chunk: MicChunk) -> None:
        for s in list(self._mic_subs):
            s.put(chunk)

    def _on_camera(self, f: Frame, msg: CameraFrameMsg) -> None:
        if msg.led_state != LedState.ON:
            # Privacy rule: a frame not provably taken with the LED on is
            # discarded here, before anything else can see it.
            self.stats.camera_refused_led += 1
            fut = self._captures.get(msg.request_id)
            if fut is not None and not fut.done():
                fut.set_exception(CaptureRefused("glasses sent a frame taken with the capture LED off"))
            return
        if msg.fmt != CameraFrameMsg.FORMAT_JPEG or not msg.data:
            self.stats.bad_payload += 1
            return
        # A frame answering a pending request was taken after that request (the device echoes an
        # id it could not know before): fresh by the host's own clock, whatever times this or an
        # earlier frame claim. Timestamps only order the frames nobody asked for.
        answered = [rid for rid, fut in self._captures.items() if msg.request_id and rid <= msg.request_id
                    and not fut.done()]
        fresh = bool(answered)
        host_now = _now_us()
        device_now = self._device_clock.now_us(host_now)
        limit = None if device_now is None else device_now + CAMERA_CLOCK_TOLERANCE_US
        if not fresh and limit is not None and msg.capture_time_us > limit:
            # Taken "in the future" of the device's own clock: the timestamp is a lie. Believing
            # it would make every honest frame after it look stale (a blind camera).
            self.stats.camera_bad_time += 1
            return
        frame = CameraFrame(
            msg.data,
            msg.width,
            msg.height,
            msg.capture_time_us,
            True,
            msg.request_id,
            f.device_time_us,
            host_now,
            self._session,
        )
        cur = self._latest
        if cur is not None and limit is not None and cur.device_time_us > limit:
            # The newest frame's time no longer fits the device clock (it was believed before
            # the clock was known, or the clock restarted): it cannot order frames any more.
            cur = None
        if cur is not None and cur.session == frame.session and frame.device_time_us <= cur.device_time_us \
                and not fresh:
            # Older than what we already have (reordered/late): never hand it out.
            self.stats.camera_stale_dropped += 1
            return
        self.stats.camera_frames += 1
        if cur is not None and not self._latest_taken:
            self.stats.camera_superseded += 1
        self._latest = frame
        self._latest_taken = False
        if fresh:
            # A frame answering request r was taken after every request <= r was sent.
            for rid in answered:
                self._captures[rid].set_result(frame)
                self._latest_taken = True
        for s in list(self._camera_subs):
            s.put(frame)
            self._latest_taken = True  # handed to a stream consumer


class _Restarted(Exception):
    """Raised inside the reader: the device restarted and the link must handshake again."""
