# SPDX-License-Identifier: GPL-3.0-or-later
"""The newcomer's commands: config show, --version, shell completion, one line for a missing extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from glasses_assistant import extras
from glasses_assistant.cli import main
from glasses_assistant.config import load_config, tomllib

BIN = Path(sys.executable).parent


def test_config_show_says_where_each_setting_came_from_and_loads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GLASSES_ASSISTANT_MODELS", raising=False)
    cfg = tmp_path / "my.toml"
    cfg.write_text('[vad]\nend_silence_ms = 900\nthreshold = 0.4\n[llm]\nsystem_prompt = "Be \\"brief\\".\\nReally."\n')
    assert main(["config", "show", "--config", str(cfg), "--vad-threshold", "0.7", "--persona-name", "guide"]) == 0
    out = capsys.readouterr().out
    lines, section = {}, ""
    for ln in out.splitlines():
        if ln.startswith("["):
            section = ln.strip("[]") + "."
        elif "=" in ln:
            lines[section + ln.split("=")[0].strip("# ").strip()] = ln
    assert lines["vad.threshold"].split("#")[0].strip() == "threshold = 0.7"
    assert lines["vad.threshold"].endswith("# flag --vad-threshold")  # the flag wins over the file
    assert lines["vad.end_silence_ms"].endswith(f"# file {cfg}")
    assert lines["vad.min_speech_ms"].endswith("# default")
    assert lines["persona.name"].endswith("# flag --persona-name")
    assert "(not set)" in lines["mic.device"]
    assert lines["models_dir"].endswith("# default")
    # Saved, the output is a config file giving the very same settings.
    saved = tmp_path / "saved.toml"
    saved.write_text(out)
    assert tomllib.loads(out)["vad"]["threshold"] == 0.7
    expected = load_config(cfg, {"vad": {"threshold": "0.7"}, "persona": {"name": "guide"}})
    again = load_config(saved)
    assert again.vad == expected.vad and again.llm == expected.llm and again.persona == expected.persona
    assert again.llm.system_prompt == 'Be "brief".\nReally.'


def test_config_show_json_and_env_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLASSES_ASSISTANT_MODELS", str(tmp_path / "models"))
    assert main(["config", "show", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows["models_dir"] == {"value": str(tmp_path / "models"), "source": "env GLASSES_ASSISTANT_MODELS"}
    assert rows["stt.model"] == {"value": None, "source": "default"}
    bad = tmp_path / "bad.toml"
    bad.write_text("[vad]\nthreshold = 7\n")
    assert main(["config", "show", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glasses-assistant: error: --vad-threshold must be between 0 and 1") and err.count("\n") == 1


def test_versions() -> None:
    for cmd in ("glasses-assistant", "glasses-sim"):
        r = subprocess.run([BIN / cmd, "--version"], capture_output=True, text=True, check=True)
        assert r.stdout.startswith(f"{cmd} 0."), r.stdout
    r = subprocess.run([BIN / "glasses-sim", "--version"], capture_output=True, text=True, check=True)
    assert "firmware sim-" in r.stdout and "bridge protocol" in r.stdout


@pytest.mark.parametrize(("line", "expected"), [
    ("glasses-assistant mod", "models"),
    ("glasses-assistant models ex", "export"),
    ("glasses-assistant config sh", "show"),
    ("glasses-assistant run --vad-th", "--vad-threshold"),
    ("glasses-sim --mic-w", "--mic-wav"),
])
def test_bash_completion_completes_commands_and_flags(line: str, expected: str) -> None:
    """The generated script, loaded into a real bash, completes as a user's Tab would."""
    cmd, *words = line.split()
    script = f"""
source <({BIN / cmd} --print-completion bash)
fn=$(complete -p {cmd} | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p')
COMP_WORDS=({line}); COMP_CWORD={len(words)}; COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}
$fn {cmd} {words[-1]} {words[-2] if len(words) > 1 else cmd}
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert expected in r.stdout.split(), (r.stdout, r.stderr)


def test_completion_scripts_for_zsh_and_tcsh() -> None:
    for shell in ("zsh", "tcsh"):
        r = subprocess.run([BIN / "glasses-assistant", "--print-completion", shell], capture_output=True, text=True,
                           check=True)
        assert "models" in r.stdout and "export" in r.stdout and "show" in r.stdout
        if shell == "zsh":  # tcsh's completion knows the words, not every subcommand's flags
            assert "--vad-threshold" in r.stdout


def test_a_missing_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    real = extras.missing
    monkeypatch.setattr(extras, "missing", lambda module: module == "sacrebleu" or real(module))
    assert main(["translate-bench"]) == 2
    err = capsys.readouterr().err
    assert err == ("glasses-assistant: error: translate-bench (chrF) needs sacrebleu, from the 'bench' extra: "
                   "pip install 'glasses-assistant[bench]' (in a checkout, `make` installs it)\n")
