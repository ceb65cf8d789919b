# SPDX-License-Identifier: GPL-3.0-or-later
"""Push over a real sshd: install, update, dedup, cut and resume, kill during the switch, rollback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy_helpers import COMPATIBLE, patched_wheel

from glasses_assistant.deploy.errors import HealthCheckError, TransferError
from glasses_assistant.deploy.push import push
from glasses_assistant.deploy.ssh import SshTarget


def root_of(t: SshTarget) -> Path:
    return Path(t.root)


def boots(t: SshTarget) -> tuple[str, str]:
    """Run the boot step on the device and return (slot, version) of what it would start."""
    out = t.call("boot")
    info = t.call("info")
    return out["slot"], info["slots"][out["slot"]]["version"]


def test_clean_install_then_update(device: SshTarget, make_bundle, app_wheel: Path, tmp_path: Path) -> None:
    b1 = make_bundle(1)
    r1 = push(device, b1)
    assert r1.installed and r1.slot == "a" and r1.health["ok"]
    # The slot's own code ran the health check, not this checkout.
    assert r1.health["code"].startswith(str(root_of(device) / "slots" / "a" / "site"))
    assert r1.health["model_files"] == 2
    assert r1.payload_bytes == b1.size  # first install: everything moves once
    root = root_of(device)
    assert os.readlink(root / "current") == "slots/a"
    unit = (root / "current" / "files" / "systemd" / "glasses-assistant.service").read_text()
    assert "WatchdogSec=" in unit and "agent.py boot" in unit and "Type=notify" in unit

    # An update that changes only the app sends only the app's bytes.
    wheel2 = patched_wheel(app_wheel, tmp_path / "w2", {"glasses_assistant/deploy/_build.txt": "build 2\n"})
    b2 = make_bundle(2, wheel=wheel2)
    r2 = push(device, b2)
    assert r2.installed and r2.slot == "b"
    old = {f["sha256"] for f in b1.manifest["files"]}
    changed = [f for f in b2.manifest["files"] if f["sha256"] not in old]
    # The app and the unit (it names the version); models and config did not move.
    assert sorted(f["kind"] for f in changed) == ["app", "unit"]
    assert r2.payload_bytes == sum(f["size"] for f in changed)
    assert r2.files_present == r2.files_total - 2
    assert r2.bytes_sent < wheel2.stat().st_size + 200_000  # plus agent + manifest requests
    assert os.readlink(root / "current") == "slots/b" and os.readlink(root / "previous") == "slots/a"
    # Models were not sent twice, yet each slot holds its own copy: no inode is shared between
    # the slots or with the store (an edit in one slot can never change the other).
    assert not list((root / "store" / "blobs").iterdir())  # staging only, emptied once healthy
    for f in b1.manifest["files"]:
        if f["kind"] == "model":
            a, b = (root / "slots" / s / f["path"] for s in ("a", "b"))
            assert a.resolve().is_relative_to(root / "slots" / "a") and b.resolve().is_relative_to(root / "slots" / "b")
            assert a.stat().st_nlink == b.stat().st_nlink == 1 and a.stat().st_ino != b.stat().st_ino
            assert a.read_bytes() == b.read_bytes()
    # Pushing the same bundle again moves nothing.
    r3 = push(device, b2)
    assert not r3.installed and r3.payload_bytes == 0
    # status / rollback / logs
    info = device.call("info")
    assert info["current"] == "b" and info["slots"]["a"]["state"] == "good"
    assert device.call("rollback")["slot"] == "a"
    assert boots(device) == ("a", "1.0.1")
    logs = device.call("logs", {"lines": 100})
    assert any('"rollback"' in line for line in logs["agent"])


def test_cut_transfer_resumes(device: SshTarget, make_bundle) -> None:
    b = make_bundle(1)

    def cut(sent: int, proc: subprocess.Popen[bytes]) -> None:
        if sent >= 4 << 20:  # a real cut: the ssh client dies mid-stream
            proc.kill()

    with pytest.raises(TransferError, match="resume"):
        push(device, b, on_chunk=cut)
    assert not (root_of(device) / "current").exists()  # nothing half-installed
    kept = list((root_of(device) / "store" / "chunks").iterdir())
    assert kept and all(not p.name.startswith(".") or p.name.endswith(".part") for p in kept)
    r = push(device, b)
    assert r.installed and r.chunks_skipped >= 1
    assert r.payload_bytes < b.size


@pytest.mark.parametrize("point", ["mid-install", "before-switch", "after-previous", "after-current"])
def test_killed_during_switch_boots_old_or_new(device: SshTarget, make_bundle, point: str) -> None:
    push(device, make_bundle(1))
    crashing = SshTarget(**{**device.__dict__, "crash_at": point})
    with pytest.raises(TransferError, match="agent gave no answer"):  # it died like under SIGKILL
        push(crashing, make_bundle(2))
    slot, version = boots(device)
    assert version in ("1.0.1", "1.0.2")
    # Whatever it picked verifies fully (every hash) and is what `current` points at.
    root = root_of(device)
    assert os.readlink(root / "current") == f"slots/{slot}"
    assert (root / "slots" / slot / "READY").is_file()
    # And the next push completes normally.
    r = push(device, make_bundle(3))
    assert r.installed and boots(device)[1] == "1.0.3"


def test_failed_health_check_rolls_back(device: SshTarget, make_bundle, app_wheel: Path, tmp_path: Path) -> None:
    push(device, make_bundle(1))
    broken = patched_wheel(app_wheel, tmp_path / "broken",
                           {"glasses_assistant/pipeline.py": "raise RuntimeError('broken build')\n"})
    with pytest.raises(HealthCheckError, match="broken build.*rolled back"):
        push(device, make_bundle(2, wheel=broken))
    info = device.call("info")
    assert info["current"] == "a" and info["slots"]["b"]["state"] == "bad"
    assert boots(device) == ("a", "1.0.1")
    # A manual rollback to the failed slot is refused unless forced.
    with pytest.raises(Exception, match="failed its health check"):
        device.call("rollback")


def test_cli_device_commands(sshd, device: SshTarget, make_bundle, keys) -> None:  # type: ignore[no-untyped-def]
    b = make_bundle(1)
    url = f"ssh://{device.user}@127.0.0.1:{device.port}{device.root}"
    base = [sys.executable, "-m", "glasses_assistant.deploy.cli"]
    ssh_opts = [arg for o in device.options if o.startswith(("UserKnownHostsFile", "StrictHostKeyChecking",
                                                             "IdentitiesOnly", "LogLevel")) for arg in ("-o", o)]
    ssh_opts += ["-o", f"IdentityFile={device.options[device.options.index('-i') + 1]}"]
    common = [*ssh_opts, "--agent-python", sys.executable]
    r = subprocess.run([*base, "push", url, str(b.folder), *common], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert "slot a" in r.stdout
    r = subprocess.run([*base, "status", url, *common, "--json"], capture_output=True, text=True, check=False)
    assert json.loads(r.stdout)["current"] == "a"
    r = subprocess.run([*base, "push", url, str(make_bundle(0).folder), *common], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 2
    assert r.stderr.startswith("glasses-assistant: error: ") and "downgrade" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([*base, "logs", url, *common], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and "healthy" in r.stdout
    assert COMPATIBLE
