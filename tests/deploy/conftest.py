# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the deploy tests: a real OpenSSH server on 127.0.0.1, keys, small bundles.

The server is Debian's ``/usr/sbin/sshd`` (package openssh-server, installed by ``make``),
started with its own host key, an authorized user key and a config in a temp folder; the
client is the real ``ssh`` with a generated known_hosts and StrictHostKeyChecking=yes. The
"device" is a folder under tmp; the agent and the slots' code run with this virtualenv's
interpreter (a real device builds a venv per slot from the bundled wheelhouse).
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glasses_assistant.deploy.bundle import Bundle, BundleFile, build_app_wheel, build_bundle
from glasses_assistant.deploy.keys import SigningKey, generate, load_signing_key
from glasses_assistant.deploy.ssh import SshTarget

sys.path.insert(0, str(Path(__file__).resolve().parent))  # works under any --import-mode
from deploy_helpers import COMPATIBLE, SSHD, SshServer, _free_port  # noqa: E402


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A real sshd on a free 127.0.0.1 port, with its own host key; fails (never skips) without sshd."""
    if not SSHD.is_file() or shutil.which("ssh") is None:
        pytest.fail("OpenSSH is not installed: apt-get install -y openssh-server openssh-client "
                    "(`make system-deps` does it); the deploy tests need a real sshd")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    port = _free_port()
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin yes
MaxStartups 100
MaxSessions 100
LogLevel ERROR
""")
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation dir sshd insists on
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")], stderr=open(d / "sshd.log", "wb"))
    options = ["-F", "/dev/null", "-i", str(d / "user_key"), "-o", "IdentitiesOnly=yes",
               "-o", f"UserKnownHostsFile={d}/known_hosts", "-o", "StrictHostKeyChecking=yes",
               "-o", "LogLevel=ERROR"]
    server = SshServer(port, options, getpass.getuser())
    deadline = time.monotonic() + 15
    while True:
        r = subprocess.run(["ssh", *options, "-p", str(port), f"{server.user}@127.0.0.1", "true"],
                           capture_output=True, text=True, check=False)
        if r.returncode == 0:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()[-500:]} {r.stderr[-300:]}")
        time.sleep(0.2)
    yield server
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("release", "other"):
        key, pub = generate(d / name)
        out[name], out[name + ".pub"] = key, pub
    return out


@pytest.fixture(scope="session")
def signing_key(keys: dict[str, Path]) -> SigningKey:
    return load_signing_key(keys["release"])


@pytest.fixture(scope="session")
def app_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The assistant's real wheel, built once from this source tree."""
    return build_app_wheel(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="session")
def fake_models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small placeholder model files (1 MB and 9 MB: more than two 4 MiB chunks)."""
    d = tmp_path_factory.mktemp("fake-models")
    out = []
    for name, size in (("voice.onnx", 1 << 20), ("llm.gguf", 9 << 20)):
        p = d / name
        p.write_bytes(os.urandom(size))
        out.append(p)
    return out


@pytest.fixture
def make_bundle(tmp_path: Path, signing_key: SigningKey, app_wheel: Path, fake_models: list[Path]):  # type: ignore[no-untyped-def]
    """Small bundles (the real app, fake models, no wheelhouse) for the fast tests."""
    n = [0]

    def make(counter: int, *, key: SigningKey | None = None, compatible: str = COMPATIBLE, wheel: Path | None = None,
             version: str | None = None) -> Bundle:
        n[0] += 1
        extra = [BundleFile(f"models/fake/{p.name}", "model", p, extra={"model": "fake"}) for p in fake_models]
        return build_bundle(tmp_path / f"bundle{n[0]}", key or signing_key, target="linux-x86_64",
                            compatible=compatible, version=version or f"1.0.{counter}", counter=counter, models=[],
                            app_wheel=wheel or app_wheel, wheelhouse=False, extra_files=extra,
                            progress=lambda _m: None)

    return make


@pytest.fixture
def device(sshd: SshServer, tmp_path: Path, keys: dict[str, Path]) -> SshTarget:
    """A freshly initialised test device (import-level health check: the fast tests carry fake models)."""
    target = sshd.target(tmp_path / "device")
    target.install_agent()
    target.call("init", {"keys": [keys["release.pub"].read_text()],
                         "device": {"compatible": COMPATIBLE, "python": sys.executable, "health_level": "import",
                                    "systemd": "off", "health_timeout_s": 60}})
    return target
