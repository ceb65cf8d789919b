# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad models, bad files and missing devices: one clear line, exit non-zero, no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from glasses_assistant.catalog import load_catalogue
from glasses_assistant.config import LlmConfig, load_config
from glasses_assistant.engines.llm import LlamaEngine
from glasses_assistant.errors import ModelError
from glasses_assistant.pipeline import Assistant

pytestmark = pytest.mark.models


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "glasses_assistant", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("glasses-assistant: error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture(scope="module")
def cache_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the model cache that the tests may damage."""
    src = load_catalogue().cache_dir
    dst = tmp_path_factory.mktemp("models")
    for entry in src.iterdir():
        shutil.copytree(entry, dst / entry.name)
    return dst


def test_corrupt_model_file_is_refused_by_sha256(cache_copy: Path) -> None:
    voice = cache_copy / "piper-en-us-joe-medium" / "en_US-joe-medium.onnx"
    data = voice.read_bytes()
    voice.write_bytes(data[:1000] + bytes(64) + data[1064:])  # same size, different bytes
    try:
        # The voice loads after the LLM: the tiny one, so the damaged voice is reached in seconds.
        with pytest.raises(ModelError, match="sha256 .* expected .* models fetch"):
            Assistant(load_config(overrides={"llm": {"profile": "tiny"}}), load_catalogue(cache_dir=cache_copy)).load()
        result = cli("run", "--text", "hello", "--models-dir", str(cache_copy), "--speaker", "off",
                     "--llm-profile", "tiny")
        assert_one_line_error(result, "piper-en-us-joe-medium", "sha256")
    finally:
        voice.write_bytes(data)


def test_missing_model_tells_how_to_fetch(cache_copy: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    result = cli("run", "--text", "hello", "--models-dir", str(empty), "--speaker", "off")
    assert_one_line_error(result, "is missing", "glasses-assistant models fetch")


TINY = "smollm2-135m-instruct-q4_1"
"""Bad-model handling does not depend on the brain: the 98 MB tiny model is damaged, not the 1.1 GB default."""


def test_gguf_that_is_not_a_chat_model(tmp_path: Path) -> None:
    cat = load_catalogue()
    gguf = cat.verify(cat.get(TINY))
    data = gguf.read_bytes()
    key = b"tokenizer.chat_template"
    assert key in data
    # Same length key, so every offset in the file stays valid: a base model without a template.
    base = tmp_path / "base-model.gguf"
    base.write_bytes(data.replace(key, b"tokenizer.chat_templatX", 1))
    with pytest.raises(ModelError, match="no chat template, so it is not a chat model"):
        LlamaEngine(base, LlmConfig())
    # With the format named, the same file loads and answers.
    engine = LlamaEngine(base, LlmConfig(chat_format="chatml"))
    assert engine.stream([{"role": "user", "content": "Hi"}], lambda _p: None, max_tokens=8)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(ModelError, match="is not a GGUF file"):
        LlamaEngine(junk, LlmConfig())
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError, match="cannot load LLM model"):
        LlamaEngine(truncated, LlmConfig())
    result = cli("run", "--text", "hello", "--llm-model", str(base), "--speaker", "off")
    assert_one_line_error(result, "not a chat model")


def test_user_supplied_model_paths_override_the_catalogue(tmp_path: Path) -> None:
    cat = load_catalogue()
    gguf = cat.verify(cat.get(TINY))  # any GGUF a user brings: here the tiny one, under another name
    own = tmp_path / "my-model.gguf"
    own.symlink_to(gguf)
    result = cli("run", "--text", "What is the capital of France?", "--llm-model", str(own), "--speaker", "off",
                 "--out", str(tmp_path / "r.wav"), "--trace", str(tmp_path / "t.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout and (tmp_path / "r.wav").stat().st_size > 10_000
    result = cli("run", "--text", "hi", "--llm-model", "/no/such/model.gguf")
    assert_one_line_error(result, "neither a catalogue id nor an existing path")
    result = cli("run", "--text", "hi", "--llm-model", "whisper-tiny-en")
    assert_one_line_error(result, "is a stt model, not a llm model")


def test_unreadable_wav_and_bad_flags(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("this is not audio")
    assert_one_line_error(cli("run", "--wav", str(bad), "--speaker", "off"), "not a RIFF/WAVE file")
    assert_one_line_error(cli("run", "--wav", str(tmp_path / "none.wav")), "cannot read WAV file")
    assert_one_line_error(cli("run", "--vad-threshold", "7"), "--vad-threshold must be between 0 and 1")


def test_bench_vs_takes_one_checked_setting() -> None:
    assert_one_line_error(cli("bench", "--vs", "hold_reply"), "--vs 'hold_reply': expected STAGE.FIELD=VALUE")
    assert_one_line_error(cli("bench", "--vs", "vad.take_back_ms=-5"), "--vad-take-back-ms must be 0..10000")
    assert_one_line_error(cli("bench", "--vs", "vad.no_such=1"), "no_such")


def test_mic_without_an_audio_device_says_so(tmp_path: Path) -> None:
    # No sound card here; an empty PulseAudio server address keeps a stray daemon out of it.
    result = cli("run", "--mic", env={"PULSE_SERVER": str(tmp_path / "no-pulse")}, timeout=60)
    assert_one_line_error(result, "no audio")


def test_llm_settings_that_cannot_work_are_one_line(tmp_path: Path) -> None:
    """An unknown chat format, or a system prompt that fills the context: refused at load."""
    out = ["--speaker", "off", "--out", str(tmp_path / "r.wav"), "--trace", str(tmp_path / "t.jsonl")]
    assert_one_line_error(cli("run", "--text", "hi", "--llm-chat-format", "bogus", *out),
                          "--llm-chat-format 'bogus' is not a chat format", "chatml")
    assert_one_line_error(cli("run", "--text", "hi", "--llm-system-prompt", "word " * 3000, *out),
                          "--llm-system-prompt takes about", "--llm-context 2048 is too small")


def test_a_400_digit_timer_gets_a_spoken_answer(tmp_path: Path) -> None:
    r = cli("run", "--text", f"set a timer for {'9' * 400} minutes", "--speaker", "off", "--out",
            str(tmp_path / "r.wav"), "--trace", str(tmp_path / "t.jsonl"), "--wait-timers", "0")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "the longest is 24 hours" in r.stdout, r.stdout


def test_a_model_too_big_for_the_memory_is_refused_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Not an OOM kill later: one line at start naming the model, its size and the tiny profile."""
    from glasses_assistant import cli as cli_module
    from glasses_assistant.engines import llm as llm_module

    monkeypatch.setattr(llm_module, "available_memory", lambda: 700 * 2**20)  # a board with 700 MB free
    args = ["run", "--speaker", "off", "--out", str(tmp_path / "r.wav"), "--trace", str(tmp_path / "t.jsonl")]
    assert cli_module.main([*args, "--text", "hello"]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("glasses-assistant: error:")]
    assert len(errors) == 1, errors
    assert "qwen2.5-coder-1.5b-q4_k_m (1.1 GB file)" in errors[0] and "--llm-profile tiny" in errors[0], errors[0]
    # The tiny profile fits there, and answers.
    assert cli_module.main([*args, "--text", "What is the capital of France?", "--llm-profile", "tiny"]) == 0
    assert "paris" in capsys.readouterr().out.lower()

