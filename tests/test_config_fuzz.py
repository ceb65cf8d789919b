# SPDX-License-Identifier: GPL-3.0-or-later
"""Config and CLI fuzz: generated TOML and hostile files get one line, never a traceback.

Hypothesis writes config files: real and unknown keys, every TOML type, huge and 400-digit
numbers, NaN and infinity, NUL and control characters, nested tables and arrays, in several
encodings and with bytes flipped. :func:`load_config` must return a Config or raise one
:class:`ConfigError` line. Then hostile files (``/dev/zero``, a FIFO, a folder, UTF-16,
2 MiB, nesting past the parser's stack) through the real command line: exit 2, one line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glasses_assistant.config import STAGES, Config, add_stage_flags, load_config, overrides_from_args
from glasses_assistant.errors import ConfigError
from glasses_assistant.persona import PersonaError, load_persona
from glasses_assistant.tools.intents import parse_args, say_duration, say_span
from glasses_assistant.tools.phrasing import device_status
from glasses_assistant.tools.registry import ToolCallError, validate

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
DIGITS400 = "9" * 400
KEYS = sorted({f.name for cls in STAGES.values() for f in fields(cls)} | {"loudness", "", "a b", "é"})

scalars = st.one_of(
    st.integers(), st.integers(min_value=10**399, max_value=10**401), st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([f"RAW:{DIGITS400}.5", f"RAW:-{DIGITS400}", "RAW:1e400", "RAW:nan", "RAW:-inf",
                     "RAW:1979-05-27T07:32:00Z", "RAW:07:32:00", "RAW:0x7f", "RAW:0o17"]),
    st.text(max_size=40), st.sampled_from(["a\x00b", "\x1b[2J", "auto", "on", "en", "1", "true", "none"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
                      max_leaves=8)
tables = st.dictionaries(st.sampled_from([*STAGES, "radio", "models_dir"]),
                         st.one_of(st.dictionaries(st.sampled_from(KEYS), values, max_size=6), values), max_size=5)


def toml_value(v: Any) -> str:
    """A TOML literal for ``v`` (``RAW:`` strings are written as they are: 400-digit floats, dates)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return v[4:] if v.startswith("RAW:") else json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_doc(doc: dict[str, Any]) -> str:
    top = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    parts = ["\n".join(top)]
    for name, table in doc.items():
        if isinstance(table, dict):
            parts.append(f"[{name}]\n" + "\n".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(x)}"
                                                    for k, x in table.items()))
    return "\n".join(parts) + "\n"


def loads_or_one_line(data: bytes) -> Config | None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.toml"
        path.write_bytes(data)
        try:
            return load_config(path)
        except ConfigError as err:
            text = str(err)
            assert "\n" not in text and len(text) < 600, text
            return None


@given(tables)
@FUZZ
def test_generated_toml_is_a_config_or_one_line(doc: dict[str, Any]) -> None:
    loads_or_one_line(toml_doc(doc).encode("utf-8", "surrogatepass"))


@given(tables, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "latin-1", "cp1252"]),
       st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=4))
@FUZZ
def test_encodings_and_flipped_bytes_are_a_config_or_one_line(doc: dict[str, Any], codec: str,
                                                             flips: list[tuple[int, int]]) -> None:
    data = bytearray(toml_doc(doc).encode(codec, "replace"))
    for at, byte in flips:
        if data:
            data[at % len(data)] = byte
    loads_or_one_line(bytes(data))


@given(st.sampled_from([f"--{s}-{f.name.replace('_', '-')}" for s, c in STAGES.items() for f in fields(c)]),
       st.one_of(st.text(max_size=30), st.sampled_from([DIGITS400, f"{DIGITS400}.0", "1e400", "nan", "-inf",
                                                        "0x10", "1_000", " 3 ", "\x1b[2J"])))
@FUZZ
def test_generated_flags_are_a_config_or_one_line(flag: str, value: str) -> None:
    parser = argparse.ArgumentParser()
    add_stage_flags(parser)
    try:
        load_config(None, overrides_from_args(parser.parse_args([f"{flag}={value}"])))
    except ConfigError as err:
        assert "\n" not in str(err) and len(str(err)) < 600


@pytest.mark.parametrize(("text", "message"), [
    (f"[vad]\nthreshold = {DIGITS400}", "[vad] threshold must be float"),
    (f"[vad]\nthreshold = {DIGITS400}.5", "[vad] threshold must be a finite number"),
    ("[vad]\nthreshold = nan", "must be a finite number"),
    ("[llm]\ntemperature = -inf", "must be a finite number"),
    ('[memory]\npath = "mem\\u0000.db"', "must not contain a NUL character"),
    ("[memory]\nenabled = [true]", "[memory] enabled must be bool"),
    ("[stt]\nlanguage = true", "[stt] language must be str"),
    ('[translate]\nvoices = {fr = {a = 1}}', "must be a table of text values"),
    ("models_dir = 3", "models_dir must be a folder name"),
    ("[vad]\na = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
])
def test_hostile_values_name_the_setting(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_config(f)
    assert message in str(ei.value) and "\n" not in str(ei.value) and len(str(ei.value)) < 300


def hostile_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Files that once gave a traceback or read until memory ran out, and what the error says."""
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    utf16 = tmp_path / "utf16.toml"
    utf16.write_bytes('[vad]\nthreshold = 0.4\n'.encode("utf-16"))
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[persona]\nname = "caf\xe9"\n')
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    return {"/dev/zero": (Path("/dev/zero"), "not a regular file"), "a FIFO": (fifo, "not a regular file"),
            "a folder": (tmp_path, "not a regular file"), "UTF-16": (utf16, "UTF-16"),
            "Latin-1": (latin, "not UTF-8"), "2 MiB": (big, "larger than 1 MiB")}


def test_hostile_config_and_persona_files(tmp_path: Path) -> None:
    for what, (path, message) in hostile_files(tmp_path).items():
        with pytest.raises(ConfigError, match=message):
            load_config(path)
        with pytest.raises(PersonaError, match=message):
            load_persona(path)
        assert what


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "glasses_assistant", *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, check=False)


def assert_exit_2_one_line(r: subprocess.CompletedProcess[str], needle: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("glasses-assistant: error: "), r.stderr
    assert needle in lines[0], lines[0]


def test_cli_hostile_files_exit_2_with_one_line(tmp_path: Path) -> None:
    cases = hostile_files(tmp_path)
    for _what, (path, message) in cases.items():
        assert_exit_2_one_line(cli("persona", "list", "--config", str(path)), message)
    assert_exit_2_one_line(cli("persona", "check", "/dev/zero"), "not a regular file")
    assert_exit_2_one_line(cli("run", "--text", "hi", "--persona", "/dev/zero"), "not a regular file")
    nul = tmp_path / "nul.toml"
    nul.write_text('[memory]\npath = "a\\u0000b"\n')
    assert_exit_2_one_line(cli("memory", "list", "--config", str(nul)), "NUL")
    deep = tmp_path / "deep.toml"
    deep.write_text("[vad]\nx = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert_exit_2_one_line(cli("timers", "list", "--config", str(deep)), "nested too deeply")
    assert_exit_2_one_line(cli("run", "--text", "hi", "--vad-threshold", f"{DIGITS400}.0"),
                           "threshold must be a finite number")


def test_cli_firmware_update_inputs_exit_2_with_one_line(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from firmware_bridge.firmware import build_image

    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    good = tmp_path / "fw.img"
    good.write_bytes(build_image(os.urandom(1000), version="2.0", device_model="glasses-sim", counter=2,
                                 sign=key.sign, public_raw=pub))
    garbage = tmp_path / "garbage.img"
    garbage.write_bytes(b"GFWI\x01" + os.urandom(200))
    glasses = ["--glasses", "tcp://127.0.0.1:9", "--timeout", "5"]
    assert_exit_2_one_line(cli("device", "firmware", "/dev/zero", *glasses), "not a regular file")
    assert_exit_2_one_line(cli("device", "firmware", str(garbage), *glasses), "firmware image")
    assert_exit_2_one_line(cli("device", "firmware", str(good), *glasses), "cannot reach the glasses")


# ---------------------------------------------------------------- tool arguments and spoken numbers


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -math.inf, 10**400, "1e999", 1e300])
def test_llm_written_timer_arguments_get_a_spoken_answer(seconds: Any) -> None:
    with pytest.raises(ToolCallError) as ei:
        validate("set_timer", {"seconds": seconds}, ["set_timer"])
    assert str(ei.value).endswith(".") and "\n" not in str(ei.value)


@pytest.mark.parametrize("level", [math.nan, math.inf, 10**400])
def test_llm_written_volume_arguments_get_a_spoken_answer(level: Any) -> None:
    with pytest.raises(ToolCallError, match="number|0 to 100"):
        validate("volume", {"change": "set", "level": level}, ["volume"])


def test_a_400_digit_duration_is_refused_in_words() -> None:
    args = parse_args("set_timer", f"set a timer for {DIGITS400} minutes", ())
    with pytest.raises(ToolCallError, match="that long; the longest is 24 hours"):
        validate("set_timer", args, ["set_timer"])
    assert say_span(math.inf) == "a very long time" and say_duration(math.nan) == "very long"


@pytest.mark.parametrize(("pct", "temp"), [(math.nan, 30.0), (math.inf, 30.0), (50.0, math.nan), (1e39, -math.inf)])
def test_battery_answer_survives_hostile_telemetry(pct: float, temp: float) -> None:
    from firmware_bridge.client import TelemetrySample

    class Client:
        telemetry = TelemetrySample(pct, False, 4000, temp, "sizzling")

    said = device_status(Client())
    assert said.endswith(".") and "nan" not in said.lower() and "inf" not in said.lower()
