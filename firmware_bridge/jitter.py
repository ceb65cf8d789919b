# SPDX-License-Identifier: GPL-3.0-or-later
"""Bounded microphone jitter buffer: reorders by sequence number, fills gaps.

Chunks are released in sequence order.  When the next expected chunk is
missing, the buffer waits until ``depth`` later chunks have arrived (so the
added latency is bounded: ``depth`` chunks, 60 ms at the default 3 x 20 ms)
and then declares it lost, emitting silence of the same duration so the
audio timeline stays continuous for the speech recogniser.  Sequence jumps
in either direction resynchronise once confirmed, and the silence it may
invent is capped per gap and per second (see :class:`JitterBuffer`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MicChunk", "JitterBuffer", "JitterStats"]

_MOD = 1 << 32


def _now_us() -> int:
    return time.monotonic_ns() // 1000


@dataclass(frozen=True, slots=True)
class MicChunk:
    """A chunk of microphone audio as delivered to the assistant.

    ``pcm``: PCM16 little-endian mono; ``sample_rate`` in Hz (16000);
    ``seq``: device chunk sequence number; ``device_time_us``: device clock at
    the first sample (µs); ``filled``: True if this chunk is silence inserted
    for a lost chunk; ``received_us``: host monotonic clock (µs) when the
    chunk arrived (for latency measurements).
    """

    pcm: bytes
    sample_rate: int
    seq: int
    device_time_us: int
    filled: bool = False
    received_us: int = 0
    channels: int = 1

    @property
    def samples(self) -> int:
        """Number of samples per channel."""
        return len(self.pcm) // (2 * self.channels)

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.samples / self.sample_rate if self.sample_rate else 0.0


@dataclass(slots=True)
class JitterStats:
    """Repairs made by the jitter buffer."""

    gaps_filled: int = 0  # chunks replaced by silence
    samples_filled: int = 0
    reordered: int = 0  # chunks that arrived after a later one and were put back in order
    late_dropped: int = 0  # chunks that arrived after their slot was already played/filled
    duplicates: int = 0
    resyncs: int = 0  # sequence jumps too large to fill, confirmed by a second chunk (device restart)
    strays: int = 0  # single chunks far from the sequence that nothing confirmed: dropped
    fill_skipped: int = 0  # lost chunks not filled: the gap was too long, or the silence budget spent


class JitterBuffer:
    """Reorder/gap-fill buffer holding at most ``depth + 1`` chunks (plus ``depth + 1`` far ones).

    Sequence numbers come from the device and are untrusted. A chunk more than ``max_gap``
    away from the expected number, *in either direction*, is a restart only when a second
    chunk confirms the new numbering (it follows within ``max_gap``); a lone stray is dropped
    and counted. So one chunk with an absurd number cannot make every later chunk "late",
    and a device counter that restarts without a new Hello is followed after two chunks.

    Silence is bounded twice: one gap is filled only up to ``max_fill_s`` seconds of audio
    (a longer hole is skipped, not invented), and all filling together may not outrun real
    time: a budget of ``fill_burst_s`` seconds that refills at one second per second.
    """

    def __init__(self, depth: int = 3, max_gap: int = 50, stats: JitterStats | None = None, *,
                 max_fill_s: float = 1.0, fill_burst_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if depth < 0:
            raise ValueError("depth must be >= 0")
        self.depth = depth
        self.max_gap = max_gap  # larger jumps are a restart (or a lie), not a gap worth filling
        self.max_fill_s = max_fill_s
        self.fill_burst_s = fill_burst_s
        self.stats = stats if stats is not None else JitterStats()
        self._clock = clock
        self._pending: dict[int, MicChunk] = {}
        self._far: dict[int, MicChunk] = {}
        self._next: int | None = None
        self._last: MicChunk | None = None
        self._budget = fill_burst_s
        self._budget_t = clock()

    def __len__(self) -> int:
        return len(self._pending)

    def reset(self) -> None:
        """Start over (new session): the next chunk defines the sequence."""
        self._pending.clear()
        self._far.clear()
        self._next = None
        self._last = None

    @staticmethod
    def _diff(a: int, b: int) -> int:
        """Signed modular distance a - b for u32 sequence numbers."""
        d = (a - b) % _MOD
        return d - _MOD if d >= _MOD // 2 else d

    def push(self, chunk: MicChunk) -> list[MicChunk]:
        """Add one received chunk; return the chunks now ready, in order."""
        out: list[MicChunk] = []
        if self._next is None:
            self._next = chunk.seq
        d = self._diff(chunk.seq, self._next)
        if d > self.max_gap or d < -self.max_gap:
            return self._far_chunk(chunk)
        if d < 0:
            self.stats.late_dropped += 1
            return out
        if chunk.seq in self._pending:
            self.stats.duplicates += 1
            return out
        if any(self._diff(s, chunk.seq) > 0 for s in self._pending):
            self.stats.reordered += 1
        self._pending[chunk.seq] = chunk
        self._drain(out, force=False)
        return out

    def _far_chunk(self, chunk: MicChunk) -> list[MicChunk]:
        """A chunk far from the expected number: held until a neighbour confirms a restart."""
        group = {s: c for s, c in self._far.items() if abs(self._diff(s, chunk.seq)) <= self.max_gap}
        if chunk.seq in group:
            self.stats.duplicates += 1
            return []
        if not group:
            self._far[chunk.seq] = chunk
            while len(self._far) > self.depth + 1:
                self._far.pop(next(iter(self._far)))
                self.stats.strays += 1
            return []
        # Two chunks agree on the new numbering: the device restarted (or its counter did).
        out = self.flush()
        self.stats.strays += len(self._far) - len(group)
        self._far.clear()
        self.stats.resyncs += 1
        group[chunk.seq] = chunk
        first = min(group, key=lambda s: self._diff(s, chunk.seq))
        self._next, self._last = first, None
        for s in sorted(group, key=lambda s: self._diff(s, first)):
            out += self.push(group[s])
        return out

    def flush(self) -> list[MicChunk]:
        """Release everything held, filling interior gaps (link going down)."""
        out: list[MicChunk] = []
        self._drain(out, force=True)
        return out

    def _silence_like(self, seq: int, ref: MicChunk, after: MicChunk | None) -> MicChunk:
        n = len(ref.pcm)
        dur_us = int(1e6 * (n // 2) / ref.sample_rate) if ref.sample_rate else 0
        t = after.device_time_us + dur_us if after is not None else ref.device_time_us - dur_us
        self.stats.gaps_filled += 1
        self.stats.samples_filled += n // (2 * ref.channels)
        return MicChunk(
            pcm=bytes(n),
            sample_rate=ref.sample_rate,
            seq=seq,
            device_time_us=t,
            filled=True,
            received_us=_now_us(),
            channels=ref.channels,
        )

    def _may_fill(self, seconds: float) -> bool:
        """Take ``seconds`` of silence from the budget (per gap and per second), if allowed."""
        now = self._clock()
        self._budget = min(self.fill_burst_s, self._budget + max(0.0, now - self._budget_t))
        self._budget_t = now
        if seconds > self.max_fill_s or seconds > self._budget:
            return False
        self._budget -= seconds
        return True

    def _drain(self, out: list[MicChunk], force: bool) -> None:
        assert self._next is not None or not self._pending
        while self._pending:
            assert self._next is not None
            nxt = self._pending.pop(self._next, None)
            if nxt is not None:
                out.append(nxt)
                self._last = nxt
                self._next = (self._next + 1) % _MOD
                continue
            if not force and len(self._pending) <= self.depth:
                return
            # Waited long enough: the expected chunk is lost.
            expected = self._next
            target = min(self._pending, key=lambda s: (s - expected) % _MOD)
            ref = self._pending[target]
            missing = (target - expected) % _MOD
            if not self._may_fill(missing * ref.duration_s):
                # Too long a hole, or silence already outrunning real time: skip, do not invent.
                self.stats.fill_skipped += missing
                self._next = target
                continue
            while self._next != target:
                fill = self._silence_like(self._next, ref, self._last)
                out.append(fill)
                self._last = fill
                self._next = (self._next + 1) % _MOD
