# SPDX-License-Identifier: GPL-3.0-or-later
"""Brilliant Labs Frame and Halo (``brilliant://[NAME]``) and the vendor's emulator (``halo-emulator``).

:func:`open_client` turns such a device URL into a :class:`BrilliantClient`, which has the
firmware bridge client's interface, so ``run --device``, the HIL plugin and ``doctor`` treat it
like any other pair of glasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ...errors import ConfigError
from .client import BrilliantClient, BrilliantStats
from .link import ble_maker

__all__ = ["BrilliantClient", "BrilliantStats", "DeviceUrl", "is_brilliant_url", "open_client", "parse_url"]

SCHEMES = ("brilliant://", "halo-emulator")


def is_brilliant_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(SCHEMES)


@dataclass(frozen=True)
class DeviceUrl:
    """``brilliant://`` (the first pair found), ``brilliant://NAME`` (e.g. ``Frame 4F``, ``Halo%2008``), or
    ``halo-emulator`` (``?flavour=frame`` for Frame's API shape, ``?rate=8000`` for a slower microphone)."""

    emulator: bool
    name: str | None
    flavour: str = "halo"
    mic_rate: int = 16_000

    @property
    def label(self) -> str:
        if self.emulator:
            return "halo-emulator" + ("?flavour=frame" if self.flavour == "frame" else "")
        return f"brilliant://{self.name or ''}"


def parse_url(url: str) -> DeviceUrl:
    """Raises :class:`ConfigError` (one line) for what is not such a URL."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"flavour", "rate"}
    if unknown:
        raise ConfigError(f"{url}: unknown option {sorted(unknown)[0]!r} (known: flavour, rate)")
    rate = query.get("rate", "16000")
    if rate not in ("8000", "16000"):
        raise ConfigError(f"{url}: rate must be 8000 or 16000")
    if url.startswith("halo-emulator"):
        rest = url[len("halo-emulator"):].split("?", 1)[0]
        if rest not in ("", "://", ":"):
            raise ConfigError(f"{url}: the emulator takes no name (halo-emulator or halo-emulator?flavour=frame)")
        flavour = query.get("flavour", "halo")
        if flavour not in ("halo", "frame"):
            raise ConfigError(f"{url}: flavour must be halo or frame")
        return DeviceUrl(True, None, flavour, int(rate))
    if parts.scheme != "brilliant":
        raise ConfigError(f"{url} is not a brilliant:// or halo-emulator URL")
    if "flavour" in query:
        raise ConfigError(f"{url}: flavour is for the emulator (a real pair says what it is)")
    name = unquote(parts.netloc + parts.path).strip("/") or None
    return DeviceUrl(False, name, mic_rate=int(rate))


def open_client(url: str, *, glasses: Any = None, **options: Any) -> BrilliantClient:
    """The client for ``url``; for the emulator, ``glasses`` is the :class:`.emulator.EmulatedGlasses` to use."""
    dev = parse_url(url)
    if dev.emulator:
        if glasses is None:
            raise ConfigError("halo-emulator needs the emulated glasses to talk to")
        client = BrilliantClient(glasses.brilliant_msg, label=dev.label, mic_rate=dev.mic_rate, **options)
        glasses.on_link_lost = client._lost
        return client
    return BrilliantClient(ble_maker(), label=dev.label, name=dev.name, mic_rate=dev.mic_rate, **options)


def emulated_glasses(url: str, mic_wavs: Sequence[Path] = (), **kwargs: Any) -> Any:
    """The emulated glasses ``url`` (``halo-emulator...``) describes, microphone fed from ``mic_wavs``."""
    from .emulator import EmulatedGlasses

    dev = parse_url(url)
    return EmulatedGlasses(mic_wavs, flavour=dev.flavour, **kwargs)
