# SPDX-License-Identifier: GPL-3.0-or-later
"""An arm64 Debian userland in a folder, run with qemu-user: the emulated device's root.

``python tests/aarch64/userland.py [ROOT]`` (``make aarch64-root``) builds it once, cached in
``~/.cache/glasses-assistant/aarch64-root`` (or ``$GLASSES_ASSISTANT_AARCH64_ROOT``).

No root, no binfmt_misc, no chroot, nothing changed in the host's apt: a private apt state
(own sources list, lists, empty dpkg status, arch arm64) resolves and downloads Debian
bookworm's arm64 packages of Python 3.11 (what Raspberry Pi OS bookworm runs), venv,
cryptography (the agent) and PortAudio, and ``dpkg-deb -x`` unpacks them into the folder.

Why the wrappers: without binfmt_misc the host kernel cannot exec an aarch64 binary, and
the device's Python starts others (``python -m venv``, the slot's ``venv/bin/python``, the
health check). So ``usr/bin/python3.11`` in the folder is a host shell script that runs the
real interpreter (``python3.11.aarch64``) under ``qemu-aarch64-static -L ROOT`` with ``-0 "$0"``:
Python sees the path it was started as, so a venv made from it finds its ``pyvenv.cfg`` and
its own symlinked ``bin/python`` re-enters the emulator the same way. Paths inside the
emulated device are host paths (the folder is not a chroot); ``-L`` only supplies the arm64
loader and libraries. onnxruntime reads ``/proc/cpuinfo`` at import and aborts on the host's
x86 text, so ``ROOT/proc/cpuinfo`` holds a Cortex-A76's (qemu's ``-L`` serves it instead).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ["python3.11", "python3.11-venv", "python3-cryptography", "libportaudio2", "libgomp1",
            "libstdc++6", "zlib1g", "ca-certificates"]
QEMU = "qemu-aarch64-static"
STAMP = ".userland-ok"
VERSION = "1"  # bump to rebuild cached userlands when the recipe changes

# A Raspberry Pi 5's /proc/cpuinfo (4 x Cortex-A76: fp asimd ... asimddp = dotprod).
CPUINFO = "".join(
    f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics "
    "fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
    "CPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n" for i in range(4)
)

WRAPPER = """#!/bin/sh
# Host wrapper (see tests/aarch64/userland.py): run the device's arm64 Python under qemu-user.
exec {qemu} -L {root} -0 "$0" {root}/usr/bin/python3.11.aarch64 "$@"
"""


def default_root() -> Path:
    from glasses_assistant.deploy.crosswheel import cache_dir

    return cache_dir("GLASSES_ASSISTANT_AARCH64_ROOT", "aarch64-root")


def python(root: Path) -> Path:
    """The device's python3 (a host-executable wrapper around the emulated interpreter)."""
    return root / "usr" / "bin" / "python3"


def ready(root: Path) -> bool:
    return (root / STAMP).is_file() and (root / STAMP).read_text().strip() == VERSION


def _apt(state: Path, *args: str) -> None:
    opts = [
        f"-oDir::Etc::SourceList={state / 'sources.list'}", "-oDir::Etc::SourceParts=/nonexistent",
        f"-oDir::State={state}", f"-oDir::State::Status={state / 'status'}", f"-oDir::Cache={state / 'cache'}",
        "-oAPT::Architecture=arm64", "-oAPT::Architectures::=arm64", "-oDebug::NoLocking=1",
        "-oAPT::Install-Recommends=0", "-oAcquire::Languages=none", "-qq",
    ]
    r = subprocess.run(["apt-get", *opts, *args], capture_output=True, text=True, check=False)
    if r.returncode:
        raise SystemExit(f"apt-get {args[0]} for the arm64 userland failed: {r.stderr.strip()[-400:]}")


def build(root: Path, progress: object = print) -> Path:
    """Build the userland in ``root`` (idempotent: an existing, complete one is kept)."""
    say = progress if callable(progress) else print
    if ready(root):
        return root
    if shutil.which(QEMU) is None:
        raise SystemExit(f"{QEMU} not found: apt-get install qemu-user-static (make system-deps-cross)")
    state = root.parent / (root.name + ".apt")
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text(
        f"deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} {SUITE} main\n")
    (state / "status").touch()
    say(f"arm64 userland: resolving Debian {SUITE} arm64 packages ({', '.join(PACKAGES)}) ...")
    _apt(state, "update")
    _apt(state, "install", "--download-only", "-y", *PACKAGES)
    debs = sorted((state / "cache" / "archives").glob("*.deb"))
    say(f"arm64 userland: unpacking {len(debs)} packages into {root} ...")
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    # Debian's merged /usr: /lib -> usr/lib (the loader is /lib/ld-linux-aarch64.so.1).
    for d in ("lib", "bin", "sbin"):
        if not (root / d).exists():
            os.symlink(f"usr/{d}", root / d)
    real = root / "usr" / "bin" / "python3.11"
    os.replace(real, real.with_name("python3.11.aarch64"))
    real.write_text(WRAPPER.format(qemu=shutil.which(QEMU), root=root))
    real.chmod(0o755)
    py3 = python(root)
    if py3.is_symlink() or py3.exists():
        py3.unlink()
    os.symlink("python3.11", py3)
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc" / "cpuinfo").write_text(CPUINFO)
    r = subprocess.run([str(py3), "-c", "import platform, ssl, venv, cryptography; print(platform.machine())"],
                       capture_output=True, text=True, check=False)
    if r.returncode or r.stdout.strip() != "aarch64":
        raise SystemExit(f"the arm64 userland's Python does not run: {(r.stderr or r.stdout).strip()[-300:]}")
    (root / STAMP).write_text(VERSION + "\n")
    say(f"arm64 userland ready: {py3} (Python 3.11 on aarch64 under {QEMU})")
    return root


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else default_root())
