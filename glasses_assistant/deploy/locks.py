# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-target locks: the exact wheels a bundle for each device carries, committed with the code.

Without a lock, every ``device bundle`` resolves the dependencies afresh, so what ships is
whatever the registry had that day, and on Python 3.10 (JetPack 6) the resolver even picks
a different stack (e.g. another onnxruntime) than the one CI tests. A lock pins the whole
tree per (platform, Python), on Python 3.11 to the versions CI tested (``constraints.txt``);
``device bundle`` downloads exactly it with ``--no-deps``, and
refuses a lock whose recorded requirements no longer match the app's (``device lock``
regenerates it, a reviewed change like any other).

llama-cpp-python is pinned in the lock but never downloaded (the registry has only an
sdist): it comes from ``device wheel`` (aarch64) or the build machine's own build.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import DeployError
from .pypi import pip_platforms, project_root, sdist_requirements
from .pypi import req_name as name_of

LOCK_DIR = Path(__file__).resolve().parent / "locks"
BUILT_HERE = ("llama-cpp-python",)


@dataclass(frozen=True)
class LockTarget:
    """A device family: its platform, its system Python and the lock file's name."""

    name: str
    platform: str
    python: str
    description: str

    @property
    def path(self) -> Path:
        return LOCK_DIR / f"{self.name}.txt"


LOCK_TARGETS = (
    LockTarget("jetpack6-aarch64-py3.10", "linux-aarch64", "3.10", "Jetson Orin, JetPack 6 (Ubuntu 22.04, glibc 2.35)"),
    LockTarget("bookworm-aarch64-py3.11", "linux-aarch64", "3.11",
               "Raspberry Pi 5, Raspberry Pi OS bookworm (Debian 12, glibc 2.36)"),
    LockTarget("x86_64-py3.11", "linux-x86_64", "3.11", "x86_64 Linux, glibc 2.35 or newer (Debian 12, Ubuntu 22.04)"),
)


def lock_for(platform: str, python: str) -> LockTarget | None:
    return next((t for t in LOCK_TARGETS if t.platform == platform and t.python == python), None)


def requirements_digest(requirements: list[str]) -> str:
    """A digest of the app's requirement list (order and spacing do not matter)."""
    norm = sorted(re.sub(r"\s+", "", r) for r in requirements)
    return hashlib.sha256("\n".join(norm).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Lock:
    target: LockTarget
    pins: dict[str, str]  # name -> version
    requirements_digest: str

    def download_list(self) -> list[str]:
        return [f"{n}=={v}" for n, v in sorted(self.pins.items()) if n not in BUILT_HERE]

    def built_here(self) -> list[str]:
        return [f"{n}=={v}" for n, v in sorted(self.pins.items()) if n in BUILT_HERE]


def read_lock(target: LockTarget, path: Path | None = None) -> Lock:
    p = path or target.path
    try:
        text = p.read_text()
    except OSError as err:
        raise DeployError(f"no lock for {target.name} ({p}: {err.strerror}); run `glasses-assistant device lock`") \
            from None
    digest = ""
    pins: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"#\s*requirements-digest:\s*([0-9a-f]{16})", line)
        if m:
            digest = m.group(1)
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        if not m:
            raise DeployError(f"{p}:{n}: not a pin 'name==version': {line!r}")
        pins[name_of(m.group(1))] = m.group(2)
    if not digest:
        raise DeployError(f"{p} has no '# requirements-digest:' line; "
                          "regenerate it with `glasses-assistant device lock`")
    return Lock(target, pins, digest)


def check_fresh(lock: Lock, requirements: list[str]) -> None:
    """Refuse a lock made for another requirement list (the app's dependencies changed since)."""
    if lock.requirements_digest != requirements_digest(requirements):
        raise DeployError(f"the {lock.target.name} lock is stale: the app's requirements changed since it was made; "
                          f"run `glasses-assistant device lock --target {lock.target.name}` and commit it")
    env = _marker_env(lock.target)
    missing = sorted({name_of(r) for r in requirements if _applies(r, env)} - set(lock.pins))
    if missing:
        raise DeployError(f"the {lock.target.name} lock does not pin {', '.join(missing)}")


TESTED_PYTHON = "3.11"  # what CI runs the suite on (constraints.txt holds its versions)


def constraints_file() -> Path | None:
    root = project_root()
    p = root / "constraints.txt" if root else None
    return p if p is not None and p.is_file() else None


def _marker_env(target: LockTarget) -> dict[str, str]:
    """PEP 508 marker values of the target device (pip judges markers by the *host's* Python)."""
    return {"python_version": target.python, "python_full_version": f"{target.python}.0",
            "platform_machine": target.platform.split("-", 1)[1], "sys_platform": "linux",
            "platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "extra": ""}


def _applies(req: str, env: dict[str, str], extras: tuple[str, ...] = ("",)) -> str | None:
    """``req`` without its marker when it applies on the target (for any of ``extras``), else None."""
    # packaging is a dependency of the app's own stack (onnxruntime, faster-whisper) and of pip.
    from packaging.requirements import Requirement

    r = Requirement(req)
    if r.marker is not None and not any(r.marker.evaluate({**env, "extra": e}) for e in extras):
        return None
    r.marker = None
    return str(r)


def resolve(target: LockTarget, requirements: list[str], *,
            progress: Callable[[str], None] = print) -> dict[str, str]:
    """Resolve ``requirements`` for the target's platform and Python with pip (wheels only).

    pip evaluates environment markers with the interpreter it runs on, not ``--python-version``:
    resolving for 3.10 from 3.11 would drop ``tomli; python_version < "3.11"`` and every such
    transitive dependency. So markers are judged here for the target, and the resolution is
    repeated with what it missed until nothing applicable is left out.
    """
    env = _marker_env(target)
    py = target.python.replace(".", "")
    reqs = [a for r in requirements if name_of(r) not in BUILT_HERE and (a := _applies(r, env))]
    built = [r for r in requirements if name_of(r) in BUILT_HERE]
    pins: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ga-lock-") as tmpd:
        tmp = Path(tmpd)
        for b in built:
            m = re.search(r"==\s*([0-9][0-9.]*)", b)
            if not m:
                raise DeployError(f"{b} must be pinned exactly (it is built, not downloaded)")
            pins[name_of(b)] = m.group(1)
            for d in sdist_requirements(b, tmp / "sdist"):
                if (a := _applies(d, env)) and name_of(a) not in {name_of(q) for q in reqs}:
                    reqs.append(a)
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(tmp / "report.json"), "--only-binary=:all:", "--python-version", target.python,
               "--implementation", "cp", "--abi", f"cp{py}", "--abi", "abi3", "--abi", "none",
               "--target", str(tmp / "t")]
        for tag in pip_platforms(target.platform):
            cmd += ["--platform", tag]
        tested = constraints_file()
        if tested is not None and target.python == TESTED_PYTHON:
            # The Python CI tests on: hold the lock to the versions CI installed (constraints.txt),
            # so a bookworm or x86_64 device runs the very stack the test suite ran.
            cmd += ["-c", str(tested)]
        for _round in range(6):
            progress(f"resolving {len(reqs)} requirements for {target.name} ...")
            r = subprocess.run([*cmd, *reqs], capture_output=True, text=True, check=False)
            if r.returncode:
                last = (r.stderr.strip().splitlines() or ["pip failed"])[-1]
                raise DeployError(f"resolving the {target.name} lock failed: {last}")
            found = {name_of(b): v for b, v in pins.items() if b in BUILT_HERE}
            missed: list[str] = []
            for item in json.loads((tmp / "report.json").read_text())["install"]:
                found[name_of(item["metadata"]["name"])] = item["metadata"]["version"]
            for item in json.loads((tmp / "report.json").read_text())["install"]:
                extras = ("", *item.get("requested_extras", []))
                for rd in item["metadata"].get("requires_dist", []):
                    a = _applies(rd, env, extras)
                    if a and name_of(a) not in found and name_of(a) not in {name_of(q) for q in missed}:
                        missed.append(a)
            if not missed:
                return {**pins, **found}
            progress(f"  pip left out for python {target.python}: {', '.join(missed)}")
            reqs += missed
    raise DeployError(f"resolving the {target.name} lock did not settle")


def write_lock(target: LockTarget, requirements: list[str], pins: dict[str, str], path: Path | None = None) -> Path:
    p = path or target.path
    p.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# {target.name}: {target.description}; platform {target.platform}, Python {target.python}.",
        "# Generated by `glasses-assistant device lock`; `device bundle` downloads exactly these wheels.",
        f"# requirements-digest: {requirements_digest(requirements)}",
        f"# generated: {time.strftime('%Y-%m-%d', time.gmtime())}",
    ]
    for n, v in sorted(pins.items()):
        note = "  # built by `device wheel` (aarch64) or on the build machine" if n in BUILT_HERE else ""
        lines.append(f"{n}=={v}{note}")
    p.write_text("\n".join(lines) + "\n")
    return p
