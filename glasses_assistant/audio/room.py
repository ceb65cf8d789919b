# SPDX-License-Identifier: GPL-3.0-or-later
"""A virtual room: the microphone hears the wearer *and* what the speaker plays.

An "acoustic loop" sink and source pair, for barge-in tests and the benchmark:

* :class:`RoomSink` plays reply audio in real time onto a
  :class:`~glasses_assistant.audio.echo.PlaybackTimeline` (when each sample was
  played, cut at the moment of a flush);
* :class:`RoomSource` is the microphone: the wearer's scripted utterances, plus
  the sink's output delayed and attenuated (the echo), plus optional noise,
  delivered in 32 ms chunks at the pace of real time.

The room records when the wearer's voiced speech began and when playback
stopped, so stop latency is measured on the same clock as everything else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np

from .echo import PlaybackTimeline
from .io import BLOCK, SAMPLE_RATE, AudioChunk


@dataclass(frozen=True)
class Utterance:
    """One thing the wearer says, and when.

    ``at_s``: seconds after the source starts (or after the previous utterance
    ended). ``after_playback_s``: once the assistant has been playing for this
    long without a break (a barge-in). ``after_reply_s``: this long after the
    assistant's playback has ended (a follow-up).
    """

    audio: np.ndarray
    at_s: float = 0.0
    after_playback_s: float | None = None
    after_reply_s: float | None = None


def voiced_onset(audio: np.ndarray, threshold: float = 0.02) -> int:
    """Index of the first sample louder than ``threshold`` (the start of voiced speech)."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return int(loud[0]) if len(loud) else 0


def at_distance(audio: np.ndarray, metres: float, *, rt60_s: float = 0.5, seed: int = 0) -> np.ndarray:
    """``audio`` (16 kHz, as heard at 10 cm) as a microphone ``metres`` away hears it in a room.

    A synthetic impulse response: the direct sound, falling as 1/distance from 10 cm, then a
    diffuse tail of exponentially decaying noise (``rt60_s``) whose level does not depend on the
    distance. So the voice gets quieter and more reverberant as it moves away; at 1 m direct and
    reverberant sound are equal, a small room's critical distance. No measured room responses
    ship in a package here, and the wake word evaluation needs distance, not one room's colour.
    """
    rng = np.random.default_rng(seed)
    n = int(rt60_s * SAMPLE_RATE)
    tail = rng.standard_normal(n) * np.exp(-6.91 * np.arange(n) / n)
    tail[: SAMPLE_RATE // 200] = 0.0  # the first reflections arrive a few milliseconds late
    ir = tail * (0.1 / float(np.sqrt(np.sum(tail**2))))
    ir[0] = 0.1 / max(metres, 0.1)
    size = len(audio) + n - 1
    fft = 1 << (size - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(audio, fft) * np.fft.rfft(ir, fft), fft)[:size]
    return out.astype(np.float32)


class AcousticRoom:
    """The speaker, the microphone and the air between them.

    ``echo_db`` is the level of the speaker's sound at the microphone relative to
    what was played (-10 to -20 dB on a pair of glasses); ``echo_delay_ms`` the
    delay from the speaker to the microphone; ``noise_db`` adds white noise at that
    level (dBFS RMS), or none.
    """

    def __init__(self, *, echo_db: float | None = -15.0, echo_delay_ms: float = 8.0,
                 noise_db: float | None = None, seed: int = 0) -> None:
        self.timeline = PlaybackTimeline()
        self.echo_gain = 0.0 if echo_db is None else 10 ** (echo_db / 20)
        self.echo_delay = echo_delay_ms / 1000.0
        self.noise = 0.0 if noise_db is None else 10 ** (noise_db / 20)
        self.rng = np.random.default_rng(seed)
        self.sink = RoomSink(self.timeline)
        self.wearer_onsets: list[float] = []
        """Monotonic time of the first voiced sample of each utterance the wearer said."""

    def source(self, script: Sequence[Utterance], *, tail_s: float = 8.0, reply_wait_s: float = 30.0) -> RoomSource:
        """The microphone for ``script``; after it, it listens on while replies play and ``tail_s`` more,
        and waits up to ``reply_wait_s`` for a reply to the last utterance to start playing at all."""
        return RoomSource(self, script, tail_s=tail_s, reply_wait_s=reply_wait_s)


class RoomSink:
    """Plays reply audio in real time into the room (a speaker with a device buffer)."""

    def __init__(self, timeline: PlaybackTimeline) -> None:
        self.timeline = timeline
        self.flushes: list[float] = []
        """When each flush (a stop) happened."""

    async def write(self, samples: np.ndarray, sample_rate: int) -> None:
        self.timeline.append(samples, sample_rate)

    async def flush(self) -> float:
        now = time.monotonic()
        self.timeline.truncate(now)
        self.flushes.append(now)
        return 0.0

    async def drain(self) -> None:
        remaining = self.timeline.end - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)

    async def close(self) -> None:
        return None


class RoomSource:
    """The microphone in the room: scripted wearer speech + echo of the speaker + noise."""

    def __init__(self, room: AcousticRoom, script: Sequence[Utterance], *, tail_s: float,
                 reply_wait_s: float = 30.0) -> None:
        self.room = room
        self.script = list(script)
        self.tail_s = tail_s
        self.reply_wait_s = reply_wait_s
        self._closed = False

    async def close(self) -> None:
        self._closed = True

    def _playing_for(self, t: float) -> float:
        """How long playback has run without a break at time ``t`` (0 when silent)."""
        tl = self.room.timeline
        if not tl.playing(t):
            return 0.0
        start = t
        step = BLOCK / SAMPLE_RATE
        while tl.playing(start - step) and t - start < 60:
            start -= step
        return t - start

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        room = self.room
        block_s = BLOCK / SAMPLE_RATE
        start = time.monotonic()
        pending = list(self.script)
        current: np.ndarray | None = None
        pos = 0
        last_end = start  # when the previous utterance (or the start) ended
        silent_since: float | None = None
        done_at: float | None = None
        i = 0
        while not self._closed:
            t_end = start + (i + 1) * block_s
            delay = t_end - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = t_end - block_s
            out = np.zeros(BLOCK, np.float32)
            playing = room.timeline.playing(t0)
            silent_since = None if playing else (silent_since or t0)
            if current is None and pending:
                nxt = pending[0]
                due = (nxt.after_playback_s is not None and self._playing_for(t0) >= nxt.after_playback_s) or (
                    nxt.after_reply_s is not None and silent_since is not None and room.timeline.end > start
                    and t0 - max(room.timeline.end, silent_since) >= nxt.after_reply_s) or (
                    nxt.after_playback_s is None and nxt.after_reply_s is None and t0 - last_end >= nxt.at_s)
                if due:
                    current, pos = pending.pop(0).audio, 0
                    room.wearer_onsets.append(t0 + voiced_onset(current) / SAMPLE_RATE)
            if current is not None:
                part = current[pos : pos + BLOCK]
                out[: len(part)] += part
                pos += BLOCK
                if pos >= len(current):
                    current, last_end = None, t_end
            if room.echo_gain:
                out += room.echo_gain * room.timeline.audio(t0 - room.echo_delay, t_end - room.echo_delay)
            if room.noise:
                out += (room.noise * room.rng.standard_normal(BLOCK)).astype(np.float32)
            yield AudioChunk(np.clip(out, -1.0, 1.0), SAMPLE_RATE, t_end)
            i += 1
            if current is None and not pending:
                # The script is done: keep listening until replies have been played out. A reply that
                # has not started yet (a slow model on a loaded machine) is waited for, up to
                # reply_wait_s: ending the microphone before it plays would leave its echo unheard.
                replied = room.timeline.end > last_end
                if room.timeline.end > t_end:
                    done_at = None
                elif done_at is None:
                    done_at = t_end
                elif t_end - done_at >= (self.tail_s if replied else max(self.tail_s, self.reply_wait_s)):
                    return
