# SPDX-License-Identifier: GPL-3.0-or-later
"""The hardware-in-the-loop plugin itself: scenario files, expectations, capability skips,
quarantine, the device and labgrid paths. No models are loaded here (the scenarios that need
them run in `make hil`); pytest is run in a subprocess where the plugin's own behaviour is tested.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from glasses_assistant.hil.scenario import (
    Expectation,
    Observed,
    ScenarioError,
    check,
    load_quarantine,
    load_scenario,
    missing_capabilities,
    skip_reason,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


def _plugin_args() -> list[str]:
    """-p the plugin unless the installed package already registers it (pytest11 entry point)."""
    names = {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    return [] if "glasses_assistant.hil.plugin" in names else ["-p", "glasses_assistant.hil.plugin"]


def run_pytest(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *_plugin_args(), *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------- the shipped scenarios


def test_the_shipped_scenarios_parse_and_cover_the_issue() -> None:
    scenarios = [load_scenario(p) for p in sorted(SCENARIOS.glob("*.toml")) if p.name != "quarantine.toml"]
    assert len(scenarios) >= 15
    kinds = {s.id.split("-")[0] for s in scenarios}
    assert {"voice", "vision", "handsfree", "fault"} <= kinds
    faults = " ".join(s.id for s in scenarios if s.id.startswith("fault"))
    for fault in ("link-drop", "corrupted", "low-battery", "thermal"):
        assert fault in faults
    for s in scenarios:
        if s.id.startswith("fault"):
            assert s.expect.behaviour, f"{s.id}: a fault scenario says what behaviour it expects"
        for image in s.images:
            assert image.is_file(), image
    assert load_quarantine(SCENARIOS / "quarantine.toml") is not None


def test_a_bad_scenario_is_one_line_naming_the_key(tmp_path: Path) -> None:
    bad = write(tmp_path / "s.toml", '[scenario]\nrequires = ["jetpack"]\n')
    with pytest.raises(ScenarioError, match="unknown capability 'jetpack'"):
        load_scenario(bad)
    bad.write_text('[expect]\nanswer_contain = ["x"]\n')
    with pytest.raises(ScenarioError, match="unknown \\[expect\\] key 'answer_contain'"):
        load_scenario(bad)
    bad.write_text('[[audio]]\nsay = "a"\nfile = "b.wav"\n')
    with pytest.raises(ScenarioError, match="exactly one of say or file"):
        load_scenario(bad)


def test_sim_arguments_and_device_eligibility(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path / "f.toml", """
[[audio]]
say = "hi"
[[press]]
kind = "double_tap"
at_s = 2
[sim]
drop = 3
disconnect_every_s = 4
seed = 1
hide = ["camera"]
temperature_c = 50
"""))
    assert s.sim_args() == ["--drop", "3", "--disconnect-every", "4", "--seed", "1", "--press", "double_tap@2.0"]
    assert s.ext_args() == ["--hide", "camera", "--temperature", "50"]
    assert s.sim_only and "disconnect_every_s" in s.sim_only
    plain = load_scenario(write(tmp_path / "p.toml", '[[audio]]\nsay = "hi"\n[expect]\nanswer_contains = "x"\n'))
    assert plain.sim_only is None


# ---------------------------------------------------------------- expectations


def turn(**kw: object) -> dict[str, object]:
    base = {"outcome": "answered", "transcript": "What is the capital of France?",
            "reply": "The capital of France is Paris.", "voice_to_voice_ms": 700.0, "vision": None}
    return {**base, **kw}


def test_expectations_pass_and_fail_with_readable_reasons() -> None:
    e = Expectation(transcript_contains=("capital", "france"), answer_contains=("paris", "lyon"),
                    answer_matches=r"\bparis\b", max_voice_to_voice_ms=3000, outcome="answered")
    assert check(e, Observed([turn()])) == []
    fails = check(e, Observed([turn(reply="It is Berlin.", voice_to_voice_ms=4100.0)]))
    assert any("none of ['paris', 'lyon']" in f for f in fails)
    assert any("does not match" in f for f in fails)
    assert any("4100 ms > 3000 ms" in f for f in fails)
    assert check(e, Observed([])) == ["no turn was recorded"]


def test_which_turn_any_and_all() -> None:
    e = Expectation(which="any", answer_contains=("paris",))
    obs = Observed([turn(outcome="error", reply=""), turn()])
    assert check(e, obs) == []
    assert check(Expectation(which="all", outcome="answered"), obs)[0].startswith("turn 1: outcome 'error'")
    assert check(Expectation(turns=0), Observed([])) == []
    assert check(Expectation(turns=0), Observed([turn()]))


def test_vision_led_bridge_and_telemetry_expectations() -> None:
    vision = {"intent": "describe", "labels": ["dog", "bicycle"], "problem": None, "photo": None}
    obs = Observed([turn(vision=vision)], bridge={"decoder_crc_errors": 2, "decoder_header_crc_errors": 1,
                                                  "connects": 1}, led_on_seen=True,
                   telemetry_end={"battery_percent": 4.9, "thermal_state": "hot", "temperature_c": 46.0})
    ok = Expectation(vision_intent="describe", vision_labels=("dog",), led_on=True,
                     bridge={"decoder_crc_errors+decoder_header_crc_errors": 3},
                     telemetry={"battery_below": 10, "thermal_state": ["warm", "hot"], "temperature_above": 40})
    assert check(ok, obs) == []
    bad = Expectation(vision_labels=("cat",), photo_saved=True, led_on=False, bridge={"connects": 2},
                      telemetry={"battery_above": 50, "thermal_state": "nominal"})
    fails = check(bad, obs)
    assert len(fails) == 6, fails


# ---------------------------------------------------------------- capabilities and quarantine


def test_capability_decision() -> None:
    caps = SimpleNamespace(has_camera=False, has_speaker=True, has_microphone=True, has_buttons=True)
    assert missing_capabilities(["camera", "speaker"], caps) == ["camera"]
    assert missing_capabilities(["camera"], None) == ["camera"]
    s = SimpleNamespace(id="vision-x", requires=("camera", "speaker"))
    assert skip_reason(s, caps, "tcp://10.0.0.2:7000") == (  # type: ignore[arg-type]
        "vision-x: needs camera; tcp://10.0.0.2:7000 has no camera")
    assert skip_reason(s, SimpleNamespace(has_camera=True, has_speaker=True), "x") is None  # type: ignore[arg-type]


def test_quarantine_file(tmp_path: Path) -> None:
    q = write(tmp_path / "quarantine.toml",
              '[quarantine]\na = "flaky on the 135M model"\nb = { reason = "hangs", mode = "skip" }\n')
    assert load_quarantine(q) == {"a": ("xfail", "flaky on the 135M model"), "b": ("skip", "hangs")}
    q.write_text("[quarantine]\nc = 3\n")
    with pytest.raises(ScenarioError, match="needs a reason"):
        load_quarantine(q)


def test_quarantined_scenarios_are_marked_with_their_reason(tmp_path: Path) -> None:
    d = tmp_path / "scenarios"
    write(d / "good.toml", '[[audio]]\nsay = "hi"\n')
    write(d / "flaky.toml", '[[audio]]\nsay = "hi"\n')
    write(d / "hangs.toml", '[[audio]]\nsay = "hi"\n')
    write(d / "quarantine.toml", '[quarantine]\nflaky = "misheard one time in ten"\n'
                                 'hangs = { reason = "never ends", mode = "skip" }\n')
    r = run_pytest(tmp_path, "scenarios", "--collect-only", "-q", "-m", "quarantined")
    assert "2/3 tests collected" in r.stdout, r.stdout + r.stderr
    r = run_pytest(tmp_path, "scenarios/hangs.toml", "-rs")
    assert r.returncode == 0 and "quarantined: never ends" in r.stdout, r.stdout + r.stderr


def test_a_scenario_needing_a_camera_is_skipped_on_glasses_without_one(tmp_path: Path) -> None:
    """A real handshake: the virtual glasses leave the camera out of their Hello (--hide camera)."""
    write(tmp_path / "scenarios" / "needs-camera.toml", """
[scenario]
requires = ["camera"]
[sim]
hide = ["camera"]
[[press]]
kind = "tap"
at_s = 1
""")
    r = run_pytest(tmp_path, "scenarios", "-rs")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "needs-camera: needs camera; glasses-sim has no camera" in r.stdout, r.stdout


def test_a_broken_scenario_file_is_a_collection_error(tmp_path: Path) -> None:
    write(tmp_path / "scenarios" / "broken.toml", "[scenario\n")
    r = run_pytest(tmp_path, "scenarios")
    assert r.returncode != 0 and "broken.toml" in r.stdout, r.stdout


# ---------------------------------------------------------------- real devices and labgrid


def test_bad_glasses_option_is_one_line(tmp_path: Path) -> None:
    r = run_pytest(tmp_path, "--glasses=usb:thing", "--collect-only")
    assert r.returncode == 4 and "--glasses must be sim, tcp://HOST:PORT" in r.stderr, r.stderr


def test_device_mode_skips_sim_only_scenarios_and_needs_a_speaker_for_speech(tmp_path: Path) -> None:
    d = tmp_path / "scenarios"
    write(d / "faulty.toml", '[[audio]]\nsay = "hi"\n[sim]\ndrop = 3\n')
    write(d / "spoken.toml", '[[audio]]\nsay = "What is the capital of France?"\n')
    try:
        import sounddevice as sd

        sd.check_output_settings(samplerate=16_000, channels=1)
        has_output = True
    except Exception:
        has_output = False
    if has_output:
        pytest.skip("this machine has an audio output: the no-speaker path cannot be shown here")
    r = run_pytest(tmp_path, "scenarios", "--glasses=tcp://127.0.0.1:9", "-rs")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "faulty: needs the virtual glasses to inject drop" in r.stdout, r.stdout
    assert "spoken: no audio output device for bench playback" in r.stdout, r.stdout


def test_labgrid_place_without_a_coordinator_fails_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("labgrid")
    r = run_pytest(tmp_path, "--glasses=labgrid:glasses-rack-3", "--lg-coordinator=127.0.0.1:9", "--collect-only")
    assert r.returncode == 4, r.stdout + r.stderr
    line = [x for x in r.stderr.splitlines() if x.startswith("ERROR:")]
    assert line == ["ERROR: --glasses=labgrid:glasses-rack-3: labgrid place 'glasses-rack-3': cannot reach the "
                    "labgrid coordinator at 127.0.0.1:9 (start it, or set LG_COORDINATOR / --lg-coordinator)"], r.stderr
    assert "Traceback" not in r.stderr


def test_labgrid_environment_resolves_the_glasses_link(tmp_path: Path) -> None:
    pytest.importorskip("labgrid")
    from glasses_assistant.hil.labgrid import LabgridError, resolve

    env = write(tmp_path / "env.yaml", """
targets:
  main:
    resources:
      NetworkSerialPort:
        host: bench-7.lab
        port: 7000
        protocol: raw
""")
    assert resolve("labgrid:", lg_env=str(env)) == "tcp://bench-7.lab:7000"
    env.write_text(env.read_text().replace("raw", "rfc2217"))
    with pytest.raises(LabgridError, match="needs protocol: raw"):
        resolve("labgrid:", lg_env=str(env))
    r = run_pytest(tmp_path, "--glasses=labgrid:", f"--lg-env={env}", "--collect-only")
    assert r.returncode == 4 and "protocol: raw" in r.stderr


def test_fixtures_give_python_tests_the_target_and_fresh_virtual_glasses(tmp_path: Path) -> None:
    write(tmp_path / "test_fixtures.py", '''
import asyncio
from firmware_bridge import BridgeClient

def test_it(glasses_target, glasses_url):
    assert glasses_target.is_sim and glasses_url.startswith("tcp://127.0.0.1:")

    async def caps():
        async with BridgeClient(glasses_url) as client:
            await client.wait_connected(timeout=10)
            return client.capabilities
    assert asyncio.run(caps()).has_camera
''')
    r = run_pytest(tmp_path, "test_fixtures.py", "-q")
    assert r.returncode == 0, r.stdout + r.stderr


def test_heard_allows_a_near_miss_of_a_long_word_only() -> None:
    from glasses_assistant.hil.scenario import sounds_like

    assert sounds_like("paris", ["harris"])  # whisper-tiny on a one-word "Paris." through LC3
    assert sounds_like("rome", ["broome"])
    assert not sounds_like("paris", ["the", "capital", "is", "london"])
    assert not sounds_like("paris", [])
    assert sounds_like("no", ["no"]) and not sounds_like("no", ["so"])  # short words: exactly
