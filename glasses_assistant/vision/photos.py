# SPDX-License-Identifier: GPL-3.0-or-later
"""'Take a photo': the JPEG as the camera sent it, plus a JSON sidecar with time and device metadata."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import AssistantError


class PhotoError(AssistantError):
    """A photo cannot be saved (folder not writable, disk full, not a JPEG)."""

    code = "photo"


def save_photo(jpeg: bytes, folder: Path | str, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``jpeg`` as ``folder/IMG_YYYYmmdd_HHMMSS_mmm.jpg`` and a ``.json`` sidecar; return the JPEG's path.

    The JPEG bytes are stored unchanged (no re-encoding: the camera's quality and
    EXIF stay). The sidecar records the host's UTC time of saving, the size and
    whatever the caller passes in ``metadata`` (device id, firmware, device clock
    ``device_time_us``, capture LED state, width/height...). Both files are written
    to a temporary name and renamed, so a crash never leaves half a photo.
    """
    if not jpeg or not bytes(jpeg[:3]) == b"\xff\xd8\xff":
        raise PhotoError("not saving the photo: the camera's frame is not a JPEG")
    folder = Path(folder).expanduser()
    now = time.time()
    stamp = datetime.fromtimestamp(now, timezone.utc)
    base = stamp.strftime("IMG_%Y%m%d_%H%M%S_") + f"{int(now * 1000) % 1000:03d}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{base}.jpg"
        n = 1
        while path.exists():  # two photos in the same millisecond
            path = folder / f"{base}_{n}.jpg"
            n += 1
        sidecar = {
            "file": path.name,
            "saved_utc": stamp.isoformat(timespec="milliseconds"),
            "bytes": len(jpeg),
            **(metadata or {}),
        }
        _atomic_write(path, bytes(jpeg))
        _atomic_write(path.with_suffix(".json"), (json.dumps(sidecar, indent=2, default=str) + "\n").encode())
    except OSError as err:
        raise PhotoError(f"cannot save the photo in {folder}: {err.strerror}") from None
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def frame_metadata(frame: Any, **extra: Any) -> dict[str, Any]:
    """Sidecar fields from a firmware_bridge ``CameraFrame`` (or anything with the same attributes)."""
    fields = ("width", "height", "device_time_us", "led_on", "request_id", "sent_time_us", "received_us", "session")
    meta = {f: getattr(frame, f) for f in fields if hasattr(frame, f)}
    meta.update(extra)
    return meta
