# SPDX-License-Identifier: GPL-3.0-or-later
"""One connection to Brilliant Labs glasses through the vendor's SDK: a real pair over BLE, or the emulator.

Both are driven through the same interface (``brilliant_msg.BrilliantMsg``, and the emulator's
``EmulatorBrilliantMsg`` which mirrors it): connect, upload the vendor's Lua modules and our
app, start it, then messages both ways. :class:`VendorLink` is that sequence, once per
connection; the client above it reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from .protocol import FROM_GLASSES, printable

log = logging.getLogger(__name__)

APP = "ga_app"
VENDOR_MODULES = ["data", "battery", "tap", "plain_text", "code", "camera"]
"""brilliant_msg's Lua modules our app requires (camera.lua only runs where there is a camera)."""


class LinkError(Exception):
    """The glasses could not be reached (one line); ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def app_path() -> Path:
    return Path(str(resources.files("glasses_assistant").joinpath("devices").joinpath("brilliant").joinpath("lua")
                    .joinpath(f"{APP}.lua")))


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return printable(text[0] if text else type(err).__name__, 300)


def ble_error(err: BaseException) -> LinkError:
    """What bleak and brilliant_ble raise, as one line a wearer can act on."""
    msg = _one_line(err)
    low = msg.lower()
    if "no matching device" in low:
        return LinkError("no Brilliant Labs glasses found (is the pair on, charged, nearby, and not connected to "
                         "the phone app?)")
    if "no such file or directory" in low:
        return LinkError("no usable Bluetooth adapter on this computer (BlueZ's D-Bus socket is missing: is "
                         "bluetoothd running?)", permanent=True)
    if any(k in low for k in ("adapter", "bluez", "dbus", "org.bluez",
                              "bluetooth device is turned off", "not available", "permission")):
        return LinkError(f"no usable Bluetooth adapter on this computer ({msg})", permanent=True)
    return LinkError(msg)


class VendorLink:
    """A connection through a BrilliantMsg-shaped object made by ``make``.

    ``on_data(bytes)`` receives every message from our app (code byte first), from any thread:
    the emulator calls it on its Lua thread, bleak on the event loop.
    """

    def __init__(self, make: Callable[[], Any], *, name: str | None, label: str,
                 on_data: Callable[[bytes], None], on_lost: Callable[[], None]) -> None:
        self.make = make
        self.name = name
        self.label = label
        self.on_data = on_data
        self.on_lost = on_lost
        self.msg: Any = None
        self.device_name = ""

    async def open(self) -> None:
        """Connect, upload and start our app. Raises :class:`LinkError`."""
        try:
            msg = self.make()
        except LinkError:
            raise
        except ImportError as err:
            raise LinkError(f"the Brilliant Labs SDK is not installed (pip install -e '.[brilliant]'): {err}",
                            permanent=True) from None
        try:
            name = await (msg.connect(name=self.name) if self.name is not None else msg.connect())
            self.device_name = printable(str(name), 40) if isinstance(name, str) else self.label
            ble = getattr(msg, "ble", None)
            if ble is not None:
                # brilliant_ble calls this on a drop; BrilliantMsg.connect() passes none of its own.
                ble._user_disconnect_handler = self.on_lost
            msg.attach_print_response_handler(lambda line: log.debug("glasses print: %s", printable(str(line))))
            msg.register_data_response_handler(self, list(FROM_GLASSES), self._data)
            await msg.upload_stdlua_libs(VENDOR_MODULES)
            await msg.upload_frame_app(str(app_path()), f"{APP}.lua")
            await msg.start_frame_app(APP, await_print=True)
        except LinkError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as err:
            await self._quiet_disconnect(msg)
            raise ble_error(err) from None
        self.msg = msg

    def _data(self, data: Any) -> None:
        self.on_data(bytes(data))

    async def send(self, code: int, payload: bytes) -> None:
        if self.msg is None:
            raise LinkError("not connected")
        try:
            await self.msg.send_message(code, payload)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            raise LinkError(_one_line(err)) from None

    async def close(self) -> None:
        msg, self.msg = self.msg, None
        if msg is not None:
            msg.unregister_data_response_handler(self)
            await self._quiet_disconnect(msg)

    @staticmethod
    async def _quiet_disconnect(msg: Any) -> None:
        try:
            await msg.disconnect()
        except Exception as err:  # already gone: nothing left to close
            log.debug("disconnect: %s", err)


def ble_maker() -> Callable[[], Any]:
    """BrilliantMsg over BLE (brilliant-sdk); the import is deferred so a missing SDK is one clear line."""
    def make() -> Any:
        from brilliant_msg import BrilliantMsg

        return BrilliantMsg()

    return make
