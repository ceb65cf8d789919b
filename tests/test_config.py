# SPDX-License-Identifier: GPL-3.0-or-later
"""Config validation: TOML, flags, and a clear one-line message for each bad value."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from glasses_assistant.config import (
    Config,
    add_stage_flags,
    load_config,
    overrides_from_args,
)
from glasses_assistant.errors import ConfigError


def flags(*argv: str) -> dict[str, dict[str, object]]:
    parser = argparse.ArgumentParser()
    add_stage_flags(parser)
    return overrides_from_args(parser.parse_args(list(argv)))


def test_defaults_are_valid() -> None:
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert cfg.stt.language == "en" and cfg.llm.temperature == 0.0 and cfg.vad.end_silence_ms == 800


def test_toml_then_flags_override(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[vad]\nend_silence_ms = 700\n[llm]\nthreads = 1\nmodel = "/x/y.gguf"\n')
    cfg = load_config(f, flags("--vad-end-silence-ms", "400", "--tts-threads", "2"))
    assert cfg.vad.end_silence_ms == 400  # flag wins over the file
    assert cfg.llm.threads == 1 and cfg.llm.model == "/x/y.gguf"
    assert cfg.tts.threads == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--vad-threshold", "1.5"], "--vad-threshold must be between 0 and 1 (got 1.5)"),
        (["--vad-threshold", "loud"], "[vad] threshold must be float (got 'loud')"),
        (["--llm-threads", "0"], "--llm-threads must be 1..64 (got 0)"),
        (["--llm-max-tokens", "5000"], "--llm-max-tokens must be 8..1024 (got 5000)"),
        (["--stt-language", "english"], "--stt-language must be a 2- or 3-letter language code"),
        (["--stt-device", "tpu"], "--stt-device must be cpu, cuda or auto (got 'tpu')"),
        (["--vad-pause-ms", "900"], "--vad-pause-ms must be 1..end_silence_ms (800) (got 900)"),
        (["--vad-max-utterance-s", "600"], "--vad-max-utterance-s must be 1..30 seconds (got 600.0)"),
        (["--tts-length-scale", "0"], "--tts-length-scale must be 0.3..3 (got 0.0)"),
        (["--llm-context", "2.5"], "[llm] context must be int (got '2.5')"),
        (["--vad-threshold", "none"], "[vad] threshold must be float, not none"),  # once a TypeError
        (["--vad-hold-below", "2"], "--vad-hold-below must be between 0 and 1 (got 2.0)"),
    ],
)
def test_bad_values_get_one_clear_line(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, flags(*argv))
    text = str(err.value)
    assert message in text
    assert "\n" not in text


def test_unknown_keys_and_bad_files(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[vad]\nloudness = 3\n")
    with pytest.raises(ConfigError, match=r"\[vad\] has no setting 'loudness'"):
        load_config(f)
    f.write_text("[radio]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'radio'"):
        load_config(f)
    f.write_text("[vad\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")


def test_flag_none_clears_an_optional_value() -> None:
    cfg = load_config(None, flags("--stt-language", "none"))
    assert cfg.stt.language is None


def test_llm_profiles_and_the_memory_check(tmp_path: Path) -> None:
    from glasses_assistant.config import LlmConfig
    from glasses_assistant.engines.llm import ensure_fits, resident_estimate
    from glasses_assistant.errors import ConfigError, ModelError

    assert LlmConfig().wanted is None  # the catalogue's default chat model
    assert LlmConfig(profile="tiny").wanted == "smollm2-135m-instruct-q4_1"
    assert LlmConfig(profile="tiny", model="/my/own.gguf").wanted == "/my/own.gguf"  # a model named wins
    # The default persona speaks to each model in the prompt it was tuned with.
    from glasses_assistant.config import DEFAULT_SYSTEM_PROMPT, TINY_SYSTEM_PROMPT

    assert LlmConfig().default_prompt == DEFAULT_SYSTEM_PROMPT
    assert LlmConfig(profile="tiny").default_prompt == TINY_SYSTEM_PROMPT
    assert LlmConfig(model="/my/own.gguf").default_prompt == DEFAULT_SYSTEM_PROMPT
    with pytest.raises(ConfigError, match="--llm-profile must be one of default, tiny"):
        load_config(overrides={"llm": {"profile": "huge"}})
    gguf = tmp_path / "big.gguf"
    with gguf.open("wb") as f:
        f.truncate(3 * 2**30)  # a 3 GB file (sparse: nothing is written)
    cfg = LlmConfig()
    need = resident_estimate(gguf, cfg)
    assert 3 * 2**30 < need < 3.3 * 2**30
    with pytest.raises(ModelError, match=r"the LLM big \(3\.2 GB file\) needs about 3\.4 GB of memory and only "
                                         r"1\.1 GB is available here: use the tiny profile"):
        ensure_fits(gguf, cfg, "big", available=2**30)
    ensure_fits(gguf, cfg, "big", available=8 * 2**30)  # fits: nothing said



def test_vision_phrasing_is_plain_unless_asked() -> None:
    assert load_config().vision.phrasing == "plain"
    assert load_config(overrides={"vision": {"phrasing": "llm"}}).vision.phrasing == "llm"
    with pytest.raises(ConfigError, match="--vision-phrasing must be plain or llm"):
        load_config(overrides={"vision": {"phrasing": "poetic"}})
