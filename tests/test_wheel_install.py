# SPDX-License-Identifier: GPL-3.0-or-later
"""The wheel path: the project's wheel in a fresh virtualenv with only its runtime dependencies answers.

What a device install or `pip install glasses-assistant` gets: no checkout on sys.path, no test or
benchmark packages, the model manifest and the bundled assets from inside the wheel, the models
from the cache. About a minute (mostly pip unpacking onnxruntime, OpenCV and CTranslate2 from its
cache), so it runs in its own target, `make wheel-test`, which CI runs after `make test`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from glasses_assistant.catalog import default_cache_dir
from glasses_assistant.deploy.bundle import build_app_wheel

# A fresh virtualenv may compile llama-cpp-python when pip's cache lacks its wheel (about 15 minutes here).
pytestmark = [pytest.mark.wheel, pytest.mark.timeout(2700)]

# Never part of a device install: the test, lint, HIL and benchmark extras.
NOT_RUNTIME = ("pytest", "hypothesis", "sacrebleu", "matplotlib", "ruff", "mypy", "labgrid", "uvicorn", "fastapi")


def test_the_wheel_installs_alone_and_answers(tmp_path: Path) -> None:
    wheel = build_app_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert {"glasses_assistant/models_manifest.toml", "glasses_assistant/assets/question.wav"} <= names
    assert not any(n.startswith("tests/") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # The versions CI tested (constraints pin, they add nothing): a new upstream release cannot turn this red.
    constraints = Path(__file__).resolve().parents[1] / "constraints.txt"
    pip = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          "-c", str(constraints), str(wheel)], capture_output=True, text=True, check=False)
    assert pip.returncode == 0, pip.stderr[-3000:]
    listed = subprocess.run([venv / "bin" / "python", "-m", "pip", "list", "--format=freeze"], capture_output=True,
                            text=True, check=True).stdout.lower()
    installed = {line.split("==")[0].replace("_", "-") for line in listed.splitlines()}
    assert not installed & set(NOT_RUNTIME), sorted(installed & set(NOT_RUNTIME))

    home = tmp_path / "elsewhere"  # not the checkout: only the installed wheel can be imported
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(GLASSES_ASSISTANT_MODELS=str(default_cache_dir()), XDG_DATA_HOME=str(tmp_path / "data"),
               XDG_CONFIG_HOME=str(tmp_path / "config"), PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), cwd=home, env=env, capture_output=True, text=True, check=False,
                              timeout=300)

    where = cli("python", "-c", "import glasses_assistant, firmware_bridge; print(glasses_assistant.__file__)")
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    assert cli("glasses-assistant", "--version").stdout.startswith("glasses-assistant 0.")
    assert cli("glasses-sim", "--version").stdout.startswith("glasses-sim 0.")
    listing = cli("glasses-assistant", "models", "list")
    assert listing.returncode == 0 and "models_manifest.toml" in listing.stdout, listing.stdout + listing.stderr

    answer = cli("glasses-assistant", "run", "--text", "What is the capital of France?", "--speaker", "off",
                 "--wait-timers", "0")
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "Paris" in answer.stdout, answer.stdout
    assert (home / "out" / "reply.wav").stat().st_size > 20_000  # about a second of speech at least

    bench = cli("glasses-assistant", "translate-bench")  # its package is in the bench extra, not installed
    assert bench.returncode == 2
    assert bench.stderr.strip().splitlines() == [
        "glasses-assistant: error: translate-bench (chrF) needs sacrebleu, from the 'bench' extra: "
        "pip install 'glasses-assistant[bench]' (in a checkout, `make` installs it)"]
