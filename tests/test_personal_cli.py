# SPDX-License-Identifier: GPL-3.0-or-later
"""The memory, timers, persona and tools commands, in-process on a temporary database (no models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glasses_assistant.cli import main
from glasses_assistant.memory import MemoryStore


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "memory.db"
    s = MemoryStore(path)
    s.remember("my car is on level 3")
    s.remember("my keys are in the blue bowl")
    s.add_timer("timer", "tea", 4102444800.0, 300)
    s.close()
    return path


def test_memory_commands(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flag = ["--memory-path", str(db)]
    assert main(["memory", "list", *flag]) == 0
    assert "my keys are in the blue bowl" in capsys.readouterr().out
    assert main(["memory", "search", "where did I park", *flag]) == 0
    assert capsys.readouterr().out.split("\n")[0].endswith("my car is on level 3")
    out = tmp_path / "export.json"
    assert main(["memory", "export", str(out), *flag]) == 0
    data = json.loads(out.read_text())
    assert [m["text"] for m in data["memories"]] == ["my car is on level 3", "my keys are in the blue bowl"]
    assert data["timers"][0]["label"] == "tea"
    assert main(["memory", "delete", "1", *flag]) == 0
    assert main(["memory", "delete", "1", *flag]) == 1
    assert main(["memory", "check", *flag]) == 0
    assert main(["memory", "forget-all", "--yes", *flag]) == 0
    capsys.readouterr()
    assert main(["memory", "list", *flag]) == 0
    assert capsys.readouterr().out.startswith("0 memories")


def test_timers_commands(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flag = ["--memory-path", str(db)]
    assert main(["timers", "list", *flag]) == 0
    assert "tea" in capsys.readouterr().out
    assert main(["timers", "cancel", "1", *flag]) == 0
    assert main(["timers", "cancel", "1", *flag]) == 1
    assert main(["timers", "list", "--all", *flag]) == 0
    assert "cancelled" in capsys.readouterr().out


def test_persona_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["persona", "list"]) == 0
    assert {"default", "guide", "buddy"} <= set(capsys.readouterr().out.split())
    assert main(["persona", "show", "guide"]) == 0
    assert "espeak-ng:en" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nsystem_prompt = "x"\ntools = ["fly"]\n')
    assert main(["persona", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "unknown tool 'fly'" in err
    assert main(["run", "--persona", "pirate", "--text", "hi"]) == 2
    assert "no persona called 'pirate'" in capsys.readouterr().err


def test_tools_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools", "list", "--persona-name", "buddy"]) == 0
    out = capsys.readouterr().out
    assert "set_timer" in out and "take_photo         no" in out
