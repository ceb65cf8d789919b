# SPDX-License-Identifier: GPL-3.0-or-later
"""The house rules, read from the code's own imports (``ast``, nothing is imported or run).

* ``firmware_bridge/`` never imports ``glasses_assistant``: the bridge is a library of its own.
* Nothing below the composition root imports it: engines, skills, the listening, routing and
  speaking sides are wired by ``pipeline.py``, never the other way round.
* There is no import cycle in either package, counting every import (also those inside
  functions and under ``TYPE_CHECKING``): a cycle hidden behind a function-local import is
  still a cycle.

docs/architecture.md explains the rooms these rules keep apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("glasses_assistant", "firmware_bridge")
COMPOSITION_ROOT = "glasses_assistant.pipeline"
# Rooms that must never reach up to the composition root (they are what it wires).
BELOW_THE_ROOT = ("engines", "tools", "translate", "vision", "audio", "listen", "dispatch", "reply", "skill",
                  "personal", "catalog", "config", "controller", "turn", "phrases", "conversation", "trace",
                  "memory", "persona", "camera", "router", "errors")
# Who may assemble a whole assistant: the command line, benchmarks, the HIL runner, the deploy health check.
MAY_USE_THE_ROOT = ("glasses_assistant.cli", "glasses_assistant.benches", "glasses_assistant.hil",
                    "glasses_assistant.deploy", "glasses_assistant.personal_cli", "glasses_assistant.__main__")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[module_name(path)] = path
    return out


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of the two packages that ``module`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def add(name: str) -> None:
        # The longest known prefix: "a.b.c" where a.b.c is a module, else a.b (a package's __init__).
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, is_package, node)
            for alias in node.names:
                full = f"{target}.{alias.name}"
                add(full if full in known else target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = all_modules()
    return {m: imports_of(m, p, known) for m, p in known.items()}


def test_firmware_bridge_never_imports_the_assistant(graph: dict[str, set[str]]) -> None:
    bad = {m: sorted(i for i in deps if i.startswith("glasses_assistant"))
           for m, deps in graph.items() if m.startswith("firmware_bridge")}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_nothing_below_the_composition_root_imports_it(graph: dict[str, set[str]]) -> None:
    offenders = []
    for m, deps in graph.items():
        if COMPOSITION_ROOT not in deps:
            continue
        room = m.split(".")[1] if m.count(".") >= 1 else m
        if room in BELOW_THE_ROOT or not m.startswith(MAY_USE_THE_ROOT):
            offenders.append(m)
    assert not offenders, f"these modules import {COMPOSITION_ROOT}: {offenders}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_there_is_no_import_cycle(graph: dict[str, set[str]]) -> None:
    assert _cycles(graph) == []


def test_the_checker_sees_a_cycle_and_a_reach_up() -> None:
    """The rules above can fail: a hand-made graph with a loop and a reach-up is caught."""
    g = {"glasses_assistant.a": {"glasses_assistant.b"}, "glasses_assistant.b": {"glasses_assistant.a"},
         "glasses_assistant.c": set()}
    assert _cycles(g) == [["glasses_assistant.a", "glasses_assistant.b"]]
    tree_src = "def f():\n    from ..pipeline import Assistant\n"
    tmp = ROOT / "glasses_assistant"
    known = {"glasses_assistant.pipeline": tmp / "pipeline.py", "glasses_assistant.engines.x": tmp / "x.py"}
    node = ast.parse(tree_src)
    found = set()
    for n in ast.walk(node):
        if isinstance(n, ast.ImportFrom):
            found.add(_absolute("glasses_assistant.engines.x", False, n))
    assert found == {"glasses_assistant.pipeline"} and "glasses_assistant.pipeline" in known


def test_every_source_file_says_its_licence_and_logs_under_its_own_name() -> None:
    """SPDX headers on every Python file; ``logging.getLogger(__name__)`` (or a documented named channel)."""
    missing, shared_logger = [], []
    for path in sorted(p for pkg in (*PACKAGES, "tests", "tools", "scenarios") for p in (ROOT / pkg).rglob("*.py")):
        head = path.read_text(encoding="utf-8").splitlines()[:2]
        if not any(line.startswith("# SPDX-License-Identifier: GPL-3.0-or-later") for line in head):
            missing.append(str(path.relative_to(ROOT)))
        text = path.read_text(encoding="utf-8")
        if 'getLogger("' + 'glasses_assistant")' in text:
            shared_logger.append(str(path.relative_to(ROOT)))
    assert not missing, f"no SPDX header: {missing}"
    assert not shared_logger, f"log with logging.getLogger(__name__): {shared_logger}"
