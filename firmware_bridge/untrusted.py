# SPDX-License-Identifier: GPL-3.0-or-later
"""What the host accepts from a device: ranges, string escaping, log rate limits, the device clock.

Everything a device sends is untrusted, even in a frame whose CRC is right: a CRC proves the
bytes arrived as sent, not that the sender is sane. The client (:mod:`.client`) checks each
field against what the protocol and the device's Hello allow, using the rules collected here
so that they are written once and tested on their own:

* :func:`printable` escapes control and format characters (terminal escape codes, forged
  newlines, bidi overrides) and bounds the length of every device string before it reaches a
  log, a terminal or an exception message;
* :class:`LogLimiter` lets a few repeated device complaints through and counts the rest;
* :func:`hello_problems` / :func:`sane_capabilities` keep rates, channel counts and sizes of a
  Hello inside the ranges the host can serve, replacing the rest with protocol defaults;
* :func:`mic_problem` and :func:`telemetry_problem` name what is wrong with one message;
* :class:`DeviceClock` estimates the device's clock from every frame's header time (a median,
  so one absurd timestamp cannot move it), which keeps camera freshness honest.
"""

from __future__ import annotations

import math
import statistics
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable

__all__ = [
    "AUDIO_RATE_MIN",
    "AUDIO_RATE_MAX",
    "MAX_MIC_CHUNK_S",
    "DeviceClock",
    "LogLimiter",
    "audio_rate_ok",
    "mic_problem",
    "printable",
    "sane_speaker_rates",
    "telemetry_problem",
]

AUDIO_RATE_MIN = 8_000
"""Lowest microphone or speaker rate the host accepts (Hz): narrow-band telephone audio."""
AUDIO_RATE_MAX = 48_000
"""Highest (Hz): what glasses' codecs run at; above it a "rate" is a lie, not audio."""
MAX_MIC_CHUNK_S = 0.5
"""Longest microphone chunk accepted (s). Devices send 20 ms; 25 times that leaves room for odd
firmware while one chunk can never carry minutes of audio (or megabytes of samples)."""
MAX_SPEAKER_RATES = 16
MAX_STRING = 120
"""Characters of a device string kept for logs and messages (the rest is cut with "…")."""


def printable(text: object, limit: int = MAX_STRING) -> str:
    """``text`` safe for a terminal or a log line: control/format characters escaped, length bounded.

    C0/C1 controls (ESC, CR, LF, NUL...), DEL, Unicode format characters (bidi overrides,
    zero-width joiners), line/paragraph separators and unpaired surrogates become ``\\xNN`` /
    ``\\uNNNN``; a backslash is kept as it is. Longer than ``limit`` characters: cut, with "…".
    """
    s = str(text)
    out: list[str] = []
    n = 0
    for ch in s:
        if n >= limit:
            out.append("…")
            break
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
        n += 1
    return "".join(out)


class LogLimiter:
    """A token bucket per key: ``burst`` lines at once, then one every ``per_s / burst`` seconds.

    :meth:`allow` says whether to log now; what is held back is counted in :attr:`suppressed`
    and reported by the next allowed line (:meth:`note`), so a flood of device errors costs a
    few log lines, not megabytes, and the operator still learns how many there were.
    """

    def __init__(self, burst: int = 5, per_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.rate = burst / per_s
        self.clock = clock
        self._tokens: dict[str, tuple[float, float]] = {}
        self._held: dict[str, int] = {}
        self.suppressed = 0

    def allow(self, key: str) -> bool:
        now = self.clock()
        tokens, last = self._tokens.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._tokens[key] = (tokens - 1.0, now)
            return True
        if len(self._tokens) > 64 and key not in self._tokens:
            self._tokens.clear()  # keys come from a few call sites; never let them grow without bound
        self._tokens[key] = (tokens, now)
        self._held[key] = self._held.get(key, 0) + 1
        self.suppressed += 1
        return False

    def note(self, key: str) -> str:
        """" (N similar lines suppressed)" for the line being logged now, or ""."""
        held = self._held.pop(key, 0)
        return f" ({held} similar lines suppressed)" if held else ""


def audio_rate_ok(rate: int) -> bool:
    return AUDIO_RATE_MIN <= rate <= AUDIO_RATE_MAX


def sane_speaker_rates(rates: Iterable[int]) -> tuple[tuple[int, ...], bool]:
    """The announced speaker rates the host can produce (in order, unique, at most 16), and
    whether any was dropped. None left: 16 kHz, what every protocol 1.0 device plays."""
    kept: list[int] = []
    dropped = False
    for r in rates:
        if audio_rate_ok(r) and r not in kept and len(kept) < MAX_SPEAKER_RATES:
            kept.append(r)
        else:
            dropped = True
    return (tuple(kept) or (16_000,)), dropped


def mic_problem(codec: int, channels: int, sample_rate: int, nbytes: int, pcm16: int) -> str | None:
    """Why a MicAudio chunk cannot be used (None: it can), in a word for the counters and logs."""
    if codec != pcm16:
        return "codec"
    if channels != 1:
        return "channels"
    if not audio_rate_ok(sample_rate):
        return "rate"
    if nbytes == 0 or nbytes % 2:
        return "length"
    if nbytes / (2 * sample_rate) > MAX_MIC_CHUNK_S:
        return "too-long"
    return None


def telemetry_problem(battery_percent: float, battery_mv: int, temperature_c: float) -> str | None:
    """Why a Telemetry report is not believable (NaN, infinity, a battery above 100 %...)."""
    if not math.isfinite(battery_percent) or not 0.0 <= battery_percent <= 100.0:
        return "battery"
    if not math.isfinite(temperature_c) or not -60.0 <= temperature_c <= 150.0:
        return "temperature"
    if battery_mv > 20_000:
        return "voltage"
    return None


class DeviceClock:
    """The device's clock as the host sees it, from the header time of received frames.

    Each frame gives one offset (header ``device_time_us`` minus the host's monotonic clock at
    arrival). The estimate is the median of the last ``window`` offsets, so a device whose
    clock simply differs from the host's is followed, while a few frames with absurd times
    (one far-future timestamp, a counter that jumped) do not move it. Reset per session.
    """

    def __init__(self, window: int = 31) -> None:
        self._offsets: deque[int] = deque(maxlen=window)
        self._median: int | None = None

    def reset(self) -> None:
        self._offsets.clear()
        self._median = None

    def observe(self, device_time_us: int, host_us: int) -> None:
        self._offsets.append(device_time_us - host_us)
        self._median = None

    def now_us(self, host_us: int) -> int | None:
        """The device clock now (µs), or None before any frame."""
        if not self._offsets:
            return None
        if self._median is None:
            self._median = int(statistics.median_low(self._offsets))
        return host_us + self._median
