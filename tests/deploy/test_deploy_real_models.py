# SPDX-License-Identifier: GPL-3.0-or-later
"""The real thing once: the default models pushed over loopback SSH, the full health check
(models load from the slot, the spoken question is answered, the virtual glasses handshake),
then an update that changes only the app. Figures go to out/deploy-figures.json."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy_helpers import COMPATIBLE, SshServer, patched_wheel

from glasses_assistant.deploy.bundle import build_bundle, human
from glasses_assistant.deploy.push import push

pytestmark = pytest.mark.models
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def glasses() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "firmware_bridge.sim", "--listen", "tcp://127.0.0.1:0",
                             "--no-stdin"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    yield line.split()[1]
    proc.terminate()
    proc.wait(10)


def test_default_models_push_and_app_only_update(sshd: SshServer, tmp_path: Path, keys, signing_key,  # type: ignore[no-untyped-def]
                                                 app_wheel: Path, glasses: str) -> None:
    device = sshd.target(tmp_path / "device")
    device.install_agent()
    device.call("init", {"keys": [keys["release.pub"].read_text()],
                         "device": {"compatible": COMPATIBLE, "python": sys.executable, "health_level": "full",
                                    "bridge_url": glasses, "systemd": "off", "health_timeout_s": 240}})
    b1 = build_bundle(tmp_path / "b1", signing_key, target="linux-x86_64", compatible=COMPATIBLE, version="1.0.0",
                      counter=1, app_wheel=app_wheel, wheelhouse=False, progress=lambda _m: None)
    r1 = push(device, b1)
    h = r1.health
    assert h["ok"] and h["level"] == "full", h
    assert {"whisper-tiny-en", "qwen2.5-coder-1.5b-q4_k_m", "piper-en-us-joe-medium"} <= set(h["models"].values())
    assert h["reply"] and h["reply_audio_s"] > 0.3 and len(h["transcript"].split()) >= 2
    assert h["bridge"]["device_id"] == "glasses-sim"
    assert h["code"].startswith(str(tmp_path / "device" / "slots" / "a" / "site"))
    assert r1.payload_bytes == b1.size

    wheel2 = patched_wheel(app_wheel, tmp_path / "w2", {"glasses_assistant/deploy/_build.txt": "build 2\n"})
    b2 = build_bundle(tmp_path / "b2", signing_key, target="linux-x86_64", compatible=COMPATIBLE, version="1.0.1",
                      counter=2, app_wheel=wheel2, wheelhouse=False, progress=lambda _m: None)
    r2 = push(device, b2)
    assert r2.health["ok"] and r2.slot == "b"
    app = next(f for f in b2.manifest["files"] if f["kind"] == "app")
    assert r2.payload_bytes < app["size"] + 5_000  # the app wheel, plus the unit that names the version
    figures = {
        "bundle_bytes": b1.size, "bundle": human(b1.size),
        "install_transfer_s": round(r1.transfer_s, 2), "install_total_s": round(r1.total_s, 2),
        "install_health_s": h.get("seconds"), "install_bytes_sent": r1.bytes_sent,
        "update_bytes_sent": r2.bytes_sent, "update_payload_bytes": r2.payload_bytes,
        "app_wheel_bytes": app["size"], "update_total_s": round(r2.total_s, 2),
        "health_reply": h["reply"], "health_transcript": h["transcript"],
    }
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "deploy-figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
