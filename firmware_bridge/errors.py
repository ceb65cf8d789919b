# SPDX-License-Identifier: GPL-3.0-or-later
"""Exceptions raised by firmware_bridge.  All carry one-line messages."""

from __future__ import annotations

__all__ = [
    "BridgeError",
    "TransportUnavailable",
    "ProtocolVersionError",
    "CaptureRefused",
    "LinkClosed",
    "MessageDecodeError",
]


class BridgeError(Exception):
    """Base class: the bridge cannot do what was asked (one-line message)."""


class TransportUnavailable(BridgeError):
    """The requested transport cannot be used here (missing package, no adapter, bad URL)."""


class ProtocolVersionError(BridgeError):
    """The device speaks a protocol major version this host does not support."""


class CaptureRefused(BridgeError):
    """The device or host refused a camera capture (e.g. the capture LED is off)."""


class LinkClosed(BridgeError):
    """The link to the device closed (EOF, I/O error, or declared dead)."""


class MessageDecodeError(ValueError):
    """A CRC-valid frame carries an unknown type or a malformed payload.

    ``reason`` is ``"unknown_type"`` or ``"bad_payload"``.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
