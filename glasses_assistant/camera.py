# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a vision request gets its frame: the glasses over the bridge, an image file, or nothing.

A capture is always requested *after* the wearer's question, so the answer is
about what is in front of them now, never an older frame. The capture LED rule
of the bridge applies: the LED is switched on for the capture and off after.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class CapturedFrame:
    """A JPEG (None if none could be had), what to store with it, and why it failed."""

    jpeg: bytes | None
    metadata: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    """camera-off | no-frame: said to the wearer instead of an answer about the view."""


class Camera(Protocol):
    @property
    def has_camera(self) -> bool: ...

    async def capture(self) -> CapturedFrame: ...


class FileCamera:
    """An image file standing in for the camera (`run --camera IMAGE`, tests)."""

    has_camera = True

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    async def capture(self) -> CapturedFrame:
        try:
            data = self.path.read_bytes()
        except OSError as err:
            return CapturedFrame(None, problem="no-frame", metadata={"error": err.strerror or str(err)})
        return CapturedFrame(data, {"source": str(self.path), "captured_at": time.time()})


class BridgeCamera:
    """The glasses' camera through :class:`firmware_bridge.BridgeClient`."""

    def __init__(self, client: Any, *, timeout: float = 3.0) -> None:
        self.client = client
        self.timeout = timeout

    @property
    def has_camera(self) -> bool:
        caps = self.client.capabilities
        return bool(caps is not None and caps.has_camera)

    async def capture(self) -> CapturedFrame:
        from firmware_bridge import BridgeError, CaptureRefused

        try:
            await self.client.set_capture_led(True)
            frame = await self.client.capture(timeout=self.timeout)
        except CaptureRefused as err:
            return CapturedFrame(None, problem="camera-off", metadata={"error": str(err)})
        except (BridgeError, TimeoutError) as err:
            return CapturedFrame(None, problem="no-frame", metadata={"error": str(err)})
        finally:
            with contextlib.suppress(Exception):
                await self.client.set_capture_led(False)
        caps = self.client.capabilities
        metadata = {
            "device_id": getattr(caps, "device_id", None),
            "firmware": getattr(caps, "firmware_version", None),
            "width": frame.width, "height": frame.height,
            "device_time_us": frame.device_time_us, "capture_led": frame.led_on,
            "captured_at": time.time(),
        }
        return CapturedFrame(frame.jpeg, metadata)
