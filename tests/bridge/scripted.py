# SPDX-License-Identifier: GPL-3.0-or-later
"""A scripted pair of glasses on 127.0.0.1: the device side of the protocol, driven by a test.

Unlike ``glasses-sim`` it does only what the test says, and can say anything: every frame it
sends is a valid-CRC frame whose fields the test chooses (:meth:`Session.send`,
:meth:`Session.send_raw`). Each accepted connection becomes a :class:`Session` on
:attr:`ScriptedDevice.sessions`; a session answers the host's Hello (with the device's
``hello``: a :class:`Hello` or raw payload bytes), LedSet, CaptureRequest (with ``jpeg``,
when set) and sends heartbeats, and it records what the host sent (speaker audio, captures).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.errors import LinkClosed, MessageDecodeError
from firmware_bridge.frame import FLAG_END_OF_STREAM, encode_frame
from firmware_bridge.messages import (
    CameraFrameMsg,
    CaptureRequest,
    Codec,
    Feature,
    Heartbeat,
    Hello,
    LedReport,
    LedSet,
    LedState,
    Message,
    MicAudio,
    Role,
    SpeakerAudio,
    decode_message,
)
from firmware_bridge.transport import Transport, serve_tcp

FEATURES = Feature.CAMERA | Feature.SPEAKER | Feature.MICROPHONE | Feature.BUTTONS | Feature.CAPTURE_LED


def device_hello(**kw: Any) -> Hello:
    """An ordinary device Hello (what glasses-sim announces), with ``kw`` changed."""
    base: dict[str, Any] = {"role": Role.DEVICE, "device_id": "scripted", "firmware_version": "test-1",
                            "features": FEATURES, "speaker_sample_rates": (16000, 22050),
                            "camera_resolutions": ((640, 480),)}
    return Hello(**{**base, **kw})


def now_us() -> int:
    return time.monotonic_ns() // 1000


@dataclass
class Session:
    """One connection from the host."""

    link: Transport
    hello: Hello | bytes
    jpeg: bytes | None
    handshaken: asyncio.Event = field(default_factory=asyncio.Event)
    speaker_bytes: int = 0
    speaker_clips: int = 0
    speaker_rates: set[int] = field(default_factory=set)
    captures: list[CaptureRequest] = field(default_factory=list)
    closed: bool = False
    mic_seq: int = 0
    led: bool = False

    async def send(self, msg: Message, *, seq: int | None = None, t: int | None = None, flags: int = 0,
                   stream: int | None = None, version: int = 1) -> None:
        """Send ``msg`` with these header fields (defaults: the next mic seq for audio, the clock now)."""
        if seq is None:
            seq = self.mic_seq if isinstance(msg, MicAudio) else 0
            if isinstance(msg, MicAudio):
                self.mic_seq = (self.mic_seq + 1) & 0xFFFFFFFF
        await self.send_raw(encode_frame(msg.TYPE, msg.encode_payload(), seq=seq & 0xFFFFFFFF,
                                         device_time_us=(now_us() if t is None else t) & 0xFFFFFFFFFFFFFFFF,
                                         stream=msg.STREAM if stream is None else stream, flags=flags,
                                         version=version))

    async def send_raw(self, frame: bytes) -> None:
        if self.closed:
            raise LinkClosed("session closed")
        await self.link.send(frame)

    async def mic(self, pcm16: bytes, *, speed: float = 1.0, chunk_bytes: int = 640) -> None:
        """Stream PCM16 16 kHz mono as 20 ms MicAudio chunks, paced at ``speed`` times real time."""
        start = time.monotonic()
        for n, off in enumerate(range(0, len(pcm16), chunk_bytes)):
            due = start + n * (chunk_bytes / 32000) / speed
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            await self.send(MicAudio(Codec.PCM16, 1, 16000, pcm16[off : off + chunk_bytes]))

    async def close(self) -> None:
        self.closed = True
        await self.link.close()


class ScriptedDevice:
    """Accepts connections on 127.0.0.1 and hands each to the test as a :class:`Session`."""

    def __init__(self, hello: Hello | bytes | Callable[[int], Hello | bytes] | None = None, *,
                 jpeg: bytes | None = None) -> None:
        self.hello = hello if hello is not None else device_hello()
        self.jpeg = jpeg
        self.sessions: asyncio.Queue[Session] = asyncio.Queue()
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None
        self.url = ""

    async def start(self) -> str:
        self.server = await serve_tcp("127.0.0.1", 0, self._serve)
        self.url = f"tcp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self.url

    async def next_session(self, timeout: float = 30.0) -> Session:
        """The next connection that completed the handshake."""
        session = await asyncio.wait_for(self.sessions.get(), timeout)
        await asyncio.wait_for(session.handshaken.wait(), timeout)
        return session

    async def _serve(self, t: Transport) -> None:
        self.connections += 1
        hello = self.hello(self.connections) if callable(self.hello) else self.hello
        session = Session(t, hello, self.jpeg)
        self.sessions.put_nowait(session)
        beat = asyncio.create_task(self._heartbeats(session))
        try:
            while not session.closed:
                try:
                    frames = await t.recv()
                except LinkClosed:
                    return
                for f in frames:
                    try:
                        msg = decode_message(f)
                    except MessageDecodeError:
                        continue
                    await self._answer(session, msg, f.flags)
        except LinkClosed:
            return
        finally:
            session.closed = True
            beat.cancel()
            with contextlib.suppress(BaseException):
                await beat

    async def _answer(self, s: Session, msg: Message, flags: int) -> None:
        if isinstance(msg, Hello):
            payload = s.hello if isinstance(s.hello, bytes) else s.hello.encode_payload()
            await s.send_raw(encode_frame(Hello.TYPE, payload, device_time_us=now_us()))
            await s.send(LedReport(s.led))
            s.handshaken.set()
        elif isinstance(msg, LedSet):
            s.led = msg.on
            await s.send(LedReport(msg.on))
        elif isinstance(msg, CaptureRequest):
            s.captures.append(msg)
            if s.jpeg is not None and s.led:
                t = now_us()
                await s.send(CameraFrameMsg(msg.request_id, 640, 480, LedState.ON, CameraFrameMsg.FORMAT_JPEG, t,
                                            s.jpeg), t=t)
        elif isinstance(msg, SpeakerAudio):
            s.speaker_bytes += len(msg.data)
            s.speaker_rates.add(msg.sample_rate)
            s.speaker_clips += bool(flags & FLAG_END_OF_STREAM)

    async def _heartbeats(self, s: Session) -> None:
        n = 0
        with contextlib.suppress(LinkClosed):
            while not s.closed:
                await asyncio.sleep(0.5)
                n += 1
                await s.send(Heartbeat(n))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
