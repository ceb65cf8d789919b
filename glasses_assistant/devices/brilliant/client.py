# SPDX-License-Identifier: GPL-3.0-or-later
"""The host side of Brilliant Labs Frame and Halo: :class:`BrilliantClient`, shaped like ``BridgeClient``.

The assistant's seams were made for the firmware bridge (``BridgeSource``, ``BridgeSink``,
``BridgeCamera``, the button stream, ``telemetry`` for the battery tool, ``stats``), and this
client offers the same surface, so the whole loop runs unchanged on a pair people can buy:

* microphone: our app streams LC3 (Halo) or PCM16 (Frame) at 16 kHz; decoded here into
  ``MicChunk``s, one bounded drop-oldest queue per :meth:`microphone` iterator;
* speaker (Halo): :meth:`play` encodes the reply to LC3 and sends it in 100 ms messages paced to
  real time plus a small lead; :meth:`stop_playback` drops what the glasses have queued;
* camera (where the glasses have one): :meth:`capture` asks camera.lua for one photo, which the
  vendor's ``RxPhoto`` assembles and turns upright. A photo that arrives when none was asked
  for is dropped and counted: no frame is used without the capture having been requested;
* taps and buttons as ``ButtonEvent``s (Frame's single taps are counted into double taps here);
* battery as ``TelemetrySample``; captions and the answer text on the display (latest wins).

The link is supervised like ``BridgeClient``'s: our app answers a ping every second; three
seconds of silence, or the SDK's disconnect callback, count as a lost link, which is
reconnected with jittered exponential backoff (the app is uploaded and started again). A Lua
error the app caught comes back as one line (logged, counted, kept in :attr:`lua_errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from firmware_bridge.aio import cancel_and_wait
from firmware_bridge.client import (
    AudioFormat,
    BridgeClient,
    ButtonEvent,
    CameraFrame,
    Capabilities,
    LinkCounters,
    TelemetrySample,
    _Subscription,
)
from firmware_bridge.errors import BridgeError
from firmware_bridge.jitter import MicChunk
from firmware_bridge.untrusted import AUDIO_RATE_MAX, LogLimiter

from . import protocol as P
from .codec import Lc3Decoder, Lc3Encoder
from .link import LinkError, VendorLink

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BrilliantStats(LinkCounters):
    """Counters for what the link did, dropped or refused (the names match BridgeStats' where they mean the same)."""

    bad_payload: int = 0
    unknown_type: int = 0
    lua_errors: int = 0
    mic_chunks: int = 0
    mic_bytes: int = 0
    mic_format_errors: int = 0
    mic_queue_dropped: int = 0
    buttons: int = 0
    buttons_dropped: int = 0
    buttons_unmapped: int = 0
    telemetry: int = 0
    capture_requests: int = 0
    capture_timeouts: int = 0
    camera_frames: int = 0
    camera_unrequested: int = 0
    camera_oversize: int = 0
    speaker_chunks: int = 0
    speaker_bytes: int = 0
    speaker_unsupported: int = 0
    display_updates: int = 0
    display_superseded: int = 0
    send_failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(asdict(self))


def _now_us() -> int:
    return time.monotonic_ns() // 1000


class BrilliantClient:
    """A pair of Brilliant Labs glasses (or the emulator), with ``BridgeClient``'s interface.

    ``make`` builds a BrilliantMsg-shaped object per connection (see :mod:`.link`); ``label`` is
    what errors call the device (``brilliant://Frame 4F``, ``halo-emulator``). ``mic_queue`` is in
    chunks: our app sends what the microphone has, typically one 10 ms LC3 frame, so 500 is 5 s;
    ``mic_queue_bytes`` bounds the same queue in bytes (BridgeClient's default), so that a few
    oversized PCM messages cannot hold more audio than that either.
    """

    def __init__(self, make: Callable[[], Any], *, label: str, name: str | None = None,
                 connect_timeout: float = 20.0, ping_interval: float = 1.0, link_timeout: float = 3.0,
                 backoff_initial: float = 0.2, backoff_max: float = 5.0, mic_queue: int = 500,
                 mic_queue_bytes: int = 5 * 2 * AUDIO_RATE_MAX, button_queue: int = 64,
                 speaker_chunk_ms: int = 100, speaker_lead: float = 0.3,
                 speaker_volume: int = 80, tap_window: float = 0.3, mic_rate: int = P.MIC_RATE) -> None:
        self.url = label
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.link_timeout = link_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.speaker_chunk_ms = speaker_chunk_ms
        self.speaker_lead = speaker_lead
        self.speaker_volume = speaker_volume
        self.tap_window = tap_window
        self.mic_rate = mic_rate
        self.stats = BrilliantStats()
        self.capabilities: Capabilities | None = None
        self.hello: P.Hello | None = None
        self.telemetry: TelemetrySample | None = None
        self.led_on: bool | None = None
        """What the assistant asked the capture light to be (Brilliant's app API has no light of its own)."""
        self.lua_errors: deque[str] = deque(maxlen=20)
        self.device_name = ""
        self._link = VendorLink(make, name=name, label=label, on_data=self._from_any_thread, on_lost=self._lost)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._hello = asyncio.Event()
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._lost_flag = asyncio.Event()
        self._last_rx = 0.0
        self._send_lock = asyncio.Lock()
        self._mic_subs: list[_Subscription[MicChunk]] = []
        self._button_subs: list[_Subscription[ButtonEvent]] = []
        self._mic_queue = mic_queue
        self._mic_queue_bytes = mic_queue_bytes
        self._button_queue = button_queue
        self._decoder: Lc3Decoder | None = None
        self._mic_seq = 0
        self._taps = 0
        self._tap_timer: asyncio.TimerHandle | None = None
        self._photo: Any = None  # brilliant_msg.RxPhoto, made on first use
        self._photo_queue: asyncio.Queue[bytes] | None = None
        self._photo_bytes = 0
        self._capture_pending = False
        self._play_gen = 0
        self._display_text: str | None = None
        self._display_wake = asyncio.Event()
        self._display_task: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self._log_limit = LogLimiter()  # a Lua error in a loop costs a few lines, not megabytes

    # ------------------------------------------------------------------ lifecycle
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        """Connect, start our app and wait for its hello, retrying until ``connect_timeout``.

        Raises :class:`BridgeError` with one line: no adapter and a missing SDK at once, no device
        or no answer once the time is up."""
        if self._supervisor is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._closing = False
        deadline = time.monotonic() + self.connect_timeout
        backoff = self.backoff_initial
        while True:
            try:
                await asyncio.wait_for(self._connect_once(), max(0.1, deadline - time.monotonic()))
                break
            except LinkError as err:
                self.stats.connect_failures += 1
                if err.permanent or time.monotonic() + backoff >= deadline:
                    raise BridgeError(str(err)) from None
                last = err
            except asyncio.TimeoutError:
                await self._link.close()
                raise BridgeError(f"{self.url} did not answer within {self.connect_timeout:g} s") from None
            log.debug("connect to %s failed: %s", self.url, last)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max)
        self._supervisor = asyncio.create_task(self._supervise(), name="brilliant-supervisor")
        self._display_task = asyncio.create_task(self._display_loop(), name="brilliant-display")

    async def close(self) -> None:
        """Stop our app, disconnect, end the iterators."""
        self._closing = True
        await cancel_and_wait(self._supervisor, self._display_task)
        self._supervisor = self._display_task = None
        if self._connected.is_set():
            with contextlib.suppress(LinkError, asyncio.TimeoutError):
                await asyncio.wait_for(self._send(P.STOP, b"\x00"), 2.0)
        self._connected.clear()
        await self._link.close()
        for mic in list(self._mic_subs):
            mic.end()
        for button in list(self._button_subs):
            button.end()

    async def wait_connected(self, timeout: float | None = None) -> None:
        if self._connected.is_set():
            return
        if self._closing:
            raise BridgeError(f"{self.url} is closed")
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except asyncio.TimeoutError:
            raise BridgeError(f"glasses not connected ({self.url}) within {timeout:g} s") from None

    async def _connect_once(self) -> None:
        self._hello.clear()
        self._lost_flag.clear()
        await self._link.open()
        self.device_name = self._link.device_name
        self._last_rx = time.monotonic()
        try:
            await asyncio.wait_for(self._hello.wait(), 5.0)
        except asyncio.TimeoutError:
            await self._link.close()
            raise LinkError(f"{self.url}: our app started but never said hello") from None
        hello = self.hello
        assert hello is not None
        codec = hello.mic_codec
        self._decoder = Lc3Decoder() if codec == "lc3" else None
        await self._link.send(P.START, P.start_payload(codec, self.mic_rate, self.speaker_volume))
        self.stats.frames_tx += 1
        self.stats.connects += 1
        self._connected.set()
        if self._display_text is not None:
            self._display_wake.set()  # what was on the display before the drop is shown again
        log.info("connected to %s (%s, firmware %s, microphone %s)", self.url, hello.hardware, hello.firmware, codec)

    def _lost(self) -> None:
        """The SDK saw the link drop (any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._lost_flag.set)

    async def _supervise(self) -> None:
        backoff = self.backoff_initial
        while not self._closing:
            if self._connected.is_set():
                await self._watch()
                if self._closing:
                    break
                self._connected.clear()
                self.stats.link_lost += 1
                if self._capture_pending and self._photo_queue is not None:
                    self._capture_pending = False
                await self._link.close()
                log.warning("lost the link to %s; reconnecting", self.url)
                continue
            try:
                await asyncio.wait_for(self._connect_once(), self.connect_timeout)
                self.stats.reconnects += 1
                backoff = self.backoff_initial
            except (LinkError, asyncio.TimeoutError) as err:
                self.stats.connect_failures += 1
                log.debug("reconnect to %s failed: %s", self.url, err)
                with contextlib.suppress(LinkError):
                    await self._link.close()
                # Jittered exponential backoff, as BridgeClient: hosts don't retry in lockstep.
                await asyncio.sleep(backoff * (0.75 + 0.5 * self._rng.random()))
                backoff = min(backoff * 2, self.backoff_max)

    async def _watch(self) -> None:
        """Ping while the link lives; return when it is lost (the SDK said so, or our app fell silent)."""
        nonce = 0
        while not self._lost_flag.is_set() and not self._closing:
            if time.monotonic() - self._last_rx > self.link_timeout:
                self.stats.heartbeat_timeouts += 1
                return
            nonce = (nonce + 1) & 0xFF
            with contextlib.suppress(LinkError, asyncio.TimeoutError):
                await asyncio.wait_for(self._send(P.PING, bytes([nonce])), self.link_timeout)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._lost_flag.wait(), self.ping_interval)

    # ------------------------------------------------------------------ from the glasses
    def _from_any_thread(self, data: bytes) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._dispatch, data)

    def _dispatch(self, data: bytes) -> None:
        if not data:
            return
        self._last_rx = time.monotonic()
        self.stats.frames_rx += 1
        code, payload = data[0], data[1:]
        try:
            if code == P.AUDIO:
                self._on_audio(payload)
            elif code == P.AUDIO_FINAL:
                pass  # the microphone stopped (the app only stops it when told to)
            elif code in (P.PHOTO, P.PHOTO_FINAL):
                self._on_photo(data)
            elif code == P.TAP:
                self._on_tap(P.parse_tap(payload))
            elif code == P.BUTTON:
                self._on_button(P.parse_button(payload))
            elif code == P.BATTERY:
                self._on_battery(payload)
            elif code == P.HELLO:
                self._on_hello(payload)
            elif code == P.LUA_ERROR:
                line = P.parse_lua_error(payload)
                self.stats.lua_errors += 1
                self.lua_errors.append(line)
                if self._log_limit.allow("lua"):
                    log.warning("Lua error on %s: %s%s", self.url, line, self._log_limit.note("lua"))
            elif code == P.PONG:
                pass  # any message proves the link: _last_rx is set above
            else:
                self.stats.unknown_type += 1
        except Exception as err:  # a bug or a hostile message must not stop the link
            self.stats.bad_payload += 1
            if self._log_limit.allow("payload"):
                log.warning("message 0x%02x from %s: %s%s", code, self.url, P.printable(str(err)),
                            self._log_limit.note("payload"))

    def _on_hello(self, payload: bytes) -> None:
        hello = P.parse_hello(payload)
        if hello is None:
            self.stats.bad_payload += 1
            return
        self.hello = hello
        self.capabilities = Capabilities(
            device_id=self.device_name or hello.hardware, firmware_version=hello.firmware, protocol_version=(0, 0),
            camera_resolutions=((720, 720),) if hello.has_camera else (),
            audio_format=AudioFormat(hello.mic_codec, self.mic_rate, 1, P.LC3_FRAME_MS),
            speaker_sample_rates=(P.MIC_RATE,) if hello.has_speaker else (), has_camera=hello.has_camera,
            has_speaker=hello.has_speaker, has_display=True, has_microphone=True, has_buttons=True,
            max_payload=hello.mtu,
        )
        self._hello.set()

    def _on_audio(self, payload: bytes) -> None:
        if not payload or len(payload) > P.MAX_LINE:
            self.stats.mic_format_errors += 1
            return
        if self._decoder is not None:
            try:
                pcm = self._decoder.decode(payload)
            except ValueError:
                self.stats.mic_format_errors += 1
                return
        elif len(payload) % 2:
            self.stats.mic_format_errors += 1
            return
        else:
            pcm = payload
        self.stats.mic_chunks += 1
        self.stats.mic_bytes += len(payload)
        chunk = MicChunk(pcm, self.mic_rate, self._mic_seq, _now_us(), False, _now_us())
        self._mic_seq += 1
        for s in list(self._mic_subs):
            s.put(chunk)

    def _on_tap(self, kind: str | None) -> None:
        if kind is None:
            self.stats.bad_payload += 1
            return
        if self.hello is not None and self.hello.is_frame:
            # Frame reports every tap alone: taps within the window are one gesture.
            self._taps += 1
            if self._tap_timer is not None:
                self._tap_timer.cancel()
            assert self._loop is not None
            self._tap_timer = self._loop.call_later(self.tap_window, self._taps_done)
            return
        self._button("tap" if kind == "tap" else "double_tap")

    def _taps_done(self) -> None:
        taps, self._taps = self._taps, 0
        self._button("tap" if taps == 1 else "double_tap")

    def _on_button(self, kind: str | None) -> None:
        if kind is None:
            self.stats.bad_payload += 1
        elif kind == "long_press":
            self.stats.buttons_unmapped += 1  # one event, no release: not a hold-to-talk
        else:
            self._button(kind)

    def _button(self, kind: str) -> None:
        self.stats.buttons += 1
        event = ButtonEvent(kind, 0, _now_us(), _now_us())
        for s in list(self._button_subs):
            s.put(event)

    def _on_battery(self, payload: bytes) -> None:
        parsed = P.parse_battery(payload)
        if parsed is None:
            self.stats.bad_payload += 1
            return
        percent, charging = parsed
        if charging is None:  # the vendor's periodic report: keep what we last knew about charging
            charging = bool(self.telemetry.charging) if self.telemetry is not None else False
        self.stats.telemetry += 1
        # The glasses report no temperature: NaN and "unknown", which the battery tool leaves out.
        self.telemetry = TelemetrySample(float(percent), charging, 0, math.nan, "unknown", _now_us(), _now_us())

    def _on_photo(self, data: bytes) -> None:
        if not self._capture_pending or self._photo is None:
            self.stats.camera_unrequested += 1  # privacy: only a photo that was asked for is used
            return
        self._photo_bytes += len(data) - 1
        if self._photo_bytes > P.MAX_PHOTO_BYTES:
            self.stats.camera_oversize += 1
            self._capture_pending = False
            self._photo._image_data.clear()
            return
        if data[0] == P.PHOTO_FINAL:
            self._capture_pending = False
        self._photo.handle_data(data)

    # ------------------------------------------------------------------ streams
    # The bounded drop-oldest iterators are BridgeClient's own: the same attributes back them here.
    microphone = BridgeClient.microphone
    buttons = BridgeClient.buttons
    _count = BridgeClient._count

    # ------------------------------------------------------------------ to the glasses
    async def _send(self, code: int, payload: bytes) -> None:
        if not self._connected.is_set() and code != P.STOP:
            await self.wait_connected(self.connect_timeout)
        async with self._send_lock:  # one message at a time: Frame's flow control acknowledges each packet
            try:
                await self._link.send(code, payload)
            except LinkError:
                self.stats.send_failures += 1
                raise
        self.stats.frames_tx += 1

    async def play(self, pcm: bytes, sample_rate: int) -> None:
        """PCM16 mono to the speaker (16 kHz), as LC3 in ``speaker_chunk_ms`` messages paced to real time."""
        if len(pcm) % 2:
            raise ValueError("PCM16 data must have an even number of bytes")
        caps = self.capabilities
        if caps is None or not caps.has_speaker:
            self.stats.speaker_unsupported += 1
            return
        audio = np.frombuffer(pcm, "<i2")
        if sample_rate != P.MIC_RATE:
            from ...audio.io import resample

            audio = (np.clip(resample(audio.astype(np.float32) / 32768.0, sample_rate, P.MIC_RATE), -1, 1)
                     * 32767).astype(np.int16)
        gen = self._play_gen
        encoder = Lc3Encoder()
        step = P.MIC_RATE * self.speaker_chunk_ms // 1000
        loop = asyncio.get_running_loop()
        start, sent_s = loop.time(), 0.0
        for off in range(0, len(audio), step):
            piece = audio[off:off + step]
            data = encoder.encode(piece) + (encoder.flush() if off + step >= len(audio) else b"")
            ahead = sent_s - (loop.time() - start) - self.speaker_lead
            if ahead > 0:
                await asyncio.sleep(ahead)
            if gen != self._play_gen:
                return  # stop_playback() was called
            try:
                await self._send(P.SPEAKER_DATA, data)
            except (LinkError, BridgeError):
                return  # the link went: this reply's audio is lost, the next one is sent after the reconnect
            self.stats.speaker_chunks += 1
            self.stats.speaker_bytes += len(data)
            sent_s += len(piece) / P.MIC_RATE

    async def stop_playback(self) -> None:
        self._play_gen += 1
        if self.capabilities is not None and self.capabilities.has_speaker and self.connected:
            with contextlib.suppress(LinkError, BridgeError):
                await self._send(P.SPEAKER_STOP, b"\x00")

    async def caption(self, text: str, *, kind: int = 1, language: str = "", final: bool = True,
                      caption_id: int = 0) -> bool:
        """``BridgeClient.caption``'s shape: the text on the display (the newest words when it is long)."""
        self.show_text(text)
        return True

    def show_text(self, text: str) -> None:
        """Put ``text`` on the display soon; never waits (the newest text wins over one not yet sent)."""
        if self._display_text is not None and self._display_wake.is_set():
            self.stats.display_superseded += 1
        self._display_text = text
        self._display_wake.set()

    async def _display_loop(self) -> None:
        while not self._closing:
            await self._display_wake.wait()
            self._display_wake.clear()
            text, hello = self._display_text, self.hello
            if text is None or hello is None:
                continue
            layout = P.layout_for(hello)
            lines = P.wrap_for_display(text, layout)
            try:
                await self._send(P.TEXT, P.text_payload(lines, x=layout.x, y=layout.y, spacing=layout.line_height))
                self.stats.display_updates += 1
            except (LinkError, BridgeError):
                pass  # shown again after the reconnect
            await asyncio.sleep(0.1)  # at most ten updates a second: the link is for the audio first

    async def set_capture_led(self, on: bool, timeout: float = 2.0) -> None:
        """Recorded only: Frame's camera has no light the app can drive, and Halo shows nothing either."""
        self.led_on = on

    async def capture(self, timeout: float = 3.0, *, width: int = 0, height: int = 0) -> CameraFrame:
        """Ask for one photo now and wait for it (``RxPhoto`` assembles it and turns it upright)."""
        caps = self.capabilities
        if caps is None or not caps.has_camera:
            raise BridgeError(f"{self.url} has no camera")
        from brilliant_msg import RxPhoto, TxCaptureSettings

        # 512 px: the detector looks at 416 px and signs stay readable, at half the bytes of 720 px (which
        # cost over a second more on the link for every "what am I looking at?").
        resolution = max(256, min(720, (width or 512) // 2 * 2))
        if self._photo is None:
            self._photo = RxPhoto(upright=True)
            # attach() makes its queue on this loop; we feed it ourselves, after the privacy checks.
            self._photo_queue = await self._photo.attach(self._link.msg)
        self._link.msg.unregister_data_response_handler(self._photo)
        assert self._photo_queue is not None
        while not self._photo_queue.empty():
            self._photo_queue.get_nowait()
        self._photo._image_data.clear()
        self._photo_bytes = 0
        self.stats.capture_requests += 1
        self._capture_pending = True
        sent = _now_us()
        try:
            await self._send(P.CAPTURE, TxCaptureSettings(resolution=resolution, quality_index=3).pack())
            jpeg = await asyncio.wait_for(self._photo_queue.get(), timeout)
        except asyncio.TimeoutError:
            self.stats.capture_timeouts += 1
            raise BridgeError(f"no photo from {self.url} within {timeout:g} s") from None
        finally:
            self._capture_pending = False
        self.stats.camera_frames += 1
        import io

        from PIL import Image

        with Image.open(io.BytesIO(jpeg)) as im:
            w, h = im.size
        return CameraFrame(jpeg, w, h, sent, True, self.stats.capture_requests, sent, _now_us())

    async def request_battery(self) -> None:
        """Ask for a battery report now (the app also sends one at start and every minute)."""
        await self._send(P.BATTERY_REQUEST, b"\x00")
