# SPDX-License-Identifier: GPL-3.0-or-later
"""The messages between the host and our app on Brilliant Labs glasses (``lua/ga_app.lua``), as pure logic.

The link is the vendor's: ``brilliant_msg``'s data framing (a message code byte, then the
payload; data.lua reassembles long host messages on the glasses). The codes below 0x10 that
the glasses send are the vendor's own modules' (audio 0x05/0x06, photo 0x07/0x08, tap 0x09,
battery 0x0c); the rest are ours. Everything that arrives from the glasses is untrusted: each
parser checks lengths and ranges and returns None (counted by the client) for what does not fit.
"""

from __future__ import annotations

import re
import struct
import textwrap
import unicodedata
from dataclasses import dataclass

# host -> glasses
START = 0x10
TEXT = 0x11
CLEAR = 0x12
SPEAKER_DATA = 0x13
SPEAKER_STOP = 0x14
CAPTURE = 0x15
BATTERY_REQUEST = 0x16
STOP = 0x17
PING = 0x19

# glasses -> host
AUDIO = 0x05
AUDIO_FINAL = 0x06
PHOTO = 0x07
PHOTO_FINAL = 0x08
TAP = 0x09
BUTTON = 0x0B
BATTERY = 0x0C
HELLO = 0x20
LUA_ERROR = 0x21
PONG = 0x24
FROM_GLASSES = (AUDIO, AUDIO_FINAL, PHOTO, PHOTO_FINAL, TAP, BUTTON, BATTERY, HELLO, LUA_ERROR, PONG)

MIC_RATE = 16_000
LC3_FRAME_MS = 10
LC3_FRAME_BYTES = 40
"""32 kbit/s at 10 ms frames: what Brilliant's own Halo apps use, and clear enough for Whisper."""
MAX_PHOTO_BYTES = 2 * 1024 * 1024
"""A 720x720 JPEG at the best quality is well under 200 kB; anything near this is not a photo."""
MAX_LINE = 240
"""Longest single notification our app sends (camera.lua and audio.lua use at most 240 bytes)."""

_TAP_KINDS = {1: "tap", 2: "double_tap", 3: "triple_tap"}
_BUTTON_KINDS = {1: "tap", 2: "double_tap", 3: "long_press"}
_HELLO_KEYS = {"hw", "fw", "mic", "cam", "spk", "w", "h", "mtu"}
_PRINTABLE = re.compile(r"[^\x20-\x7e]")


def printable(text: str, limit: int = 200) -> str:
    """A device string made safe for one log or error line: printable ASCII, bounded."""
    return _PRINTABLE.sub("?", text)[:limit]


@dataclass(frozen=True)
class Hello:
    """What our app on the glasses reports about them when it starts."""

    hardware: str
    firmware: str
    mic_codec: str
    has_camera: bool
    has_speaker: bool
    width: int
    height: int
    mtu: int

    @property
    def is_frame(self) -> bool:
        return self.hardware == "Frame"


def parse_hello(payload: bytes) -> Hello | None:
    """``hw=Frame;fw=v25;mic=pcm;cam=1;spk=0;w=640;h=400;mtu=247`` -> :class:`Hello` (None if malformed)."""
    if not payload or len(payload) > MAX_LINE:
        return None
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError:
        return None
    fields: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if not sep or key not in _HELLO_KEYS or key in fields:
            return None
        fields[key] = value
    if set(fields) != _HELLO_KEYS or fields["mic"] not in ("pcm", "lc3") or fields["cam"] not in ("0", "1") \
            or fields["spk"] not in ("0", "1"):
        return None
    try:
        width, height, mtu = int(fields["w"]), int(fields["h"]), int(fields["mtu"])
    except ValueError:
        return None
    if not (16 <= width <= 4096 and 16 <= height <= 4096 and 20 <= mtu <= 1024):
        return None
    return Hello(printable(fields["hw"], 32), printable(fields["fw"], 32), fields["mic"], fields["cam"] == "1",
                 fields["spk"] == "1", width, height, mtu)


def parse_tap(payload: bytes) -> str | None:
    """tap.lua: no payload on Frame (one message per tap, the host counts them), a kind byte on Halo."""
    if not payload:
        return "tap"
    if len(payload) == 1:
        return _TAP_KINDS.get(payload[0])
    return None


def parse_button(payload: bytes) -> str | None:
    """Halo's button: 1 single, 2 double, 3 long press."""
    return _BUTTON_KINDS.get(payload[0]) if len(payload) == 1 else None


def parse_battery(payload: bytes) -> tuple[int, bool | None] | None:
    """battery.lua sends the level alone; our app adds whether it charges. (percent, charging or None)."""
    if len(payload) not in (1, 2) or payload[0] > 100:
        return None
    if len(payload) == 1:
        return payload[0], None
    if payload[1] > 1:
        return None
    return payload[0], bool(payload[1])


def parse_lua_error(payload: bytes) -> str:
    """The Lua message our app caught, as one printable line."""
    return printable(payload.decode("utf-8", "replace").replace("\n", " "), MAX_LINE)


def start_payload(codec: str, rate: int, volume: int) -> bytes:
    """What the app needs to start the microphone (and the speaker, where there is one)."""
    if codec not in ("pcm", "lc3") or rate not in (8000, 16000) or not 0 <= volume <= 100:
        raise ValueError(f"bad start settings {codec} {rate} {volume}")
    return struct.pack(">BHBB", 1 if codec == "lc3" else 0, rate, LC3_FRAME_BYTES, volume)


def text_payload(lines: list[str], *, x: int, y: int, spacing: int, palette: int = 1) -> bytes:
    """TxPlainText's layout (x, y, palette offset, spacing, UTF-8 text) with lines joined by newlines.

    ``spacing`` is the line height in pixels here: our app draws the lines itself."""
    text = "\n".join(lines).encode("utf-8")[:2000]
    return struct.pack(">HHBB", x, y, palette & 0x0F, spacing & 0xFF) + text


@dataclass(frozen=True)
class Layout:
    """How much text fits on a display: where it starts, the line height and the grid in characters."""

    x: int
    y: int
    line_height: int
    columns: int
    rows: int


def layout_for(hello: Hello) -> Layout:
    """Halo's display is round (256x256, 16 px glyphs at our font size); Frame's is 640x400."""
    if hello.is_frame:
        return Layout(x=20, y=20, line_height=60, columns=max(8, (hello.width - 40) // 24),
                      rows=max(1, (hello.height - 40) // 60))
    margin = hello.width // 10
    return Layout(x=margin, y=hello.height // 5, line_height=22, columns=max(8, (hello.width - 2 * margin) // 16),
                  rows=max(1, (hello.height - 2 * (hello.height // 5)) // 22 + 1))


def wrap_for_display(text: str, layout: Layout) -> list[str]:
    """Word-wrapped lines of ``text`` that fit; when it is longer, the last lines (the newest words)."""
    # The glasses' fonts are ASCII: "Où est la gare" is drawn as "Ou est la gare", not with holes.
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = " ".join(_PRINTABLE.sub(" ", text).split())
    lines = textwrap.wrap(text, layout.columns, break_long_words=True) or [""]
    return lines[-layout.rows:]
