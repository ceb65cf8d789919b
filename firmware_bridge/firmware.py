# SPDX-License-Identifier: GPL-3.0-or-later
"""Glasses firmware updates over the bridge: the signed image format and the host-side update.

Image layout (little-endian)::

    0   4  magic "GFWI"
    4   1  format (1)
    5   1  flags: bit 0 FAIL_FIRST_HEARTBEAT (test images: the virtual glasses crash before
           the new firmware's first heartbeat, so the rollback path can be tested)
    6   2  header length (bytes, from offset 0, strings included)
    8   4  counter (u32, monotonic: the glasses refuse a lower one unless forced)
    12  8  body size (u64)
    20  32 body sha256
    52  .. version (u16 length + UTF-8), device model (u16 length + UTF-8), key id (8 bytes)
    H   n  body
    H+n 64 Ed25519 signature over b"glasses-firmware-v1\\n" + header

The header carries the body's sha256, the version and the device model, so the signature
covers all three (and the counter and flags). The transfer (docs/protocol.md §8) also checks
a CRC32C per chunk and the sha256 of the whole image file.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .checksum import crc32c
from .client import BridgeClient
from .errors import BridgeError
from .messages import FwBegin, FwChunk, FwEnd, FwQuery, FwState, FwStatus, Message
from .untrusted import printable

__all__ = [
    "FirmwareError",
    "FirmwareImage",
    "UpdateResult",
    "build_image",
    "parse_image",
    "verify_image_signature",
    "update_firmware",
    "FLAG_FAIL_FIRST_HEARTBEAT",
]

MAGIC = b"GFWI"
FORMAT = 1
FLAG_FAIL_FIRST_HEARTBEAT = 0x01
SIG_DOMAIN = b"glasses-firmware-v1\n"
DEFAULT_CHUNK = 32 * 1024
_FIXED = struct.Struct("<4sBBHIQ32s")


class FirmwareError(BridgeError):
    """A firmware image is malformed, unsigned, refused, or the update failed (one line)."""


@dataclass(frozen=True)
class FirmwareImage:
    """A parsed image (signature not necessarily checked: see :func:`verify_image_signature`)."""

    version: str
    device_model: str
    counter: int
    flags: int
    body: bytes
    key_id: bytes
    header: bytes
    signature: bytes

    @property
    def fail_first_heartbeat(self) -> bool:
        return bool(self.flags & FLAG_FAIL_FIRST_HEARTBEAT)


def _key_id(public_raw: bytes) -> bytes:
    return hashlib.sha256(public_raw).digest()[:8]


def _str(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<H", len(raw)) + raw


def build_image(body: bytes, *, version: str, device_model: str, counter: int, sign: Callable[[bytes], bytes],
                public_raw: bytes, fail_first_heartbeat: bool = False) -> bytes:
    """A signed image; ``sign`` is the Ed25519 private key's sign function."""
    flags = FLAG_FAIL_FIRST_HEARTBEAT if fail_first_heartbeat else 0
    rest = _str(version) + _str(device_model) + _key_id(public_raw)
    hlen = _FIXED.size + len(rest)
    header = _FIXED.pack(MAGIC, FORMAT, flags, hlen, counter, len(body), hashlib.sha256(body).digest()) + rest
    return header + body + sign(SIG_DOMAIN + header)


def parse_image(data: bytes, trusted: list[bytes] | None = None) -> FirmwareImage:
    """Parse (and, with ``trusted`` raw public keys, verify) an image; FirmwareError names the problem."""
    if len(data) < _FIXED.size + 64:
        raise FirmwareError("firmware image is too short")
    magic, fmt, flags, hlen, counter, size, body_sha = _FIXED.unpack_from(data)
    if magic != MAGIC or fmt != FORMAT:
        raise FirmwareError("not a glasses firmware image (bad magic or format)")
    if hlen + size + 64 != len(data) or hlen < _FIXED.size + 12:
        raise FirmwareError("firmware image sizes do not add up (truncated or corrupt)")
    pos = _FIXED.size
    strings = []
    for _ in range(2):
        if pos + 2 > hlen:
            raise FirmwareError("firmware image header is cut short (corrupt)")
        (n,) = struct.unpack_from("<H", data, pos)
        if pos + 2 + n > hlen:
            raise FirmwareError("firmware image header strings run past the header (corrupt)")
        # Shown to the user and compared with what the glasses report: escaped, never raw.
        strings.append(printable(data[pos + 2 : pos + 2 + n].decode(errors="replace"), 64))
        pos += 2 + n
    if pos + 8 > hlen:
        raise FirmwareError("firmware image header has no key id (corrupt)")
    kid = data[pos : pos + 8]
    header, body, sig = data[:hlen], data[hlen : hlen + size], data[hlen + size :]
    if hashlib.sha256(body).digest() != body_sha:
        raise FirmwareError("firmware body fails its sha256 (tampered or corrupt)")
    img = FirmwareImage(strings[0], strings[1], counter, flags, body, kid, header, sig)
    if trusted is not None:
        verify_image_signature(img, trusted)
    return img


def verify_image_signature(img: FirmwareImage, trusted: list[bytes]) -> None:
    """Check the signature with the trusted key the image names; FirmwareError otherwise."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys = {_key_id(k): k for k in trusted}
    if img.key_id not in keys:
        raise FirmwareError(f"firmware is signed by unknown key {img.key_id.hex()}")
    try:
        Ed25519PublicKey.from_public_bytes(keys[img.key_id]).verify(img.signature, SIG_DOMAIN + img.header)
    except InvalidSignature:
        raise FirmwareError("bad signature on the firmware image") from None


@dataclass
class UpdateResult:
    """How an update ended: confirmed on the new firmware, or rolled back.

    ``confirmed`` is True only when the glasses confirmed *this* image and now run its version:
    what the glasses claim is untrusted, and a "confirmed" with another version means the new
    firmware is not what runs.
    """

    confirmed: bool
    state: str
    running_version: str
    message: str
    chunks_total: int
    chunks_sent: int
    chunks_already_there: int
    bytes_sent: int
    seconds: float

    def summary(self) -> str:
        head = (f"firmware {self.running_version} confirmed" if self.confirmed
                else f"firmware update {self.state}: {self.message or 'not confirmed'} "
                     f"(running {self.running_version or '?'})")
        return (f"{head}; sent {self.chunks_sent}/{self.chunks_total} chunks ({self.bytes_sent} bytes, "
                f"{self.chunks_already_there} already on the glasses) in {self.seconds:.1f} s")


def _bits(bitmap: bytes, n: int) -> list[bool]:
    return [bool(bitmap[i // 8] >> (i % 8) & 1) if i // 8 < len(bitmap) else False for i in range(n)]


async def update_firmware(
    url_or_client: str | BridgeClient,
    image: bytes,
    *,
    force: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
    timeout: float = 120.0,
    progress: Callable[[str], None] = lambda _m: None,
    stop_after_chunks: int | None = None,
) -> UpdateResult:
    """Send ``image`` to the glasses, let them apply it, wait for the confirm or the rollback.

    Resumable: the glasses keep received chunks (keyed by the image's sha256), FwBegin's
    answer says which they hold, and only the rest is sent; a link lost mid-way is
    reconnected by the client and the missing chunks go again. ``stop_after_chunks`` stops
    sending after that many chunks and gives up (tests: a host that dies mid-transfer).
    """
    img = parse_image(image)  # malformed images stop here; the glasses check the signature
    t0 = time.monotonic()
    deadline = t0 + timeout
    own = not isinstance(url_or_client, BridgeClient)
    if isinstance(url_or_client, BridgeClient):
        client = url_or_client
    else:
        client = BridgeClient(url_or_client, connect_timeout=10.0)
    sha = hashlib.sha256(image).digest()
    n = (len(image) + chunk_size - 1) // chunk_size
    sent = sent_bytes = 0
    try:
        if own:
            try:
                await client.start()
            except BridgeError as err:
                raise FirmwareError(f"cannot reach the glasses: {err}") from None

        async def ask(msg: Message, what: str) -> FwStatus:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FirmwareError(f"firmware update timed out ({what})")
            return await client.firmware_request(msg, timeout=min(left, 3.0))

        status = await _retry(ask, FwBegin(sha, len(image), chunk_size, 1 if force else 0), "begin", deadline)
        if status.state == FwState.REFUSED:
            raise FirmwareError(f"glasses refused the firmware: {printable(status.message)}")
        have = _bits(status.bitmap, n)
        already = sum(have)
        progress(f"sending {n - already} of {n} chunks ({already} already on the glasses)")
        for _round in range(8):
            missing = [i for i in range(n) if not have[i]]
            if not missing:
                break
            for i in missing:
                data = image[i * chunk_size : (i + 1) * chunk_size]
                if stop_after_chunks is not None and sent >= stop_after_chunks:
                    raise FirmwareError(f"stopped after {sent} chunks (test cut)")
                if time.monotonic() > deadline:
                    raise FirmwareError(f"firmware update timed out after {sent} chunks")
                try:
                    await client.firmware_send(FwChunk(i, crc32c(data), data),
                                               timeout=max(0.1, deadline - time.monotonic()))
                except BridgeError:
                    # Lost with the link; the client reconnects and the next status lists it as missing.
                    await asyncio.sleep(0.05)
                    continue
                sent += 1
                sent_bytes += len(data)
            status = await _retry(ask, FwQuery(), "query", deadline)
            if status.image_sha256 != sha:
                status = await _retry(ask, FwBegin(sha, len(image), chunk_size, 1 if force else 0), "begin", deadline)
            have = _bits(status.bitmap, n)
        else:
            raise FirmwareError("chunks keep getting lost; giving up")
        status = await _retry(ask, FwEnd(sha), "end", deadline)
        if status.state == FwState.REFUSED:
            raise FirmwareError(f"glasses refused the firmware: {printable(status.message)}")
        progress(f"image verified by the glasses; applying {img.version} and rebooting")
        # The glasses reboot (the link drops; the client reconnects) and confirm or roll back.
        while True:
            if time.monotonic() > deadline:
                raise FirmwareError(f"no confirmation of firmware {img.version} within {timeout:g} s")
            try:
                status = await client.firmware_request(FwQuery(), timeout=1.0)
            except (BridgeError, asyncio.TimeoutError):
                await asyncio.sleep(0.1)
                continue
            if status.state in (FwState.CONFIRMED, FwState.ROLLED_BACK) and status.image_sha256 == sha:
                break
            await asyncio.sleep(0.1)
    finally:
        if own:
            await client.close()
    running, message = printable(status.running_version, 64), printable(status.message)
    state = FwState.NAMES.get(status.state, str(status.state))
    confirmed = status.state == FwState.CONFIRMED and running == img.version
    if status.state == FwState.CONFIRMED and not confirmed:
        state = "not-confirmed"
        message = f"the glasses say confirmed but run {running or '?'}, not the image's {img.version}"
    return UpdateResult(confirmed, state, running, message, n, sent, already, sent_bytes, time.monotonic() - t0)


async def _retry(ask: Callable[[Message, str], Awaitable[FwStatus]], msg: Message, what: str,
                 deadline: float) -> FwStatus:
    """Ask until answered: a request can be lost with a dropped link."""
    while True:
        try:
            return await ask(msg, what)
        except (BridgeError, asyncio.TimeoutError) as err:
            if isinstance(err, FirmwareError) or time.monotonic() > deadline:
                raise FirmwareError(f"firmware update: no answer to {what}: {err}") from None
            await asyncio.sleep(0.1)
