# SPDX-License-Identifier: GPL-3.0-or-later
"""Scenario files: what to play into the glasses, and what must come out.

A scenario is a TOML file (see docs/hil.md for every key)::

    [scenario]
    description = "A spoken question is answered aloud."
    requires = ["speaker"]          # capabilities: camera, speaker, microphone, buttons, display
    turns = 1                       # serve(max_turns=...)
    listen_mode = "always"          # always | wake | tap
    listen_s = 20                   # stop listening after this long (default: the audio + 25 s)

    [[audio]]                       # played as the wearer's voice, in order
    say = "What is the capital of France?"     # synthesised (Piper, repeatable), or
    # file = "audio/question.wav"              # a WAV, relative to the scenario file

    [camera]
    images = ["/usr/share/darknet/data/dog.jpg"]

    [[press]]
    kind = "tap"                    # tap | double_tap | long_press
    at_s = 1.0

    [sim]                           # only on the virtual glasses: faults and device state
    drop = 3                        # % of frames dropped, corrupt = %, delay_ms, disconnect_every_s,
    seed = 7                        # battery (start %), temperature_c, hide = ["camera"]

    [expect]
    behaviour = "The bridge repairs the link; the answer is still right."
    transcript_contains = ["capital", "france"]     # every word
    answer_contains = ["paris"]                      # any of them
    max_voice_to_voice_ms = 3000

Checking is pure (:func:`check`), so the rules are unit-tested without models or devices.
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CAPABILITIES = ("camera", "speaker", "microphone", "buttons", "display")
LISTEN_MODES = ("always", "wake", "tap")
PRESS_KINDS = ("tap", "double_tap", "long_press")
THERMAL_STATES = ("nominal", "warm", "hot", "critical")
SPOKEN_MIN_S = 0.2
"""Less speaker audio than this is no answer. Not half a second: the 1.5B answers in a word
("Rome.", about 0.5 s of speech), and a word is an answer."""
SIM_KEYS = {"drop", "corrupt", "delay_ms", "disconnect_every_s", "seed", "battery", "temperature_c", "hide",
            "capture_latency_ms", "link", "display", "mic_after_reply"}
EXPECT_KEYS = {
    "behaviour", "which", "turns", "min_turns", "min_answered", "outcome", "transcript_contains",
    "transcript_startswith", "transcript_excludes", "answer_contains", "answer_excludes", "answer_matches",
    "heard_contains", "speaker_audio", "vision_intent", "vision_labels", "vision_problem", "photo_saved",
    "led_on", "max_voice_to_voice_ms", "bridge", "telemetry", "translation_outcome", "captions_contain",
}


class ScenarioError(ValueError):
    """A scenario file that cannot be run as written (one line, names the file and key)."""


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: what expectations compare."""
    return re.findall(r"[a-z0-9']+", text.lower())


def sounds_like(word: str, heard: list[str]) -> bool:
    """Whether ``word`` is among the words Whisper heard in the speaker's audio, allowing a near miss
    for words of four letters or more (similarity 0.7 or over: "harris" for "paris" is 0.73).

    The check's ear is whisper-tiny, and the terse brain's answer can be one short word: "Paris."
    (0.5 s) came back as "Harris." through Halo's LC3 codec, and "Rome." as "Broome", now and then
    even when the transcription is told the question. Shorter words must match exactly.
    """
    if len(word) < 4:
        return word in heard
    return any(difflib.SequenceMatcher(None, word, h).ratio() >= 0.7 for h in heard)


@dataclass(frozen=True)
class Audio:
    say: str | None = None
    file: Path | None = None
    voice: str | None = None
    """Who says ``say``: a voice spec (``espeak-ng:fr``, a Piper id or path); None is the wearer's Piper voice."""


@dataclass(frozen=True)
class Press:
    kind: str
    at_s: float


@dataclass(frozen=True)
class Expectation:
    behaviour: str = ""
    which: str = "first"
    """Which turn the per-turn expectations apply to: first | last | any | all."""
    turns: int | None = None
    min_turns: int | None = None
    min_answered: int | None = None
    outcome: str | None = None
    transcript_contains: tuple[str, ...] = ()
    transcript_startswith: str | None = None
    transcript_excludes: tuple[str, ...] = ()
    answer_contains: tuple[str, ...] = ()
    answer_excludes: tuple[str, ...] = ()
    answer_matches: str | None = None
    heard_contains: tuple[str, ...] = ()
    """Any of these words in what the glasses' speaker played, transcribed again (sim only)."""
    speaker_audio: bool | None = None
    vision_intent: str | None = None
    vision_labels: tuple[str, ...] = ()
    vision_problem: str | None = None
    photo_saved: bool | None = None
    led_on: bool | None = None
    translation_outcome: str | None = None
    """translated | not-translated | unsupported | unsure | no-text | ... (the turn's translation record)."""
    captions_contain: tuple[str, ...] = ()
    """Any of these words in the translation captions the glasses' display received (sim with display)."""
    max_voice_to_voice_ms: float | None = None
    bridge: dict[str, int] = field(default_factory=dict)
    """Bridge counter minimums; a key may add counters: "decoder_crc_errors+decoder_header_crc_errors"."""
    telemetry: dict[str, Any] = field(default_factory=dict)
    """battery_below, battery_above (%), thermal_state (any of a list), temperature_above (°C)."""


@dataclass(frozen=True)
class Scenario:
    id: str
    path: Path
    description: str = ""
    requires: tuple[str, ...] = ()
    turns: int = 1
    listen_mode: str = "always"
    listen_s: float | None = None
    mic_gap_s: float = 1.5
    audio: tuple[Audio, ...] = ()
    images: tuple[Path, ...] = ()
    presses: tuple[Press, ...] = ()
    sim: dict[str, Any] = field(default_factory=dict)
    expect: Expectation = field(default_factory=Expectation)
    tags: tuple[str, ...] = ()

    @property
    def sim_only(self) -> str | None:
        """Why this scenario cannot run on a real device (None: it can)."""
        faults = sorted(k for k in self.sim if k not in ("seed", "link"))
        if faults:
            return f"needs the virtual glasses to inject {', '.join(faults)}"
        if self.presses:
            return "needs button presses, which only the virtual glasses can make (or a bench actuator)"
        if self.expect.heard_contains or self.expect.speaker_audio:
            return "checks the speaker's output, which only the virtual glasses record"
        if self.images:
            return "shows images on the camera, which only the virtual glasses can do (point a bench camera instead)"
        return None

    @property
    def emulator_unsupported(self) -> str | None:
        """Why this scenario cannot run on Brilliant's Halo emulator (None: it can).

        The emulator takes taps, a battery level, photos (our camera stub) and WAVs for its
        microphone; glasses-sim's link faults, serial link, hidden capabilities, temperatures and
        captions file are glasses-sim's alone."""
        faults = sorted(k for k in self.sim if k not in ("seed", "battery"))
        if faults:
            return f"needs glasses-sim to inject {', '.join(faults)}"
        if any(p.kind not in ("tap", "double_tap") for p in self.presses):
            return "needs a held button, which Brilliant's glasses report only as one long press"
        return None

    def sim_args(self) -> list[str]:
        """The scenario's presses and faults as glasses-sim arguments."""
        s, args = self.sim, []
        for key, flag in (("drop", "--drop"), ("corrupt", "--corrupt"), ("delay_ms", "--delay"),
                          ("disconnect_every_s", "--disconnect-every"), ("seed", "--seed"),
                          ("battery", "--battery"), ("capture_latency_ms", "--capture-latency")):
            if key in s:
                args += [flag, str(s[key])]
        for p in self.presses:
            args += ["--press", f"{p.kind}@{p.at_s}"]
        if s.get("display"):
            args += ["--display"]
        if s.get("mic_after_reply"):
            args += ["--mic-after-reply"]
        return args

    def ext_args(self) -> list[str]:
        """Arguments only the harness's sim wrapper (:mod:`.simext`) understands."""
        args = []
        for cap in self.sim.get("hide", ()):
            args += ["--hide", cap]
        if "temperature_c" in self.sim:
            args += ["--temperature", str(self.sim["temperature_c"])]
        return args


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ScenarioError(f"{where} must be a string or a list of strings")


def _expectation(raw: dict[str, Any], where: str) -> Expectation:
    unknown = set(raw) - EXPECT_KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown [expect] key {sorted(unknown)[0]!r}")
    kw: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("transcript_contains", "transcript_excludes", "answer_contains", "answer_excludes",
                   "heard_contains", "vision_labels", "captions_contain"):
            kw[key] = tuple(w.lower() for w in _strs(value, f"{where}: expect.{key}"))
        elif key == "which":
            if value not in ("first", "last", "any", "all"):
                raise ScenarioError(f"{where}: expect.which must be first, last, any or all (got {value!r})")
            kw[key] = value
        elif key == "answer_matches":
            try:
                re.compile(value)
            except (re.error, TypeError) as err:
                raise ScenarioError(f"{where}: expect.answer_matches is not a regex: {err}") from None
            kw[key] = value
        elif key in ("bridge", "telemetry"):
            if not isinstance(value, dict):
                raise ScenarioError(f"{where}: [expect.{key}] must be a table")
            kw[key] = dict(value)
        else:
            kw[key] = value
    return Expectation(**kw)


def load_scenario(path: Path) -> Scenario:
    path = Path(path)
    where = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ScenarioError(f"{where}: {err}") from None
    unknown = set(raw) - {"scenario", "audio", "camera", "press", "sim", "expect"}
    if unknown:
        raise ScenarioError(f"{where}: unknown table [{sorted(unknown)[0]}]")
    head = raw.get("scenario", {})
    requires = _strs(head.get("requires", []), f"{where}: scenario.requires")
    bad = [r for r in requires if r not in CAPABILITIES]
    if bad:
        raise ScenarioError(f"{where}: unknown capability {bad[0]!r} (one of {', '.join(CAPABILITIES)})")
    mode = head.get("listen_mode", "always")
    if mode not in LISTEN_MODES:
        raise ScenarioError(f"{where}: scenario.listen_mode must be one of {', '.join(LISTEN_MODES)}")
    audio = []
    for i, a in enumerate(raw.get("audio", [])):
        if ("say" in a) == ("file" in a):
            raise ScenarioError(f"{where}: [[audio]] #{i + 1} needs exactly one of say or file")
        if "file" in a:
            f = (path.parent / a["file"]).resolve()
            if not f.is_file():
                raise ScenarioError(f"{where}: [[audio]] file {a['file']!r} not found")
            audio.append(Audio(file=f))
        else:
            audio.append(Audio(say=str(a["say"]), voice=str(a["voice"]) if "voice" in a else None))
    images = []
    for img in _strs(raw.get("camera", {}).get("images", []), f"{where}: camera.images"):
        images.append((path.parent / img).resolve())
    presses = []
    for p in raw.get("press", []):
        if p.get("kind") not in PRESS_KINDS:
            raise ScenarioError(f"{where}: press kind must be one of {', '.join(PRESS_KINDS)}")
        presses.append(Press(p["kind"], float(p.get("at_s", 1.0))))
    sim = dict(raw.get("sim", {}))
    bad_sim = set(sim) - SIM_KEYS
    if bad_sim:
        raise ScenarioError(f"{where}: unknown [sim] key {sorted(bad_sim)[0]!r}")
    for cap in sim.get("hide", []):
        if cap not in ("camera", "speaker", "buttons"):
            raise ScenarioError(f"{where}: sim.hide can hide camera, speaker or buttons (got {cap!r})")
    if "camera" in requires and not images and "camera" not in sim.get("hide", []):
        pass  # the sim's synthetic test card
    return Scenario(
        id=str(head.get("id", path.stem)), path=path, description=str(head.get("description", "")),
        requires=requires, turns=int(head.get("turns", 1)), listen_mode=mode,
        listen_s=float(head["listen_s"]) if "listen_s" in head else None,
        mic_gap_s=float(head.get("mic_gap_s", 1.5)), audio=tuple(audio), images=tuple(images),
        presses=tuple(presses), sim=sim, expect=_expectation(raw.get("expect", {}), where),
        tags=_strs(head.get("tags", []), f"{where}: scenario.tags"),
    )


def missing_capabilities(requires: tuple[str, ...] | list[str], caps: Any) -> list[str]:
    """The required capabilities a device lacks, from its ``Capabilities`` (None: reported nothing)."""
    return [r for r in requires if not bool(getattr(caps, f"has_{r}", False))]


def skip_reason(scenario: Scenario, caps: Any, device: str) -> str | None:
    missing = missing_capabilities(scenario.requires, caps)
    if missing:
        return f"{scenario.id}: needs {' and '.join(missing)}; {device} has no {' or '.join(missing)}"
    return None


def load_quarantine(path: Path) -> dict[str, tuple[str, str]]:
    """scenarios/quarantine.toml: ``id = "reason"`` or ``id = {reason = "...", mode = "skip"}``.

    Returns id -> (mode, reason); mode is xfail (runs, a pass is reported as XPASS) or skip.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{path}: {err}") from None
    out = {}
    for sid, entry in raw.get("quarantine", {}).items():
        if isinstance(entry, str):
            out[sid] = ("xfail", entry)
        elif isinstance(entry, dict) and isinstance(entry.get("reason"), str):
            mode = entry.get("mode", "xfail")
            if mode not in ("xfail", "skip"):
                raise ScenarioError(f"{path}: quarantine.{sid}.mode must be xfail or skip")
            out[sid] = (mode, entry["reason"])
        else:
            raise ScenarioError(f"{path}: quarantine.{sid} needs a reason")
    return out


@dataclass
class Observed:
    """What a run produced, in plain data (traces as their to_json() dicts)."""

    turns: list[dict[str, Any]]
    bridge: dict[str, int] = field(default_factory=dict)
    telemetry_start: dict[str, Any] | None = None
    telemetry_end: dict[str, Any] | None = None
    led_on_seen: bool = False
    speaker_s: float | None = None
    heard: str | None = None
    photos: list[str] = field(default_factory=list)
    captions: list[dict[str, Any]] = field(default_factory=list)
    """What the glasses' display received (sim with ``display = true``)."""


def _turn_failures(e: Expectation, t: dict[str, Any]) -> list[str]:
    fails = []
    said, reply = str(t.get("transcript", "")), str(t.get("reply", ""))
    sw, rw = set(words(said)), set(words(reply))
    if e.outcome is not None and t.get("outcome") != e.outcome:
        fails.append(f"outcome {t.get('outcome')!r} (error: {t.get('error')}), expected {e.outcome!r}")
    missing = [w for w in e.transcript_contains if w not in sw]
    if missing:
        fails.append(f"transcript {said!r} lacks {missing}")
    if e.transcript_startswith is not None and not said.lower().startswith(e.transcript_startswith.lower()):
        fails.append(f"transcript {said!r} does not start with {e.transcript_startswith!r}")
    if any(w in sw for w in e.transcript_excludes):
        fails.append(f"transcript {said!r} contains one of {list(e.transcript_excludes)}")
    if e.answer_contains and not (set(e.answer_contains) & rw):
        fails.append(f"answer {reply!r} has none of {list(e.answer_contains)}")
    if any(w in rw for w in e.answer_excludes):
        fails.append(f"answer {reply!r} contains one of {list(e.answer_excludes)}")
    if e.answer_matches is not None and not re.search(e.answer_matches, reply, re.IGNORECASE):
        fails.append(f"answer {reply!r} does not match /{e.answer_matches}/")
    vision = t.get("vision") or {}
    if e.vision_intent is not None and vision.get("intent") != e.vision_intent:
        fails.append(f"vision intent {vision.get('intent')!r}, expected {e.vision_intent!r}")
    labels = {str(x).lower() for x in vision.get("labels") or ()}
    lacking = [x for x in e.vision_labels if x not in labels]
    if lacking:
        fails.append(f"vision labels {sorted(labels)} lack {lacking}")
    if e.vision_problem is not None and vision.get("problem") != e.vision_problem:
        fails.append(f"vision problem {vision.get('problem')!r}, expected {e.vision_problem!r}")
    if e.photo_saved is not None and bool(vision.get("photo")) != e.photo_saved:
        fails.append(f"photo saved: {bool(vision.get('photo'))}, expected {e.photo_saved}")
    translation = t.get("translation") or {}
    if e.translation_outcome is not None and translation.get("outcome") != e.translation_outcome:
        fails.append(f"translation outcome {translation.get('outcome')!r}, expected {e.translation_outcome!r}")
    v2v = t.get("voice_to_voice_ms")
    if e.max_voice_to_voice_ms is not None and t.get("outcome") == "answered":
        if v2v is None:
            fails.append("no voice-to-voice time (no reply audio)")
        elif v2v > e.max_voice_to_voice_ms:
            fails.append(f"voice-to-voice {v2v:.0f} ms > {e.max_voice_to_voice_ms:.0f} ms")
    return fails


def check(e: Expectation, obs: Observed) -> list[str]:
    """Every expectation the observation breaks, one readable line each (empty: passed)."""
    fails: list[str] = []
    turns = obs.turns
    answered = [t for t in turns if t.get("outcome") == "answered"]
    if e.turns is not None and len(turns) != e.turns:
        fails.append(f"{len(turns)} turns, expected {e.turns}: {[t.get('transcript') for t in turns]}")
    if e.min_turns is not None and len(turns) < e.min_turns:
        fails.append(f"{len(turns)} turns, expected at least {e.min_turns}")
    if e.min_answered is not None and len(answered) < e.min_answered:
        fails.append(f"{len(answered)} turns answered, expected at least {e.min_answered}")
    per_turn = any(getattr(e, k) for k in (
        "transcript_contains", "transcript_excludes", "answer_contains", "answer_excludes", "vision_labels",
    )) or any(getattr(e, k) is not None for k in (
        "outcome", "transcript_startswith", "answer_matches", "vision_intent", "vision_problem", "photo_saved",
        "max_voice_to_voice_ms", "translation_outcome",
    ))
    if per_turn:
        if not turns:
            fails.append("no turn was recorded")
        elif e.which == "first":
            fails += _turn_failures(e, turns[0])
        elif e.which == "last":
            fails += _turn_failures(e, turns[-1])
        elif e.which == "all":
            for i, t in enumerate(turns):
                fails += [f"turn {i + 1}: {f}" for f in _turn_failures(e, t)]
        else:
            every = [_turn_failures(e, t) for t in turns]
            if all(every):
                closest = min(every, key=len)
                fails.append("no turn met every expectation; closest: " + "; ".join(closest))
    shown = " ".join(str(c.get("text", "")) for c in obs.captions if c.get("kind") == "translation")
    if e.captions_contain and not (set(e.captions_contain) & set(words(shown))):
        fails.append(f"the display showed translations {shown!r}, none of {list(e.captions_contain)}")
    if e.heard_contains and not any(sounds_like(w, words(obs.heard or "")) for w in e.heard_contains):
        fails.append(f"the glasses' speaker played {obs.heard!r}, none of {list(e.heard_contains)}")
    if e.speaker_audio is not None and bool(obs.speaker_s and obs.speaker_s > SPOKEN_MIN_S) != e.speaker_audio:
        fails.append(f"speaker played {obs.speaker_s or 0:.1f} s of audio, expected audio: {e.speaker_audio}")
    if e.led_on is not None and obs.led_on_seen != e.led_on:
        fails.append(f"capture LED seen on: {obs.led_on_seen}, expected {e.led_on}")
    for key, minimum in e.bridge.items():
        value = sum(int(obs.bridge.get(k.strip(), 0)) for k in key.split("+"))
        if value < int(minimum):
            fails.append(f"bridge {key} = {value}, expected >= {minimum}")
    tel = e.telemetry
    if tel:
        end = obs.telemetry_end or obs.telemetry_start
        if end is None:
            fails.append("no telemetry received from the glasses")
        else:
            pct = float(end.get("battery_percent", -1))
            if "battery_below" in tel and not pct < float(tel["battery_below"]):
                fails.append(f"battery {pct:.1f} %, expected below {tel['battery_below']} %")
            if "battery_above" in tel and not pct > float(tel["battery_above"]):
                fails.append(f"battery {pct:.1f} %, expected above {tel['battery_above']} %")
            if "thermal_state" in tel:
                states = _strs(tel["thermal_state"], "expect.telemetry.thermal_state")
                if end.get("thermal_state") not in states:
                    fails.append(f"thermal state {end.get('thermal_state')!r}, expected one of {list(states)}")
            if "temperature_above" in tel and not float(end.get("temperature_c", 0)) > float(tel["temperature_above"]):
                fails.append(f"temperature {end.get('temperature_c')} °C, expected above {tel['temperature_above']}")
    return fails
