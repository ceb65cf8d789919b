# SPDX-License-Identifier: GPL-3.0-or-later
"""firmware_bridge: the link between the glasses' firmware and the assistant.

Public API (all importable from this package)::

    from firmware_bridge import BridgeClient, BridgeError, open_transport

Only light standard-library modules are imported here; OpenCV, numpy,
pyserial and bleak are imported lazily by the parts that need them.
"""

from __future__ import annotations

from .client import (
    AudioFormat,
    BridgeClient,
    BridgeStats,
    ButtonEvent,
    CameraFrame,
    Capabilities,
    MicChunk,
    TelemetrySample,
)
from .errors import (
    BridgeError,
    CaptureRefused,
    LinkClosed,
    MessageDecodeError,
    ProtocolVersionError,
    TransportUnavailable,
)
from .frame import DEFAULT_MAX_PAYLOAD, PROTOCOL_VERSION, DecoderStats, Frame
from .transport import Transport, open_transport, parse_url

__all__ = [
    "AudioFormat",
    "BridgeClient",
    "BridgeError",
    "BridgeStats",
    "ButtonEvent",
    "CameraFrame",
    "Capabilities",
    "CaptureRefused",
    "DecoderStats",
    "DEFAULT_MAX_PAYLOAD",
    "Frame",
    "LinkClosed",
    "MessageDecodeError",
    "MicChunk",
    "PROTOCOL_VERSION",
    "ProtocolVersionError",
    "TelemetrySample",
    "Transport",
    "TransportUnavailable",
    "open_transport",
    "parse_url",
]
