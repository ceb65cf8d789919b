# SPDX-License-Identifier: GPL-3.0-or-later
"""The pytest plugin: scenario files as test items, against the virtual glasses or a real device.

Registered through the ``pytest11`` entry point (name ``glasses_hil``), so an installed
glasses-assistant gives every pytest run these options::

    pytest scenarios/ --glasses=sim --junitxml=out/hil.xml        # CI: the virtual glasses
    pytest scenarios/ --glasses=tcp://192.168.7.2:7000            # a device on the bench
    pytest scenarios/ --glasses=serial:///dev/ttyACM0
    pytest scenarios/ --glasses=labgrid:glasses-rack-3            # a place from labgrid's coordinator

Each ``scenarios/*.toml`` (except ``quarantine.toml``) is one test. Its measurements go into
the JUnit XML as ``<property>`` elements. Fixtures for Python tests: ``glasses_target``,
``glasses_assistant``, ``glasses_url``, ``playback`` and ``hil_run``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .scenario import Scenario, ScenarioError, check, load_quarantine, load_scenario

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr  # what Item.repr_failure may return; pytest does not export it

URL_SCHEMES = ("tcp://", "serial://", "ble://")


class GlassesTarget:
    """What ``--glasses`` names: the virtual glasses (``url is None``) or a device's bridge URL."""

    def __init__(self, spec: str, url: str | None) -> None:
        self.spec = spec
        self.url = url

    @property
    def is_sim(self) -> bool:
        return self.url is None

    @property
    def emulated(self) -> bool:
        """Brilliant's Halo emulator in-process: virtual like the sim, but no glasses-sim faults."""
        return self.spec.startswith("halo-emulator")

    def __repr__(self) -> str:
        return f"GlassesTarget({self.spec!r}, url={self.url!r})"


def parse_target(spec: str, *, lg_env: str | None = None, coordinator: str | None = None) -> GlassesTarget:
    """``--glasses`` -> a target; raises :class:`pytest.UsageError` with one line when it cannot be used."""
    spec = (spec or "sim").strip()
    if spec == "sim":
        return GlassesTarget(spec, None)
    if spec.startswith(URL_SCHEMES):
        return GlassesTarget(spec, spec)
    if spec.startswith(("halo-emulator", "brilliant://")):
        from ..devices.brilliant import parse_url
        from ..errors import ConfigError

        try:
            parse_url(spec)
        except ConfigError as err:
            raise pytest.UsageError(f"--glasses={spec}: {err}") from None
        return GlassesTarget(spec, spec)
    if spec.startswith("labgrid:"):
        from .labgrid import LabgridError, resolve

        try:
            return GlassesTarget(spec, resolve(spec, lg_env=lg_env, coordinator=coordinator))
        except LabgridError as err:
            raise pytest.UsageError(f"--glasses={spec}: {err}") from None
    raise pytest.UsageError(
        f"--glasses must be sim, tcp://HOST:PORT, serial:///dev/..., ble://ADDR, labgrid:PLACE, halo-emulator or "
        f"brilliant://[NAME] (got {spec!r})")


class Playback:
    """Plays scenario audio on a speaker next to a real device (a bench: software cannot reach its microphone)."""

    def __init__(self, device: str | int | None = None) -> None:
        try:
            import sounddevice as sd

            sd.check_output_settings(device=device, samplerate=16_000, channels=1)
        except Exception as err:  # OSError from PortAudio's absence, PortAudioError, ValueError
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise RuntimeError(f"no audio output device for bench playback ({msg})") from None
        self.sd = sd
        self.device = device

    def play(self, wavs: list[Path], *, gap_s: float = 1.5) -> Any:
        from ..audio.io import read_wav

        stop = threading.Event()

        def run() -> None:
            for wav in wavs:
                if stop.is_set():
                    return
                audio, rate = read_wav(wav)
                self.sd.play(audio, rate, device=self.device)
                self.sd.wait()
                stop.wait(gap_s)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        class Handle:
            def stop(self_inner) -> None:  # noqa: N805
                stop.set()
                with contextlib.suppress(Exception):
                    self.sd.stop()
                thread.join(timeout=5)

        return Handle()


class HilSession:
    """Per pytest session: the target, and the assistant (loaded once, on first use)."""

    def __init__(self, config: pytest.Config, target: GlassesTarget) -> None:
        self.config = config
        self.target = target
        self._assistant: Any = None
        self._voice: Any = None
        self._cache: dict[str, Any] = {}
        self._playback: Playback | None = None
        self.playback_error: str | None = None
        self.load_s: float | None = None

    def assistant(self) -> Any:
        if self._assistant is None:
            from ..config import load_config
            from ..pipeline import Assistant

            t0 = time.monotonic()
            cfg_path = self.config.getoption("glasses_config")
            a = Assistant(load_config(Path(cfg_path)) if cfg_path else load_config())
            a.load()
            self.load_s = round(time.monotonic() - t0, 2)
            self._assistant = a
        return self._assistant

    def synthesize(self, text: str) -> Any:
        """Text -> 16 kHz speech in the assistant's Piper voice with its randomness off (repeatable)."""
        if text not in self._cache:
            from ..audio.io import SAMPLE_RATE, resample
            from ..config import with_overrides
            from ..engines.tts import PiperEngine

            a = self.assistant()
            if self._voice is None:
                cfg = with_overrides(a.config, tts={"noise_scale": 0.0, "noise_w": 0.0})
                self._voice = PiperEngine(a.model_paths["tts"], cfg.tts)
            v = self._voice
            self._cache[text] = resample(v.synthesize(text), v.sample_rate, SAMPLE_RATE)
        return self._cache[text]

    def playback(self) -> Playback:
        if self._playback is None:
            if self.playback_error is not None:
                raise RuntimeError(self.playback_error)
            try:
                self._playback = Playback(self.config.getoption("glasses_playback_device"))
            except RuntimeError as err:
                self.playback_error = str(err)
                raise
        return self._playback

    def close(self) -> None:
        if self._assistant is not None:
            with contextlib.suppress(Exception):
                self._assistant.close()
            self._assistant = None

    def run(self, scenario: Scenario, workdir: Path) -> tuple[Any, list[tuple[str, object]]]:
        """Run ``scenario`` on the target: (Observed, JUnit properties). Raises pytest.skip.Exception."""
        from .runner import Skip, run_scenario

        playback = None
        if self.target.emulated:
            why = scenario.emulator_unsupported
            if why:
                pytest.skip(f"{scenario.id}: {why}; the target is {self.target.spec}")
        elif not self.target.is_sim:
            why = scenario.sim_only
            if why:
                pytest.skip(f"{scenario.id}: {why}; {self.target.spec} is a real device")
            if scenario.audio:
                try:
                    playback = self.playback()
                except RuntimeError as err:
                    pytest.skip(f"{scenario.id}: {err}; the scenario's speech is played by a speaker next to the "
                                "glasses (see docs/hil.md)")
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            return run_scenario(self.assistant, scenario, url=self.target.url, workdir=workdir,
                                synthesize=self.synthesize, playback=playback,
                                device=self.target.spec)
        except Skip as err:
            pytest.skip(str(err))


_SESSION = pytest.StashKey[HilSession]()
_QUARANTINE = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("glasses", "glasses-assistant hardware-in-the-loop scenarios")
    group.addoption("--glasses", default="sim", metavar="TARGET",
                    help="sim (default: start the virtual glasses per scenario), halo-emulator (Brilliant's "
                         "emulator, per scenario), brilliant://[NAME] (a Frame or Halo), tcp://HOST:PORT, "
                         "serial:///dev/..., ble://ADDR, or labgrid:PLACE (a place from labgrid's coordinator)")
    group.addoption("--glasses-config", default=None, metavar="FILE", help="assistant config TOML for the scenarios")
    group.addoption("--glasses-playback-device", default=None, metavar="NAME",
                    help="sounddevice output that plays scenario speech next to a real device")
    group.addoption("--glasses-quarantine", default=None, metavar="FILE",
                    help="quarantine file (default: quarantine.toml beside the scenarios)")
    group.addoption("--run-quarantined", action="store_true",
                    help="run quarantined scenarios as ordinary tests")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hil: a hardware-in-the-loop scenario (scenarios/*.toml)")
    config.addinivalue_line("markers", "requires(capability): the scenario needs this device capability")
    config.addinivalue_line("markers", "quarantined(reason): a known-bad scenario (scenarios/quarantine.toml)")
    spec = config.getoption("glasses", "sim")
    # A plain `pytest` (tests/) never resolves a device: only when --glasses names one.
    lg_env = config.getoption("lg_env", None) if spec.startswith("labgrid:") else None
    coordinator = config.getoption("lg_coordinator", None) if spec.startswith("labgrid:") else None
    target = parse_target(spec, lg_env=lg_env, coordinator=coordinator)
    config.stash[_SESSION] = HilSession(config, target)
    config.stash[_QUARANTINE] = {}


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is not None:
        session.close()


def pytest_report_header(config: pytest.Config) -> str | None:
    session = config.stash.get(_SESSION, None)
    if session is None or (session.target.is_sim and config.getoption("glasses") == "sim"
                           and not any("scenarios" in str(a) for a in config.args)):
        return None
    t = session.target
    return f"glasses: {'virtual glasses (glasses-sim, one per scenario)' if t.is_sim else t.url} [{t.spec}]"


def _is_scenario(file_path: Path) -> bool:
    return (file_path.suffix == ".toml" and file_path.name != "quarantine.toml"
            and "scenarios" in file_path.parent.parts[-2:])


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if _is_scenario(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def quarantine_for(config: pytest.Config, directory: Path) -> dict[str, tuple[str, str]]:
    explicit = config.getoption("glasses_quarantine")
    path = Path(explicit) if explicit else directory / "quarantine.toml"
    cache = config.stash[_QUARANTINE]
    if path not in cache:
        cache[path] = load_quarantine(path)
    return cache[path]


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[ScenarioItem]:
        try:
            scenario = load_scenario(self.path)
            quarantine = quarantine_for(self.config, self.path.parent)
        except ScenarioError as err:
            raise self.CollectError(str(err)) from None
        item = ScenarioItem.from_parent(self, name=scenario.id, scenario=scenario)
        item.add_marker(pytest.mark.hil)
        for cap in scenario.requires:
            item.add_marker(pytest.mark.requires(cap))
        for tag in scenario.tags:
            item.add_marker(getattr(pytest.mark, tag))
        if scenario.id in quarantine and not self.config.getoption("run_quarantined"):
            mode, reason = quarantine[scenario.id]
            item.add_marker(pytest.mark.quarantined(reason))
            if mode == "skip":
                item.add_marker(pytest.mark.skip(reason=f"quarantined: {reason}"))
            else:
                item.add_marker(pytest.mark.xfail(reason=f"quarantined: {reason}", strict=False))
        yield item


class ScenarioFailed(AssertionError):
    pass


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, **kw: Any) -> None:
        super().__init__(**kw)
        self.scenario = scenario
        self.fixturenames: list[str] = []  # other plugins (labgrid's) look at every item's fixtures

    def runtest(self) -> None:
        session: HilSession = self.config.stash[_SESSION]
        sc = self.scenario
        if sc.expect.behaviour:
            self.user_properties.append(("expected_behaviour", sc.expect.behaviour))
        factory = self.config._tmp_path_factory  # type: ignore[attr-defined]  # private, set by pytest's tmpdir plugin
        workdir = Path(factory.mktemp(sc.id, numbered=True))
        obs, props = session.run(sc, workdir)
        rel = self.path.relative_to(self.config.rootpath) if self.path.is_relative_to(self.config.rootpath) \
            else self.path
        self.user_properties.extend((k, str(rel) if k == "scenario_file" else v) for k, v in props)
        self.observed = obs
        for p in obs.photos:  # the harness's photos are not the wearer's
            with contextlib.suppress(OSError):
                Path(p).unlink()
                Path(p).with_suffix(".json").unlink()
        failures = check(sc.expect, obs)
        if failures:
            raise ScenarioFailed(failures, obs)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, ScenarioFailed):
            failures, obs = excinfo.value.args
            lines = [f"scenario {self.scenario.id} ({self.path.name}) failed:"]
            lines += [f"  - {f}" for f in failures]
            if self.scenario.expect.behaviour:
                lines.append(f"  expected behaviour: {self.scenario.expect.behaviour}")
            for i, t in enumerate(obs.turns):
                lines.append(f"  turn {i + 1}: {t.get('outcome')}: heard {t.get('transcript')!r} -> "
                             f"{t.get('reply')!r} ({t.get('voice_to_voice_ms')} ms)")
            return "\n".join(lines)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario: {self.scenario.id}"


# ---------------------------------------------------------------- fixtures for Python tests


@pytest.fixture(scope="session")
def glasses_target(pytestconfig: pytest.Config) -> GlassesTarget:
    """What ``--glasses`` names (``.is_sim``, ``.url``)."""
    return pytestconfig.stash[_SESSION].target


@pytest.fixture(scope="session")
def glasses_assistant(pytestconfig: pytest.Config) -> Any:
    """The assistant session used by every scenario (loaded once, on the bundled models)."""
    return pytestconfig.stash[_SESSION].assistant()


@pytest.fixture
def glasses_url(glasses_target: GlassesTarget, tmp_path: Path) -> Iterator[str]:
    """A bridge URL to talk to: fresh virtual glasses (silent microphone, test-card camera) or the device."""
    if glasses_target.url is not None:
        yield glasses_target.url
        return
    from ..audio.bridge import VirtualGlasses

    with VirtualGlasses([], speaker_wav=tmp_path / "speaker.wav") as sim:
        yield sim.url


@pytest.fixture(scope="session")
def playback(pytestconfig: pytest.Config) -> Playback:
    """Plays audio next to a real device; skips, with the reason, where there is no output device."""
    try:
        return pytestconfig.stash[_SESSION].playback()
    except RuntimeError as err:
        pytest.skip(str(err))


@pytest.fixture
def hil_run(pytestconfig: pytest.Config, tmp_path: Path, record_property: Any) -> Any:
    """``hil_run(path_or_scenario)`` runs a scenario on the target, records its properties, returns
    ``(observed, failures)``."""

    def run(scenario: Scenario | str | Path) -> tuple[Any, list[str]]:
        sc = scenario if isinstance(scenario, Scenario) else load_scenario(Path(scenario))
        obs, props = pytestconfig.stash[_SESSION].run(sc, tmp_path / sc.id)
        for name, value in props:
            record_property(name, value)
        return obs, check(sc.expect, obs)

    return run
