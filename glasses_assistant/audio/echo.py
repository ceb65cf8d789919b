# SPDX-License-Identifier: GPL-3.0-or-later
"""The assistant's own voice as a reference: what the speaker played, when, and an echo guard.

Barge-in needs to tell the wearer's voice from the assistant's voice coming back
through the microphone. Three pieces:

* :class:`PlaybackTimeline` records every sample handed to the speaker with the
  monotonic time it plays (16 kHz mono), and cuts the record when playback is
  flushed: the reference signal, and the truth about how much was heard.
* :class:`ReferenceSink` wraps any sink so that its playback lands on a timeline,
  and can be muted so that nothing of an interrupted reply slips out after the stop.
* :class:`EchoGuard` decides, chunk by chunk, whether the microphone holds more
  than the echo of that reference: it measures the echo path (delay by
  cross-correlation, coupling as the median mic/reference energy ratio while the
  assistant talks) and counts a chunk as the wearer's only when it is louder than
  the measured echo by a margin.

Why a gate and not a cancelling filter: no acoustic echo canceller installs as a
wheel here (WebRTC's APM bindings and speexdsp build from source), the glasses'
speaker-to-microphone path is fixed by the hardware so its coupling is stable,
and a gate never alters the audio Whisper transcribes.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from .io import SAMPLE_RATE, AudioSink, resample


class PlaybackTimeline:
    """What the speaker played and when, at 16 kHz (for the echo reference and cut replies).

    Segments are scheduled back to back: a block written while an earlier one is
    still playing starts when that one ends. ``clock`` is injected for tests.
    """

    def __init__(self, *, keep_s: float = 20.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._segments: deque[tuple[float, np.ndarray]] = deque()
        self.keep_s = keep_s
        self.clock = clock
        self.end = 0.0
        """When the last scheduled sample finishes playing."""
        self.stopped_at: float | None = None
        """When playback was last flushed (cut short)."""

    def append(self, samples: np.ndarray, sample_rate: int, now: float | None = None) -> tuple[float, float]:
        """Schedule ``samples`` after what is already playing; return their (start, end) times."""
        now = self.clock() if now is None else now
        block = resample(np.asarray(samples, np.float32), sample_rate, SAMPLE_RATE)
        start = max(now, self.end)
        self.end = start + len(block) / SAMPLE_RATE
        if len(block):
            self._segments.append((start, block))
        while self._segments and self._segments[0][0] + len(self._segments[0][1]) / SAMPLE_RATE < now - self.keep_s:
            self._segments.popleft()
        return start, self.end

    def playing(self, t: float) -> bool:
        return any(s <= t < s + len(b) / SAMPLE_RATE for s, b in self._segments) if t < self.end else False

    def truncate(self, now: float | None = None) -> None:
        """Playback stopped at ``now``: drop every sample scheduled after it."""
        now = self.clock() if now is None else now
        kept: deque[tuple[float, np.ndarray]] = deque()
        for start, block in self._segments:
            if start >= now:
                continue
            n = int((now - start) * SAMPLE_RATE)
            kept.append((start, block[:n] if n < len(block) else block))
        self._segments = kept
        if self.end > now:
            self.end = now
            self.stopped_at = now

    def audio(self, t_a: float, t_b: float) -> np.ndarray:
        """The played signal between two times (zeros where nothing played)."""
        n = max(0, int(round((t_b - t_a) * SAMPLE_RATE)))
        out = np.zeros(n, np.float32)
        if n == 0 or t_b <= 0:
            return out
        for start, block in self._segments:
            end = start + len(block) / SAMPLE_RATE
            if end <= t_a or start >= t_b:
                continue
            src0 = int(round((max(t_a, start) - start) * SAMPLE_RATE))
            dst0 = int(round((max(t_a, start) - t_a) * SAMPLE_RATE))
            m = min(len(block) - src0, n - dst0)
            if m > 0:
                out[dst0 : dst0 + m] = block[src0 : src0 + m]
        return out


class ReferenceSink:
    """Wraps a sink: its playback lands on a :class:`PlaybackTimeline`; ``mute()`` drops writes.

    The runner mutes it the moment a barge-in is decided, before the reply's tasks
    have unwound, so that a phrase synthesised just then is never played.
    """

    def __init__(self, inner: AudioSink, timeline: PlaybackTimeline | None = None) -> None:
        self.inner = inner
        self.timeline = timeline or PlaybackTimeline()
        self.muted = False
        self.dropped_writes = 0
        self.held_until = 0.0
        """While ``time.monotonic()`` is before this, a reply waits in :meth:`ready` (see :meth:`hold`)."""

    async def write(self, samples: np.ndarray, sample_rate: int) -> None:
        if self.muted:
            self.dropped_writes += 1
            return
        self.timeline.append(samples, sample_rate)
        await self.inner.write(samples, sample_rate)

    def mute(self) -> None:
        self.muted = True

    def unmute(self) -> None:
        self.muted = False

    def hold(self, at_most_s: float) -> None:
        """Hold the next reply back (a turn that ended early may still be taken back) until
        :meth:`release`, and for at most ``at_most_s`` seconds whatever happens."""
        self.held_until = time.monotonic() + max(0.0, at_most_s)

    def hold_at_least(self, seconds: float) -> None:
        """Hold the next reply back for ``seconds`` from now, or longer if it is held longer already."""
        self.held_until = max(self.held_until, time.monotonic() + max(0.0, seconds))

    def release(self) -> None:
        self.held_until = 0.0

    async def ready(self) -> float:
        """Wait while held (polled every 10 ms: plain sleeps, so a cancellation is never lost);
        return the seconds waited."""
        start = now = time.monotonic()
        while now < self.held_until:
            await asyncio.sleep(min(0.01, self.held_until - now))
            now = time.monotonic()
        return now - start

    async def flush(self) -> float:
        """Stop now: the timeline is cut first (the reference must not outlive the sound)."""
        self.timeline.truncate()
        return await self.inner.flush()

    async def drain(self) -> None:
        await self.inner.drain()
        # A sink that does not play in real time (a file) returns at once: the reply
        # still "plays" for the wearer until the timeline says it has ended.
        remaining = self.timeline.end - self.timeline.clock()
        if remaining > 0 and not self.muted:
            await asyncio.sleep(remaining)

    async def close(self) -> None:
        await self.inner.close()


def _energy(x: np.ndarray) -> float:
    return float(np.mean(x.astype(np.float64) ** 2)) if len(x) else 0.0


class EchoGuard:
    """Is a microphone chunk the wearer, or only the assistant's own voice coming back?

    ``max_delay_ms`` bounds the speaker-to-microphone delay searched (device
    buffers included); ``margin_db`` is how much louder than the measured echo a
    chunk must be to count as the wearer; ``initial_coupling_db`` is the echo
    level assumed before any measurement (cautious: loud).
    """

    QUIET_PATH_RATIO = 100.0
    """A chunk counts as "the microphone heard none of the reply" when the reference is at least this
    many times (20 dB) above the floor and the microphone below it."""

    def __init__(
        self,
        timeline: PlaybackTimeline,
        *,
        max_delay_ms: float = 120.0,
        margin_db: float = 6.0,
        initial_coupling_db: float = -3.0,
        floor_rms: float = 0.003,
    ) -> None:
        self.timeline = timeline
        self.max_delay = max_delay_ms / 1000.0
        self.margin = 10 ** (margin_db / 10)
        self.initial_coupling = 10 ** (initial_coupling_db / 10)
        self.floor = floor_rms ** 2
        self._delays: deque[float] = deque(maxlen=15)
        self._ratios: deque[float] = deque(maxlen=200)
        self.checked = 0
        self.rejected = 0

    @property
    def delay_s(self) -> float | None:
        """The measured speaker-to-microphone delay (median of recent estimates)."""
        return statistics.median(self._delays) if len(self._delays) >= 3 else None

    @property
    def coupling(self) -> float:
        """Echo energy over reference energy: measured once enough playback has been heard."""
        if len(self._ratios) < 20:
            return self.initial_coupling
        # The median: while the assistant talks the wearer is mostly silent (a barge-in
        # stops playback within a fraction of a second), so most chunks are echo only.
        return float(np.median(np.asarray(self._ratios)))

    def is_wearer(self, samples: np.ndarray, t_end: float) -> bool:
        """True unless the chunk can be explained by the echo of what was just played."""
        energies = self._assess(samples, t_end)
        if energies is None:
            return True  # nothing (audible) was playing: no echo to mistake
        self.checked += 1
        mic_e, ref_e = energies
        wearer = mic_e > self.coupling * ref_e * self.margin
        if not wearer:
            self.rejected += 1
        return wearer

    def observe(self, samples: np.ndarray, t_end: float) -> None:
        """A chunk the voice detector did not hear as speech: no verdict is needed, but it measures
        the echo path as well (above all a path with no echo at all, which only quiet chunks show)."""
        self._assess(samples, t_end)

    def _assess(self, samples: np.ndarray, t_end: float) -> tuple[float, float] | None:
        """Learn the delay and the coupling from this chunk; its energy and that of the reference
        around the delay (None when nothing audible was playing)."""
        n = len(samples)
        t_start = t_end - n / SAMPLE_RATE
        if t_start - self.max_delay >= self.timeline.end:
            return None  # nothing was played in the window: skip building a reference of zeros
        ref = self.timeline.audio(t_start - self.max_delay, t_end)
        if _energy(ref) < self.floor:
            return None
        mic_e = _energy(samples)
        lag = self._measure(samples, ref)
        delay = self.delay_s if self.delay_s is not None else lag
        # Reference energy around the delay (a few ms either way: the path is not a pure delay).
        d = int(round(delay * SAMPLE_RATE)) if delay is not None else None
        offset = len(ref) - n
        if d is None:
            ref_e = max(_energy(ref[i : i + n]) for i in range(0, offset + 1, 64))
            if mic_e < self.floor and ref_e >= self.floor * self.QUIET_PATH_RATIO:
                # The speaker plays clearly and the microphone hears nothing: no echo to learn a
                # delay from (hardware echo cancelling, a bone-conduction speaker, a test rig).
                # That measures the coupling too; without it, the cautious initial guess stayed
                # forever and the wearer had to outshout the reply to be heard over it.
                self._ratios.append(mic_e / ref_e)
        else:
            lo, hi = max(0, offset - d - 48), min(offset, offset - d + 48)
            ref_e = max(_energy(ref[i : i + n]) for i in range(lo, hi + 1, 16))
            if ref_e > self.floor:
                self._ratios.append(mic_e / ref_e)
        return mic_e, ref_e

    def _measure(self, mic: np.ndarray, ref: np.ndarray) -> float | None:
        """Speaker-to-microphone delay by cross-correlation of this chunk with the reference."""
        n = len(mic)
        if _energy(mic) < self.floor:
            return None
        size = 1 << int(np.ceil(np.log2(len(ref) + n)))
        corr = np.fft.irfft(np.fft.rfft(ref, size) * np.conj(np.fft.rfft(mic, size)), size)[: len(ref) - n + 1]
        best = int(np.argmax(corr))
        norm = np.sqrt(_energy(mic) * _energy(ref[best : best + n])) * n
        if norm <= 0 or corr[best] / norm < 0.5:
            return None  # the chunk is not (mostly) the echo: no delay to learn from it
        lag = (len(ref) - n - best) / SAMPLE_RATE
        self._delays.append(lag)
        return lag
