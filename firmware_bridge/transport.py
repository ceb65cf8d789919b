# SPDX-License-Identifier: GPL-3.0-or-later
"""Link transports: TCP (asyncio streams), serial (pyserial / raw fd), BLE (bleak).

Every transport moves whole protocol frames: :meth:`Transport.send` takes the
wire bytes of one frame (see :func:`firmware_bridge.frame.encode_frame`) and
applies the link framing; :meth:`Transport.recv` returns one or more
CRC-verified :class:`~firmware_bridge.frame.Frame` objects.  Decoder counters
go to ``transport.stats`` (which a caller may share across reconnects).

URLs understood by :func:`open_transport`::

    tcp://HOST:PORT
    serial:///dev/ttyACM0?baud=921600
    ble://AA:BB:CC:DD:EE:FF[?mtu=247]
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .errors import LinkClosed, TransportUnavailable
from .frame import (
    BLE_MIN_MTU,
    DEFAULT_MAX_PAYLOAD,
    CobsDecoder,
    DecoderStats,
    FragmentDecoder,
    Fragmenter,
    Frame,
    StreamDecoder,
    cobs_frame,
)

__all__ = [
    "Transport",
    "TcpTransport",
    "FdTransport",
    "BleTransport",
    "LinkUrl",
    "parse_url",
    "open_transport",
    "serve_tcp",
    "BLE_SERVICE_UUID",
    "BLE_RX_CHAR_UUID",
    "BLE_TX_CHAR_UUID",
]

# GATT layout of the glasses service (random 128-bit UUIDs owned by this project).
BLE_SERVICE_UUID = "7a5e0001-3c1b-4b8e-9f2a-6c1d0e5a9b10"
BLE_RX_CHAR_UUID = "7a5e0002-3c1b-4b8e-9f2a-6c1d0e5a9b10"  # host writes (Write Without Response)
BLE_TX_CHAR_UUID = "7a5e0003-3c1b-4b8e-9f2a-6c1d0e5a9b10"  # device notifies

# TCP write buffer high-water mark: drain() blocks above it, which is what
# turns a slow reader into backpressure instead of unbounded memory.
TCP_WRITE_HIGH_WATER = 512 * 1024


class Transport(ABC):
    """A connected link that carries protocol frames."""

    url: str = ""
    stats: DecoderStats

    @abstractmethod
    async def send(self, frame_bytes: bytes) -> None:
        """Send one encoded frame; waits while the link's buffers are full.

        Raises :class:`LinkClosed` if the link is gone.
        """

    @abstractmethod
    async def recv(self) -> list[Frame]:
        """Wait for and return at least one valid frame.

        Raises :class:`LinkClosed` on EOF or I/O error.  Cancellation-safe:
        bytes already read are kept in the decoder.
        """

    @abstractmethod
    async def close(self) -> None:
        """Close the link (idempotent)."""

    @property
    @abstractmethod
    def buffered(self) -> int:
        """Bytes held by the receive decoder (for memory-bound checks)."""


class TcpTransport(Transport):
    """Frames back to back over a TCP stream (header length delimits frames)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        url: str = "",
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        stats: DecoderStats | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.url = url
        self.stats = stats if stats is not None else DecoderStats()
        self._decoder = StreamDecoder(max_payload, self.stats)
        self._lock = asyncio.Lock()
        self._closed = False
        with contextlib.suppress(Exception):
            writer.transport.set_write_buffer_limits(high=TCP_WRITE_HIGH_WATER)
            sock = writer.get_extra_info("socket")
            if sock is not None:
                # Small control frames (heartbeats, button events) must not
                # wait for Nagle's algorithm.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def buffered(self) -> int:
        return self._decoder.buffered

    async def send(self, frame_bytes: bytes) -> None:
        if self._closed:
            raise LinkClosed("link closed")
        async with self._lock:
            try:
                self._writer.write(frame_bytes)
                await self._writer.drain()
            except (ConnectionError, OSError, RuntimeError) as exc:
                raise LinkClosed(f"send failed: {exc}") from exc

    async def recv(self) -> list[Frame]:
        while True:
            if self._closed:
                raise LinkClosed("link closed")
            try:
                data = await self._reader.read(65536)
            except (ConnectionError, OSError) as exc:
                self._decoder.reset()
                raise LinkClosed(f"receive failed: {exc}") from exc
            if not data:
                # Peer stopped, possibly mid-frame: account for the partial frame.
                self._decoder.reset()
                raise LinkClosed("peer closed the connection")
            frames = self._decoder.feed(data)
            if frames:
                return frames

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)


class FdTransport(Transport):
    """COBS-framed frames over a non-blocking file descriptor (serial port or pty).

    ``on_close`` releases the owner of the fd (e.g. a pyserial ``Serial``).
    """

    def __init__(
        self,
        fd: int,
        *,
        url: str = "",
        on_close: Callable[[], Any] | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        stats: DecoderStats | None = None,
    ) -> None:
        self._fd = fd
        self.url = url
        self._on_close = on_close
        self.stats = stats if stats is not None else DecoderStats()
        self._decoder = CobsDecoder(max_payload, self.stats)
        self._lock = asyncio.Lock()
        self._closed = False
        os.set_blocking(fd, False)

    @property
    def buffered(self) -> int:
        return self._decoder.buffered

    async def _wait(self, add: Callable[..., None], remove: Callable[[int], Any]) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        add(self._fd, ready)
        try:
            await fut
        finally:
            with contextlib.suppress(Exception):
                remove(self._fd)

    async def send(self, frame_bytes: bytes) -> None:
        loop = asyncio.get_running_loop()
        data = memoryview(cobs_frame(frame_bytes))
        async with self._lock:
            while data:
                if self._closed:
                    raise LinkClosed("link closed")
                try:
                    n = os.write(self._fd, data)
                    data = data[n:]
                except BlockingIOError:
                    # Kernel buffer full: wait instead of buffering in Python.
                    await self._wait(loop.add_writer, loop.remove_writer)
                except OSError as exc:
                    raise LinkClosed(f"serial write failed: {exc}") from exc

    async def recv(self) -> list[Frame]:
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise LinkClosed("link closed")
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                await self._wait(loop.add_reader, loop.remove_reader)
                continue
            except OSError as exc:
                # EIO: the other end of a pty went away / USB device unplugged.
                self._decoder.reset()
                raise LinkClosed(f"serial read failed: {exc}") from exc
            if not data:
                self._decoder.reset()
                raise LinkClosed("serial port closed")
            frames = self._decoder.feed(data)
            if frames:
                return frames

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._fd)
            loop.remove_writer(self._fd)
        with contextlib.suppress(Exception):
            if self._on_close is not None:
                self._on_close()
            else:
                os.close(self._fd)


class BleTransport(Transport):
    """Fragmented frames over a BLE GATT link (bleak): host writes RX, device notifies TX."""

    def __init__(
        self,
        client: Any,
        *,
        url: str = "",
        mtu: int = BLE_MIN_MTU,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        stats: DecoderStats | None = None,
        rx_queue: int = 256,
    ) -> None:
        self._client = client
        self.url = url
        self.stats = stats if stats is not None else DecoderStats()
        self._decoder = FragmentDecoder(max_payload, self.stats)
        self._fragmenter = Fragmenter(max(mtu, BLE_MIN_MTU))
        self._queue: asyncio.Queue[Frame | None] = asyncio.Queue(rx_queue)
        self._lock = asyncio.Lock()
        self._closed = False
        self.rx_overflow = 0

    @property
    def buffered(self) -> int:
        return self._decoder.buffered

    def on_notify(self, _sender: Any, data: bytearray) -> None:
        """bleak notification callback: reassemble and queue frames (bounded)."""
        for frame in self._decoder.feed(data):
            if self._queue.full():
                self.rx_overflow += 1  # consumer too slow: drop rather than grow
                continue
            self._queue.put_nowait(frame)

    def on_disconnect(self, _client: Any = None) -> None:
        """bleak disconnect callback: wake the receiver."""
        self._closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def send(self, frame_bytes: bytes) -> None:
        async with self._lock:
            for frag in self._fragmenter.fragment(frame_bytes):
                if self._closed:
                    raise LinkClosed("BLE link closed")
                try:
                    await self._client.write_gatt_char(BLE_RX_CHAR_UUID, frag, response=False)
                except Exception as exc:
                    raise LinkClosed(f"BLE write failed: {exc}") from exc

    async def recv(self) -> list[Frame]:
        frame = await self._queue.get()
        if frame is None:
            raise LinkClosed("BLE device disconnected")
        frames = [frame]
        while not self._queue.empty():
            nxt = self._queue.get_nowait()
            if nxt is None:
                self._closed = True
                break
            frames.append(nxt)
        return frames

    async def close(self) -> None:
        if self._closed and not self._client:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._client.disconnect(), 2.0)


@dataclass(frozen=True, slots=True)
class LinkUrl:
    """A parsed transport URL."""

    scheme: str  # "tcp", "serial" or "ble"
    host: str = ""
    port: int = 0
    path: str = ""
    baud: int = 921600
    address: str = ""
    mtu: int = 0


def parse_url(url: str) -> LinkUrl:
    """Parse a transport URL; raises :class:`TransportUnavailable` if malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise TransportUnavailable(f"not a transport URL: {url!r} (expected tcp://, serial:// or ble://)")
    scheme = scheme.lower()
    if scheme == "tcp":
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError as exc:
            raise TransportUnavailable(f"bad port in {url!r}") from exc
        if not parts.hostname or port is None:
            raise TransportUnavailable(f"tcp URL needs host and port: {url!r}")
        return LinkUrl("tcp", host=parts.hostname, port=port)
    if scheme == "serial":
        path, _, query = rest.partition("?")
        if not path:
            raise TransportUnavailable(f"serial URL needs a device path: {url!r}")
        q = parse_qs(query)
        try:
            baud = int(q.get("baud", ["921600"])[0])
        except ValueError as exc:
            raise TransportUnavailable(f"bad baud rate in {url!r}") from exc
        return LinkUrl("serial", path=path, baud=baud)
    if scheme == "ble":
        addr, _, query = rest.partition("?")
        if not addr:
            raise TransportUnavailable(f"ble URL needs a device address: {url!r}")
        q = parse_qs(query)
        try:
            mtu = int(q.get("mtu", ["0"])[0])
        except ValueError as exc:
            raise TransportUnavailable(f"bad mtu in {url!r}") from exc
        return LinkUrl("ble", address=addr, mtu=mtu)
    raise TransportUnavailable(f"unsupported transport {scheme!r} in {url!r}")


async def open_transport(
    url: str,
    *,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    stats: DecoderStats | None = None,
    timeout: float = 5.0,
) -> Transport:
    """Connect to the device at ``url`` and return a :class:`Transport`.

    Raises :class:`TransportUnavailable` when the transport cannot be used at
    all here (missing package, no BLE adapter, malformed URL) and
    :class:`LinkClosed`/``OSError`` when the peer is simply not reachable
    right now (worth retrying).
    """
    link = parse_url(url)
    if link.scheme == "tcp":
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(link.host, link.port), timeout)
        except asyncio.TimeoutError as exc:
            raise LinkClosed(f"timed out connecting to {link.host}:{link.port}") from exc
        except OSError as exc:
            raise LinkClosed(f"cannot connect to {link.host}:{link.port}: {exc.strerror or exc}") from exc
        return TcpTransport(reader, writer, url=url, max_payload=max_payload, stats=stats)
    if link.scheme == "serial":
        return _open_serial(link, url, max_payload, stats)
    return await _open_ble(link, url, max_payload, stats, timeout)


def _open_serial(link: LinkUrl, url: str, max_payload: int, stats: DecoderStats | None) -> FdTransport:
    try:
        import serial
    except ImportError as exc:
        raise TransportUnavailable("serial transport needs pyserial: pip install pyserial") from exc
    try:
        port = serial.Serial(link.path, baudrate=link.baud, timeout=0, write_timeout=0)
    except (serial.SerialException, OSError, ValueError) as exc:
        err = getattr(exc, "errno", None)
        if err in (errno.ENOENT, errno.ENODEV, errno.EBUSY, errno.EIO, errno.EACCES):
            raise LinkClosed(f"cannot open {link.path}: {os.strerror(err)}") from exc
        raise LinkClosed(f"cannot open {link.path}: {exc}") from exc
    set_vmin1(port.fileno())
    # Bytes queued before we opened belong to no session of ours.
    with contextlib.suppress(Exception):
        port.reset_input_buffer()
    t = FdTransport(port.fileno(), url=url, on_close=port.close, max_payload=max_payload, stats=stats)
    with contextlib.suppress(OSError):
        # A lone delimiter terminates whatever partial frame the device has
        # in its receive buffer, so our first frame decodes cleanly.
        os.write(port.fileno(), b"\x00")
    return t


def set_vmin1(fd: int) -> None:
    """Make non-blocking reads on a tty raise EAGAIN instead of returning b"".

    pyserial's ``timeout=0`` sets VMIN=0, where read() returns b"" when no
    data is waiting; with VMIN=1 b"" keeps meaning "hung up".
    """
    with contextlib.suppress(Exception):
        import termios

        attrs = termios.tcgetattr(fd)
        attrs[6][termios.VMIN] = 1
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)


async def _open_ble(
    link: LinkUrl, url: str, max_payload: int, stats: DecoderStats | None, timeout: float
) -> BleTransport:
    try:
        from bleak import BleakClient
    except ImportError as exc:
        raise TransportUnavailable("BLE transport needs the 'bleak' package: pip install bleak") from exc
    transport: BleTransport | None = None

    def disconnected(_c: Any) -> None:
        if transport is not None:
            transport.on_disconnect()

    try:
        client = BleakClient(link.address, disconnected_callback=disconnected, timeout=timeout)
        await asyncio.wait_for(client.connect(), timeout)
    except asyncio.TimeoutError as exc:
        raise LinkClosed(f"BLE device {link.address} not found within {timeout:g} s") from exc
    except Exception as exc:
        # No adapter, no D-Bus/BlueZ, platform not supported...: not retryable here.
        msg = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, FileNotFoundError):
            msg = "no Bluetooth stack (BlueZ D-Bus system bus not found)"
        raise TransportUnavailable(f"BLE unavailable ({type(exc).__name__}): {msg}") from exc
    mtu = link.mtu or int(getattr(client, "mtu_size", BLE_MIN_MTU) or BLE_MIN_MTU)
    transport = BleTransport(client, url=url, mtu=mtu, max_payload=max_payload, stats=stats)
    try:
        await client.start_notify(BLE_TX_CHAR_UUID, transport.on_notify)
    except Exception as exc:
        with contextlib.suppress(Exception):
            await client.disconnect()
        raise TransportUnavailable(f"BLE device {link.address} lacks the glasses service: {exc}") from exc
    return transport


async def serve_tcp(
    host: str, port: int, on_link: Callable[[TcpTransport], Awaitable[None]], *, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> asyncio.Server:
    """Device side: accept TCP connections and hand each to ``on_link``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        t = TcpTransport(reader, writer, url=f"tcp://{peer}", max_payload=max_payload)
        try:
            await on_link(t)
        finally:
            await t.close()

    return await asyncio.start_server(handle, host, port)
