# SPDX-License-Identifier: GPL-3.0-or-later
"""Bounded microphone jitter buffer: reorders by sequence number, fills gaps.

Chunks are released in sequence order.  When the next expected chunk is
missing, the buffer waits until ``depth`` later chunks have arrived (so the
added latency is bounded: ``depth`` chunks, 60 ms at the default 3 x 20 ms)
and then declares it lost, emitting silence of the same duration so the
audio timeline stays continuous for the speech recogniser.
"""

from __future__ import annotations

import time
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
    resyncs: int = 0  # sequence jumps too large to fill (device restart)


class JitterBuffer:
    """Reorder/gap-fill buffer holding at most ``depth + 1`` chunks."""

    def __init__(self, depth: int = 3, max_gap: int = 50, stats: JitterStats | None = None) -> None:
        if depth < 0:
            raise ValueError("depth must be >= 0")
        self.depth = depth
        self.max_gap = max_gap  # larger jumps are a restart, not a gap worth filling
        self.stats = stats if stats is not None else JitterStats()
        self._pending: dict[int, MicChunk] = {}
        self._next: int | None = None
        self._last: MicChunk | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def reset(self) -> None:
        """Start over (new session): the next chunk defines the sequence."""
        self._pending.clear()
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
        if d < 0:
            self.stats.late_dropped += 1
            return out
        if chunk.seq in self._pending:
            self.stats.duplicates += 1
            return out
        if d > self.max_gap:
            # Far jump: flush what we have and restart at the new sequence
            # rather than inventing seconds of silence.
            out += self.flush()
            self.stats.resyncs += 1
            self._next = chunk.seq
        elif any(self._diff(s, chunk.seq) > 0 for s in self._pending):
            self.stats.reordered += 1
        self._pending[chunk.seq] = chunk
        self._drain(out, force=False)
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
            target = min(self._pending, key=lambda s: (s - self._next) % _MOD)  # type: ignore[operator]
            ref = self._pending[target]
            while self._next != target:
                fill = self._silence_like(self._next, ref, self._last)
                out.append(fill)
                self._last = fill
                self._next = (self._next + 1) % _MOD
