# SPDX-License-Identifier: GPL-3.0-or-later
"""The emulated aarch64 device: a real aarch64 bundle installed offline and answering, under qemu-user.

The device's root is a Debian bookworm arm64 userland in a folder (``tests/aarch64/userland.py``:
Python 3.11 as on Raspberry Pi OS bookworm), run by ``qemu-aarch64-static``. Over the real
loopback sshd the host installs the real agent, which runs on the device's own (emulated)
Python: it verifies the signed bundle, builds the slot's venv from the bundle's wheelhouse
with ``pip --no-index`` (no network: everything it needs is in the bundle, llama-cpp-python
included, cross-built by ``device wheel``), and runs the slot's health check, which loads the
default models and answers the bundled spoken question through the real pipeline, on aarch64.

Slow (emulation is about 8x native): ``make test-aarch64``, not ``make test``. Figures go to
``out/aarch64-figures.json``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "aarch64"))
from deploy_helpers import COMPATIBLE, SshServer  # noqa: E402
from userland import build as build_userland  # noqa: E402
from userland import default_root, python  # noqa: E402

from glasses_assistant.deploy.bundle import build_bundle, human  # noqa: E402
from glasses_assistant.deploy.crosswheel import build_device_wheel, check_wheel  # noqa: E402
from glasses_assistant.deploy.errors import DeployError  # noqa: E402
from glasses_assistant.deploy.push import push  # noqa: E402
from glasses_assistant.deploy.ssh import SshTarget  # noqa: E402

# The cross build (45 min when not cached) and the emulated health check (up to HEALTH_TIMEOUT_S) are slow.
pytestmark = [pytest.mark.aarch64, pytest.mark.models, pytest.mark.timeout(4 * 3600)]
ROOT = Path(__file__).resolve().parents[2]
HEALTH_TIMEOUT_S = 1800.0


@pytest.fixture(scope="module")
def userland() -> Path:
    return build_userland(default_root(), progress=lambda m: print(m, flush=True))


@pytest.fixture(scope="module")
def aarch64_wheel() -> Path:
    t0 = time.monotonic()
    w = build_device_wheel("linux-aarch64", progress=lambda m: print(m, flush=True))
    print(f"device wheel: {w} ({time.monotonic() - t0:.0f} s)")
    return w


def _device(sshd: SshServer, root: Path, userland: Path) -> SshTarget:
    return SshTarget(host="127.0.0.1", user=sshd.user, port=sshd.port, root=str(root), options=list(sshd.options),
                     agent_python=str(python(userland)))


def test_emulated_aarch64_device_installs_offline_and_answers(sshd: SshServer, tmp_path: Path, keys,  # type: ignore[no-untyped-def]
                                                              signing_key, app_wheel: Path, userland: Path,
                                                              aarch64_wheel: Path) -> None:
    assert platform.machine() == "x86_64"  # the point: the device is not this machine
    # The device's install folder lives inside the userland (a fresh one per run, removed after).
    root = userland / "opt" / f"glasses-assistant-{os.getpid()}-{time.time_ns()}"
    try:
        _install_and_answer(sshd, root, userland, keys, signing_key, app_wheel, aarch64_wheel, tmp_path)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _install_and_answer(sshd: SshServer, root: Path, userland: Path, keys, signing_key,  # type: ignore[no-untyped-def]
                        app_wheel: Path, aarch64_wheel: Path, tmp_path: Path) -> None:
    device = _device(sshd, root, userland)
    device.install_agent()
    device.call("init", {"keys": [keys["release.pub"].read_text()],
                         "device": {"compatible": COMPATIBLE, "health_level": "full", "systemd": "off",
                                    "health_timeout_s": HEALTH_TIMEOUT_S}})
    info = device.call("info")
    assert info["machine"] == "aarch64" and info["python"].startswith("3.11"), info  # the agent runs emulated
    t0 = time.monotonic()
    b = build_bundle(tmp_path / "bundle", signing_key, target="linux-aarch64", python_version="3.11",
                     compatible=COMPATIBLE, version="1.0.0", counter=1, app_wheel=app_wheel,
                     progress=lambda m: print(m, flush=True))
    bundle_s = time.monotonic() - t0
    m = b.manifest
    assert m["build_on_device"] == [] and m["target"]["lock"] == "bookworm-aarch64-py3.11", m["target"]
    dw = [f for f in m["files"] if f["kind"] == "device-wheel"]
    assert [Path(f["path"]).name for f in dw] == [aarch64_wheel.name]
    try:
        rep = push(device, b, health_timeout=HEALTH_TIMEOUT_S, progress=False)
    finally:
        for log in sorted((root / "logs").glob("health-*.log"))[-1:]:
            print(log.read_text()[-3000:])
    h = rep.health
    assert h["ok"] and h["level"] == "full", h
    assert h["reply"] and h["reply_audio_s"] > 0.3 and len(h["transcript"].split()) >= 2, h
    venv_py = root / "slots" / rep.slot / "venv" / "bin" / "python"
    probe = subprocess.run([str(venv_py), "-c", "import platform, llama_cpp, onnxruntime, ctranslate2; "
                            "print(platform.machine(), llama_cpp.__file__)"],
                           capture_output=True, text=True, check=True, timeout=600)
    arch, llama_file = probe.stdout.split()
    assert arch == "aarch64" and llama_file.startswith(str(root / "slots" / rep.slot / "venv")), probe.stdout
    figures = {
        "machine_load": Path("/proc/loadavg").read_text().split()[:3],
        "device_wheel": aarch64_wheel.name, "device_wheel_bytes": aarch64_wheel.stat().st_size,
        "bundle_bytes": b.size, "bundle": human(b.size), "bundle_build_s": round(bundle_s, 1),
        "bundle_files": len(m["files"]), "wheelhouse_glibc_floor": m["target"].get("glibc"),
        "push_transfer_s": round(rep.transfer_s, 1), "push_activate_s": round(rep.activate_s, 1),
        "push_total_s": round(rep.total_s, 1), "health_s": h.get("seconds"), "health_load_s": h.get("load_s"),
        "health_answer_s": h.get("answer_s"), "health_models": h.get("models"),
        "health_transcript": h["transcript"], "health_reply": h["reply"],
    }
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "aarch64-figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


def test_the_real_aarch64_wheel_passes_the_gate_and_x86_fails_it(aarch64_wheel: Path) -> None:
    c = check_wheel(aarch64_wheel, "linux-aarch64")
    assert any(n.endswith("libllama.so") for n in c.libraries) and c.glibc <= (2, 35)
    assert aarch64_wheel.name.endswith(f"-py3-none-{c.manylinux}_aarch64.whl")
    with pytest.raises(DeployError, match="aarch64 binary, not x86_64"):
        check_wheel(aarch64_wheel, "linux-x86_64")
