# SPDX-License-Identifier: GPL-3.0-or-later
"""The turn controller: pure logic, driven with plain times (no audio, no models, no clock)."""

from __future__ import annotations

import pytest

from glasses_assistant.audio.echo import EchoGuard, PlaybackTimeline
from glasses_assistant.controller import (
    Arm,
    AskView,
    BargeInPolicy,
    Disarm,
    EndTurn,
    Interrupt,
    TurnController,
    strip_wake_phrase,
)

C = 0.032  # one chunk


def replying(mode: str = "wake", **kw: object) -> TurnController:
    ctl = TurnController(mode, **kw)  # type: ignore[arg-type]
    if mode != "always":
        ctl.button("tap", 0.0)
    ctl.speech_started(0.5)
    assert ctl.turn_ended(1.0)
    assert ctl.state == "replying"
    return ctl


def feed(ctl: TurnController, t0: float, flags: list[bool]) -> list[object]:
    out: list[object] = []
    for i, f in enumerate(flags):
        out += ctl.voice(t0 + i * C, f)
    return out


def test_wake_mode_ignores_speech_until_the_wake_word() -> None:
    ctl = TurnController("wake")
    assert not ctl.armed and ctl.wants_wake_word
    assert not ctl.turn_ended(1.0)  # a sentence without the wake word is not a turn
    assert ctl.wake(2.0) == [Arm("wake")] and ctl.armed and ctl.armed_by == "wake"
    ctl.speech_started(2.1)
    assert ctl.turn_ended(3.0) and ctl.state == "replying"


def test_wake_word_while_listening_or_replying_means_nothing_more() -> None:
    ctl = TurnController("wake")
    ctl.wake(1.0)
    assert ctl.wake(1.5) == []
    ctl.speech_started(1.6)
    ctl.turn_ended(2.0)
    assert ctl.wake(2.5) == [] and ctl.state == "replying"


def test_tap_mode_never_wants_the_wake_word_and_a_tap_arms() -> None:
    ctl = TurnController("tap")
    assert not ctl.wants_wake_word and ctl.wake(1.0) == []
    assert ctl.button("tap", 1.0) == [Arm("tap")]
    # A tap while already listening: still listening, timeout restarted.
    assert ctl.button("tap", 5.0) == [] and ctl.state == "listening" and ctl.deadline == pytest.approx(13.0)


def test_listening_times_out_without_speech() -> None:
    ctl = TurnController("tap", listen_timeout_s=8.0)
    ctl.button("tap", 0.0)
    assert ctl.tick(7.9) == []
    assert ctl.tick(8.0) == [Disarm("timeout")] and ctl.state == "idle"


def test_follow_up_window_after_an_answer() -> None:
    ctl = replying("wake", follow_up_s=6.0)
    ctl.reply_done(5.0)
    assert ctl.state == "follow_up" and ctl.armed
    ctl.speech_started(7.0)  # within the window: no wake word needed
    assert ctl.tick(12.0) == []  # the wearer is still speaking when the window would close
    assert ctl.turn_ended(12.5) and ctl.armed_by == "follow-up"
    ctl.reply_done(14.0)
    assert ctl.tick(20.1) == [Disarm("timeout")] and not ctl.armed


def test_long_press_is_push_to_talk() -> None:
    ctl = TurnController("wake")
    assert ctl.button("long_press_start", 1.0) == [Arm("hold")]
    ctl.speech_started(1.2)
    assert ctl.button("long_press_end", 3.0) == [EndTurn(3.0)]
    assert ctl.turn_ended(3.0)


def test_barge_in_needs_the_minimum_speech() -> None:
    ctl = replying(barge_in=BargeInPolicy(min_speech_ms=200, window_ms=350))
    # A cough: three voiced chunks (96 ms), then quiet: ignored.
    assert feed(ctl, 2.0, [True] * 3 + [False] * 20) == [] and ctl.state == "replying"
    # Speech with a short gap between syllables: counts once 200 ms of voice is heard.
    out = feed(ctl, 4.0, [True, True, True, False, True, True, True, True])
    assert out and isinstance(out[0], Interrupt) and out[0].reason == "speech"
    assert ctl.state == "listening" and ctl.in_speech  # what the wearer says is the next turn
    assert ctl.turn_ended(5.0)


def test_half_duplex_never_interrupts() -> None:
    ctl = replying(barge_in=BargeInPolicy(enabled=False))
    assert feed(ctl, 2.0, [True] * 100) == [] and ctl.state == "replying"


def test_tap_while_replying_stops_and_listens() -> None:
    ctl = replying("tap")
    assert ctl.button("tap", 2.0) == [Interrupt(2.0, "tap"), Arm("tap")]


def test_always_mode_tap_asks_about_the_view_double_tap_everywhere() -> None:
    assert TurnController("always").button("tap", 1.0) == [AskView(1.0)]
    assert TurnController("wake").button("double_tap", 1.0) == [AskView(1.0)]
    assert TurnController("always").armed


def test_watchdog_returns_a_stuck_reply_to_idle() -> None:
    ctl = replying("wake", watchdog_s=60.0)
    assert ctl.tick(30.0) == []
    assert ctl.tick(61.0) == [Interrupt(61.0, "watchdog"), Disarm("watchdog")] and ctl.state == "idle"


def test_unknown_button_and_bad_mode() -> None:
    assert TurnController("wake").button("triple_tap", 1.0) == []
    with pytest.raises(ValueError):
        TurnController("sometimes")


@pytest.mark.parametrize(("text", "want"), [
    ("Hey Jarvis, what time is it?", "what time is it?"),
    ("Jarvis. What is the capital of France?", "What is the capital of France?"),
    ("What is the capital of France?", "What is the capital of France?"),
])
def test_strip_wake_phrase(text: str, want: str) -> None:
    assert strip_wake_phrase(text, "hey jarvis") == want


def test_echo_guard_rejects_the_echo_and_passes_the_wearer() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    clock = {"t": 100.0}
    tl = PlaybackTimeline(clock=lambda: clock["t"])
    played = (0.3 * rng.standard_normal(16_000 * 4)).astype(np.float32)
    tl.append(played, 16_000, now=100.0)
    guard = EchoGuard(tl, margin_db=6.0)
    delay, gain = 0.010, 10 ** (-15 / 20)
    echo_only, wearer = [], []
    for i in range(1, 100):
        t_end = 100.0 + i * C
        n0 = int((t_end - C - delay - 100.0) * 16_000)
        echo = gain * played[max(0, n0) : n0 + 512] if n0 >= 0 else np.zeros(512, np.float32)
        if len(echo) < 512:
            continue
        echo_only.append(guard.is_wearer(echo.astype(np.float32), t_end))
        voice = (0.3 * rng.standard_normal(512)).astype(np.float32)
        if i > 40:
            wearer.append(guard.is_wearer((echo + voice).astype(np.float32), t_end))
    assert not any(echo_only)
    assert guard.delay_s == pytest.approx(delay, abs=0.002)
    assert sum(wearer) >= 0.9 * len(wearer)
    # Nothing playing: everything may be the wearer.
    assert guard.is_wearer(np.ones(512, np.float32) * 0.1, 200.0)


def test_echo_guard_learns_an_echo_free_path_and_hears_the_wearer_at_the_replys_level() -> None:
    """Glasses whose microphone hears none of the reply (hardware echo cancelling, a bone-conduction
    speaker): the coupling is measured as low, so a wearer speaking no louder than the reply is heard
    over it. The initial guess (-3 dB) once stayed forever, because a delay is only learned from echo."""
    import numpy as np

    rng = np.random.default_rng(1)
    tl = PlaybackTimeline(clock=lambda: 100.0)
    played = (0.3 * rng.standard_normal(16_000 * 4)).astype(np.float32)
    tl.append(played, 16_000, now=100.0)
    guard = EchoGuard(tl, margin_db=6.0, initial_coupling_db=-3.0)
    voice = (0.2 * rng.standard_normal(512)).astype(np.float32)  # quieter than the reply
    assert not guard.is_wearer(voice, 100.5)  # before any measurement: the cautious guess
    for i in range(1, 40):  # the microphone hears nothing while the reply plays
        guard.observe(np.zeros(512, np.float32), 100.0 + i * C)
    assert guard.coupling < 10 ** (-30 / 10)
    assert guard.is_wearer(voice, 101.5)
    # A quiet stretch of the reply itself teaches nothing: the reference must be clearly audible.
    quiet = EchoGuard(PlaybackTimeline(clock=lambda: 0.0))
    quiet.timeline.append(np.full(16_000, 0.005, np.float32), 16_000, now=0.0)
    for i in range(1, 25):
        quiet.observe(np.zeros(512, np.float32), i * C)
    assert quiet.coupling == quiet.initial_coupling


def test_a_held_reply_waits_for_release_or_its_bound_and_can_be_cancelled() -> None:
    import asyncio
    import time

    from glasses_assistant.audio.echo import ReferenceSink
    from glasses_assistant.audio.io import WavSink

    async def main() -> None:
        sink = ReferenceSink(WavSink("unused.wav"))
        assert await sink.ready() == 0.0  # not held: at once
        sink.hold(5.0)
        waiting = asyncio.ensure_future(sink.ready())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        sink.release()  # the listener: the turn stands
        assert 0.04 < await asyncio.wait_for(waiting, 1.0) < 0.5
        sink.hold(0.1)  # nobody releases it: the bound does
        t0 = time.monotonic()
        await sink.ready()
        assert 0.09 < time.monotonic() - t0 < 0.5
        sink.hold(5.0)  # taken back: the reply's task is cancelled while it waits
        waiting = asyncio.ensure_future(sink.ready())
        await asyncio.sleep(0.03)
        waiting.cancel()
        await asyncio.sleep(0.02)
        assert waiting.cancelled()

    asyncio.run(main())


def test_an_interrupted_reply_keeps_only_the_words_heard_not_its_hold() -> None:
    """A held first phrase, then a barge-in: the wearer's record of the reply is the words played,
    never the hold (it is traced on its own track, not as speech)."""
    import asyncio
    from types import SimpleNamespace

    import numpy as np

    from glasses_assistant.audio.echo import ReferenceSink
    from glasses_assistant.audio.io import WavSink
    from glasses_assistant.reply import ReplyHandle, ReplySpeaker
    from glasses_assistant.skill import LoopStats
    from glasses_assistant.trace import TurnTrace

    tts = SimpleNamespace(sample_rate=16_000, synthesize=lambda text: np.zeros(8_000, np.float32))

    async def call(_stage: str, fn, *args):  # type: ignore[no-untyped-def]
        return fn(*args)

    ctx = SimpleNamespace(engines=SimpleNamespace(tts=tts), personal=SimpleNamespace(current_voice=None, gain=1.0),
                          call=call, captions=SimpleNamespace(listeners=[]), stats=LoopStats())
    speaker = ReplySpeaker(ctx)  # type: ignore[arg-type]
    trace = TurnTrace(turn=1)

    async def main() -> None:
        sink = ReferenceSink(WavSink("unused.wav"))
        sink.hold(0.05)
        await speaker._phrase("Paris.", sink, trace)

    asyncio.run(main())
    assert trace.held_ms > 0 and ctx.stats.replies_held == 1
    assert [track for track, *_ in trace.spans] == ["tts", "hold", "speaker"]

    # A turn that chose a tool stands (the tool may have acted), so its reply never waits.
    tool_trace = TurnTrace(turn=2)
    tool_trace.tool = {"tool": "set_timer", "args": {"seconds": 60}}

    async def tool_turn() -> None:
        sink = ReferenceSink(WavSink("unused.wav"))
        sink.hold(5.0)
        await asyncio.wait_for(speaker._phrase("Timer set.", sink, tool_trace), 1.0)

    asyncio.run(tool_turn())
    assert tool_trace.held_ms == 0.0 and ctx.stats.replies_held == 1
    handle = ReplyHandle()
    handle.stopped_t = trace.playback_end  # type: ignore[assignment]
    handle.cut(trace)
    assert trace.reply == "Paris." and trace.interrupted
