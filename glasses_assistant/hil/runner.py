# SPDX-License-Identifier: GPL-3.0-or-later
"""One scenario through the real loop: glasses (virtual or real) -> bridge -> the assistant -> glasses."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .scenario import SPOKEN_MIN_S, Observed, Scenario, skip_reason


class Skip(Exception):
    """The scenario cannot run on this device (the reason is the message)."""


def telemetry_dict(sample: Any) -> dict[str, Any] | None:
    if sample is None:
        return None
    return {k: getattr(sample, k) for k in ("battery_percent", "charging", "battery_mv", "temperature_c",
                                             "thermal_state")}


def start_sim(scenario: Scenario, wavs: list[Path], speaker_wav: Path,
              captions: Path | None = None):
    """The virtual glasses for this scenario (started), through the harness's sim wrapper."""
    from ..audio.bridge import VirtualGlasses

    extra = scenario.sim_args() + (["--captions-file", str(captions)] if captions is not None else [])
    sim = VirtualGlasses(wavs, speaker_wav=speaker_wav, link=scenario.sim.get("link", "tcp"),
                         camera=scenario.images, extra=extra, mic_gap_s=scenario.mic_gap_s)
    ext = scenario.ext_args()
    if ext:  # python -m firmware_bridge.sim -> python -m glasses_assistant.hil.simext --hide ...
        i = sim.args.index("firmware_bridge.sim")
        sim.args[i:i + 1] = ["glasses_assistant.hil.simext", *ext]
    sim.start()
    return sim


async def run_session(
    get_assistant: Callable[[], Any], url: str, scenario: Scenario, *, listen_s: float, device: str,
    play: Callable[[], Any] | None = None, glasses: Any = None,
) -> Observed:
    """Connect to the glasses at ``url``, serve ``scenario.turns`` turns, and say what happened.

    ``play`` (a real device on a bench) starts the scenario's audio on a speaker next to it once
    the link is up. The source is closed after ``listen_s``, so a scenario that expects no turn ends.
    """
    from firmware_bridge import BridgeClient

    from ..audio.bridge import BridgeSink, BridgeSource
    from ..camera import BridgeCamera
    from ..devices.brilliant import is_brilliant_url, open_client

    brilliant = is_brilliant_url(url)
    client: Any = open_client(url, glasses=glasses) if brilliant else BridgeClient(url)
    await client.start()
    try:
        await client.wait_connected(timeout=15)
        reason = skip_reason(scenario, client.capabilities, device)
        if reason:
            raise Skip(reason)
        assistant = get_assistant()
        source = BridgeSource(client)
        caps = client.capabilities
        camera = BridgeCamera(client) if caps is not None and caps.has_camera else None
        led_seen = False

        async def watch() -> None:
            nonlocal led_seen
            while True:
                if client.led_on:
                    led_seen = True
                await asyncio.sleep(0.01)

        async def stop_listening() -> None:
            await asyncio.sleep(listen_s)
            await source.close()

        async def first_telemetry() -> dict[str, Any] | None:
            for _ in range(30):
                if client.telemetry is not None:
                    return telemetry_dict(client.telemetry)
                await asyncio.sleep(0.1)
            return None

        tasks = [asyncio.create_task(watch()), asyncio.create_task(stop_listening())]
        if glasses is not None:  # the emulator: the wearer speaks and taps on the scenario's schedule
            glasses.speak()
            tasks.append(asyncio.create_task(_press(glasses, scenario)))
        tel_task = asyncio.create_task(first_telemetry())
        player = play() if play is not None else None
        serve = assistant.serve(source, BridgeSink(client), half_duplex=True, max_turns=scenario.turns,
                                camera=camera, buttons=client.buttons(), listen_mode=scenario.listen_mode)
        show = None
        if caps is not None and caps.has_display:  # translation captions go to the glasses' display
            from ..captions import bridge_listener, display_listener

            show = display_listener(client) if brilliant else bridge_listener(client)
            assistant.captions.subscribe(show)
        try:
            traces = await asyncio.wait_for(serve, listen_s + 90)
        finally:
            if show is not None:
                assistant.captions.listeners.remove(show)
            for t in tasks:
                t.cancel()
            if player is not None:
                with contextlib.suppress(Exception):
                    player.stop()
        tel_start = await tel_task
        return Observed(
            turns=[t.to_json() for t in traces], bridge=client.stats.as_dict(), telemetry_start=tel_start,
            telemetry_end=telemetry_dict(client.telemetry), led_on_seen=led_seen,
            photos=[str(t.vision["photo"]) for t in traces if t.vision and t.vision.get("photo")],
        )
    finally:
        await client.close()


async def _press(glasses: Any, scenario: Scenario) -> None:
    t0 = time.monotonic()
    for p in sorted(scenario.presses, key=lambda p: p.at_s):
        await asyncio.sleep(max(0.0, t0 + p.at_s - time.monotonic()))
        glasses.tap("double" if p.kind == "double_tap" else "single")


def properties(scenario: Scenario, obs: Observed, elapsed_s: float) -> list[tuple[str, object]]:
    """The measurements recorded in the JUnit XML (``<property name=... value=...>``)."""
    props: list[tuple[str, object]] = [("scenario_file", str(scenario.path)), ("elapsed_s", round(elapsed_s, 2)),
                                       ("turns", len(obs.turns))]
    answered = [t for t in obs.turns if t.get("voice_to_voice_ms") is not None]
    if answered:
        first = answered[0]
        props.append(("voice_to_voice_ms", first["voice_to_voice_ms"]))
        for stage, ms in (first.get("stage_ms") or {}).items():
            if ms is not None:
                props.append((f"stage_{stage}_ms", ms))
        props.append(("voice_to_voice_max_ms", max(t["voice_to_voice_ms"] for t in answered)))
        vision = first.get("vision") or {}
        for k, v in (vision.get("timings") or {}).items():
            if isinstance(v, (int, float)):
                name, ms = (k[:-2], v * 1000.0) if k.endswith("_s") else (k.removesuffix("_ms"), v)
                props.append((f"vision_{name}_ms", round(ms, 1)))
    b = obs.bridge
    dropped = sum(b.get(k, 0) for k in ("decoder_crc_errors", "decoder_header_crc_errors", "decoder_truncated",
                                        "decoder_cobs_errors", "mic_late_dropped", "mic_queue_dropped",
                                        "camera_queue_dropped", "buttons_dropped"))
    props += [("bridge_dropped_frames", dropped), ("bridge_gaps_filled", b.get("mic_gaps_filled", 0))]
    for k in ("connects", "reconnects", "link_lost", "decoder_crc_errors", "decoder_header_crc_errors",
              "decoder_resyncs", "mic_gaps_filled", "mic_reordered", "camera_frames", "capture_requests",
              "buttons", "telemetry", "speaker_bytes"):
        if k in b:
            props.append((f"bridge_{k}", b[k]))
    s, e = obs.telemetry_start, obs.telemetry_end
    if s is not None:
        props.append(("battery_start_pct", round(s["battery_percent"], 3)))
    if e is not None:
        props.append(("battery_end_pct", round(e["battery_percent"], 3)))
        if e["temperature_c"] == e["temperature_c"]:  # NaN: glasses that report no temperature (Brilliant's)
            props += [("temperature_c", round(float(e["temperature_c"]), 2)), ("thermal_state", e["thermal_state"])]
    if s is not None and e is not None:
        props.append(("battery_drain_pct", round(s["battery_percent"] - e["battery_percent"], 3)))
    props.append(("led_on_seen", obs.led_on_seen))
    if obs.speaker_s is not None:
        props.append(("speaker_audio_s", round(obs.speaker_s, 2)))
    return props


def run_scenario(get_assistant: Callable[[], Any], scenario: Scenario, *, url: str | None, workdir: Path,
                 synthesize: Callable[[str], Any], playback: Any = None, device: str = "glasses-sim") -> tuple[
                     Observed, list[tuple[str, object]]]:
    """Run one scenario: on fresh virtual glasses when ``url`` is None, else on the device at ``url``."""
    from ..audio.io import SAMPLE_RATE, read_wav, resample, write_wav

    wavs = []
    for i, a in enumerate(scenario.audio):
        if a.file is not None:
            wavs.append(a.file)
        else:
            wav = workdir / f"say{i}.wav"
            if a.voice is None:
                write_wav(wav, synthesize(a.say or ""), SAMPLE_RATE)
            else:  # another speaker (a translation partner): the voice the scenario names
                from ..engines.voices import open_voice

                assistant = get_assistant()
                voice = open_voice(a.voice, assistant.catalogue, assistant.config.tts)
                write_wav(wav, resample(voice.synthesize(a.say or ""), voice.sample_rate, SAMPLE_RATE), SAMPLE_RATE)
            wavs.append(wav)
    audio_s = 0.0
    for w in wavs:
        audio, rate = read_wav(w)
        audio_s += len(audio) / rate + scenario.mic_gap_s
    press_s = max((p.at_s for p in scenario.presses), default=0.0)
    listen_s = scenario.listen_s or (max(audio_s, press_s) + 25.0 * max(1, scenario.turns))

    e = scenario.expect
    # A scenario about vision gets the vision models even with no image to show (the no-camera one):
    # else whether it passes would depend on whether an earlier scenario happened to load them.
    needs_vision = bool(scenario.images or e.vision_intent or e.vision_problem or e.vision_labels)

    def ready() -> Any:  # loaded only once the device is known to be able to run the scenario
        assistant = get_assistant()
        if needs_vision and assistant.vision is None:
            assistant._load_vision()
        assistant.conversation.clear()
        assistant.stop_translation()  # every scenario starts out of translation mode
        return assistant
    if not scenario.sim.get("hide"):
        ready()  # load before the glasses start talking: audio before the source subscribes is lost
    speaker = workdir / "glasses-speaker.wav"
    t0 = time.monotonic()
    sim = None
    play = None
    captions = workdir / "captions.jsonl"
    glasses = None
    if url is not None and url.startswith("halo-emulator"):
        from ..devices.brilliant import emulated_glasses

        glasses = emulated_glasses(url, wavs, mic_gap_s=scenario.mic_gap_s, camera=scenario.images,
                                   battery=int(scenario.sim.get("battery", 85)))
        device = url
    elif url is None:
        sim = start_sim(scenario, wavs, speaker, captions if scenario.sim.get("display") else None)
        url = sim.url
        device = "glasses-sim"
    elif wavs:
        play = lambda: playback.play(wavs, gap_s=scenario.mic_gap_s)  # noqa: E731
    try:
        obs = asyncio.run(run_session(ready, url, scenario, listen_s=listen_s, device=device, play=play,
                                      glasses=glasses))
    finally:
        if sim is not None:
            sim.stop()
        if glasses is not None:
            write_wav(speaker, glasses.speaker_audio(), SAMPLE_RATE)
            glasses.close()
    elapsed = time.monotonic() - t0
    if captions.exists():
        import json

        obs.captions = [json.loads(line) for line in captions.read_text(encoding="utf-8").splitlines() if line]
    if (sim is not None or glasses is not None) and speaker.exists():
        audio, rate = read_wav(speaker)
        obs.speaker_s = len(audio) / rate if rate else 0.0
        if scenario.expect.heard_contains and obs.speaker_s > SPOKEN_MIN_S:
            # Heard as the wearer hears it: knowing what was asked (a one-word answer alone, "Paris.",
            # came back as "Harris." through Halo's LC3 codec).
            asked = " ".join(a.say for a in scenario.audio if a.say)
            obs.heard = get_assistant().stt.transcribe(resample(audio, rate, SAMPLE_RATE), context=asked or None).text
    return obs, properties(scenario, obs, elapsed)

