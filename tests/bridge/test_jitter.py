# SPDX-License-Identifier: GPL-3.0-or-later
"""Microphone jitter buffer: reorder, gap fill, late/duplicate handling, bounds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.jitter import JitterBuffer, MicChunk

CH = 640  # 20 ms of 16 kHz PCM16


def chunk(seq: int) -> MicChunk:
    return MicChunk(bytes([seq % 251 + 1]) * CH, 16000, seq, 1_000_000 + seq * 20_000)


def feed(jb: JitterBuffer, seqs: list[int]) -> list[MicChunk]:
    out: list[MicChunk] = []
    for s in seqs:
        out += jb.push(chunk(s))
    return out


def test_in_order_passthrough() -> None:
    jb = JitterBuffer(depth=3)
    out = feed(jb, list(range(10)))
    assert [c.seq for c in out] == list(range(10)) and len(jb) == 0


def test_reorder_within_depth() -> None:
    jb = JitterBuffer(depth=3)
    out = feed(jb, [0, 2, 1, 3, 5, 4, 6])
    assert [c.seq for c in out] == list(range(7))
    assert not any(c.filled for c in out)
    assert jb.stats.reordered == 2 and jb.stats.gaps_filled == 0


def test_gap_filled_with_silence_of_right_length() -> None:
    jb = JitterBuffer(depth=3)
    out = feed(jb, [0, 1, 4, 5, 6, 7, 8])
    assert [c.seq for c in out] == list(range(9))
    filled = [c for c in out if c.filled]
    assert [c.seq for c in filled] == [2, 3]
    assert all(c.pcm == bytes(CH) for c in filled)
    assert filled[0].device_time_us == chunk(2).device_time_us
    assert jb.stats.gaps_filled == 2 and jb.stats.samples_filled == 2 * CH // 2
    # The lost chunk arriving later is dropped, never played out of order.
    assert jb.push(chunk(3)) == [] and jb.stats.late_dropped == 1


def test_duplicates_and_wraparound() -> None:
    jb = JitterBuffer(depth=2)
    seqs = [2**32 - 2, 2**32 - 1, 0, 0, 1]
    out = feed(jb, seqs)
    assert [c.seq for c in out] == [2**32 - 2, 2**32 - 1, 0, 1]
    assert jb.stats.late_dropped == 1  # the repeated 0 came after 0 was released
    jb2 = JitterBuffer(depth=3)
    feed(jb2, [0, 2, 2])  # repeated while still held
    assert jb2.stats.duplicates == 1


def test_big_jump_is_resync_not_silence() -> None:
    jb = JitterBuffer(depth=3, max_gap=50)
    out = feed(jb, [0, 1, 10_000, 10_001])
    assert [c.seq for c in out] == [0, 1, 10_000, 10_001]
    assert jb.stats.resyncs == 1 and jb.stats.gaps_filled == 0


def test_flush_fills_interior_gaps() -> None:
    jb = JitterBuffer(depth=5)
    out = feed(jb, [0, 2, 4])
    assert [c.seq for c in out] == [0]
    rest = jb.flush()
    assert [c.seq for c in rest] == [1, 2, 3, 4] and [c.filled for c in rest] == [True, False, True, False]


@given(st.permutations(list(range(40))), st.sets(st.integers(0, 39), max_size=10), st.integers(0, 6))
@settings(max_examples=150, deadline=None, database=None)
def test_property_output_is_monotonic_and_bounded(order: list[int], lost: set[int], depth: int) -> None:
    jb = JitterBuffer(depth=depth)
    out: list[MicChunk] = []
    for s in order:
        if s in lost:
            continue
        out += jb.push(chunk(s))
        assert len(jb) <= depth + 1
    out += jb.flush()
    seqs = [c.seq for c in out]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))  # strictly increasing
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # continuous timeline
    assert all(c.pcm == bytes(CH) for c in out if c.filled)
