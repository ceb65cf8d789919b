# SPDX-License-Identifier: GPL-3.0-or-later
"""``device bundle``: a signed, content-addressed bundle of the app, its wheels, models, config and unit.

Layout of a bundle folder::

    manifest.json   every file: path in the slot, kind, size, sha256; version, counter, compatible
    manifest.sig    {"alg": "ed25519", "key_id": ..., "signature": base64} over manifest.json's bytes
    blobs/<sha256>  the files themselves, stored once by content

Slot paths: ``app/<wheel>`` (the assistant), ``wheelhouse/<wheel>`` (its dependencies for the
target platform), ``device-wheels/<wheel>`` (wheels built on a device earlier, e.g.
llama-cpp-python for aarch64), ``models/<id>/<file>``, ``config/config.toml`` and
``systemd/glasses-assistant.service``. Packages the registry has no wheel for are listed
under ``build_on_device``: the device compiles them when it builds the slot's venv.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..safefile import read_limited
from .agent import (
    MANIFEST_FORMAT,
    MAX_MANIFEST_BYTES,
    SIG_DOMAIN,
    UNIT_NAME,
    parse_manifest,
    sha256_path,
    verify_signature,
)
from .crosswheel import CROSS_TARGETS, ELF_MACHINE, build_device_wheel, check_wheel
from .errors import DeployError, RefusedError
from .keys import SigningKey
from .locks import LOCK_TARGETS, Lock, check_fresh, lock_for, read_lock
from .pypi import pip_platforms, project_root, req_name, sdist_requirements

TARGETS = ("linux-aarch64", "linux-x86_64")
DEFAULT_DEVICE_ROOT = "/opt/glasses-assistant"


@dataclass
class BundleFile:
    """One file of the bundle: where it goes in the slot and what it is."""

    path: str
    kind: str
    source: Path
    sha256: str = ""
    size: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bundle:
    """A bundle on disk, its parsed manifest and signature."""

    folder: Path
    manifest_bytes: bytes
    signature: dict[str, Any]

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_bytes)

    def blob(self, sha256: str) -> Path:
        return self.folder / "blobs" / sha256

    @property
    def size(self) -> int:
        return sum(int(f["size"]) for f in self.manifest["files"])


def load_bundle(folder: Path) -> Bundle:
    """Read a bundle folder (signature is checked by the device; :func:`verify_bundle` checks here)."""
    folder = Path(folder)
    try:
        mb = read_limited(folder / "manifest.json", MAX_MANIFEST_BYTES)
        sig = json.loads(read_limited(folder / "manifest.sig", 64 * 1024))
    except OSError as err:
        raise DeployError(f"{folder} is not a bundle (no usable manifest.json / manifest.sig): {err.strerror}") \
            from None
    except (ValueError, RecursionError):
        raise DeployError(f"{folder}/manifest.sig is not valid JSON") from None
    if not isinstance(sig, dict):
        raise DeployError(f"{folder}/manifest.sig is not a signature object")
    return Bundle(folder, mb, sig)


def verify_bundle(bundle: Bundle, trusted: dict[str, bytes], *, hashes: bool = True) -> dict[str, Any]:
    """The device's checks, run on the host: signature, known key, every blob's sha256."""
    from .agent import AgentError

    try:
        verify_signature(bundle.manifest_bytes, bundle.signature, trusted)
        m = parse_manifest(bundle.manifest_bytes)
    except AgentError as err:
        raise RefusedError(str(err), err.code) from None
    for f in m["files"]:
        p = bundle.blob(f["sha256"])
        if not p.is_file() or p.stat().st_size != f["size"] or (hashes and sha256_path(p) != f["sha256"]):
            raise RefusedError(f"bundle file {f['path']} is missing or fails its sha256", "tampered")
    return m


def host_target() -> str:
    return f"linux-{platform.machine()}"


def build_app_wheel(out_dir: Path, source: Path | None = None) -> Path:
    """Build the assistant's wheel from its source tree with pip (hatchling, reproducible timestamps)."""
    src = source or project_root()
    if src is None:
        raise DeployError("cannot find the assistant's source tree to build its wheel; pass --app-wheel")
    out_dir.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out_dir), str(src)],
                       capture_output=True, text=True, check=False)
    wheels = sorted(out_dir.glob("glasses_assistant-*.whl"))
    if r.returncode or not wheels:
        last = (r.stderr.strip().splitlines() or ["no wheel produced"])[-1]
        raise DeployError(f"building the app wheel failed: {last}")
    return wheels[-1]


def wheel_requirements(wheel: Path) -> list[str]:
    """Requires-Dist of a wheel, without optional extras."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        msg = email.parser.Parser().parsestr(z.read(meta).decode())
    return [r for r in msg.get_all("Requires-Dist") or [] if "extra ==" not in r]


def download_locked(lock: Lock, target: str, dest: Path, *, device_wheels: Iterable[Path] = (),
                    progress: Callable[[str], None] = print) -> tuple[list[Path], list[dict[str, str]]]:
    """Download exactly the lock's wheels (no resolution); return (wheels, packages to build on the device)."""
    py = lock.target.python.replace(".", "")
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           lock.target.python, "--implementation", "cp", "--abi", f"cp{py}", "--abi", "abi3", "--abi", "none",
           "-d", str(dest)]
    for tag in pip_platforms(target):
        cmd += ["--platform", tag]
    wanted = lock.download_list()
    progress(f"  downloading the {len(wanted)} wheels the {lock.target.name} lock pins ...")
    r = subprocess.run([*cmd, *wanted], capture_output=True, text=True, check=False)
    if r.returncode:
        last = (r.stderr.strip().splitlines() or ["pip download failed"])[-1]
        raise DeployError(f"downloading the {lock.target.name} wheelhouse failed: {last}")
    given = {w.name.split("-")[0].lower().replace("_", "-"): w.name.split("-")[1] for w in device_wheels}
    on_device: list[dict[str, str]] = []
    for pin in lock.built_here():
        name, version = pin.split("==")
        if name in given:
            if given[name] != version:
                raise DeployError(f"the device wheel for {name} is {given[name]}, the lock pins {version}")
            continue
        on_device.append({"requirement": pin, "reason": f"the registry has no {target} wheel for it"})
        progress(f"  {pin}: no {target} wheel given; it will be compiled on the device")
    return sorted(dest.glob("*.whl")), on_device


def build_wheelhouse(
    requirements: list[str], target: str, python_version: str, dest: Path, *,
    device_wheels: Iterable[Path] = (), progress: Callable[[str], None] = print,
) -> tuple[list[Path], list[dict[str, str]]]:
    """Resolve and download wheels for ``target`` (no lock); return (wheels, packages to build on the device).

    pip cannot resolve across a package with no wheel for the platform, so such a package is
    taken out, its sdist's own requirements are put in, and it is listed to build on the device
    (unless a wheel built there earlier was given in ``device_wheels``).
    """
    dest.mkdir(parents=True, exist_ok=True)
    py = python_version.replace(".", "")
    reqs = list(requirements)
    on_device: list[dict[str, str]] = []
    given = {w.name.split("-")[0].lower().replace("_", "-"): w for w in device_wheels}
    find_links = sorted({str(w.parent) for w in device_wheels})
    for _attempt in range(8):
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version",
               python_version, "--implementation", "cp", "--abi", f"cp{py}", "--abi", "abi3", "--abi", "none",
               "-d", str(dest)]
        for tag in pip_platforms(target):
            cmd += ["--platform", tag]
        for fl in find_links:
            cmd += ["--find-links", fl]
        progress(f"  resolving {len(reqs)} requirements for {target} (python {python_version}) ...")
        r = subprocess.run([*cmd, *reqs], capture_output=True, text=True, check=False)
        if r.returncode == 0:
            break
        missing = re.search(r"No matching distribution found for ([^\s]+)", r.stderr)
        if not missing:
            last = (r.stderr.strip().splitlines() or ["pip download failed"])[-1]
            raise DeployError(f"building the {target} wheelhouse failed: {last}")
        name = req_name(missing.group(1))
        req = next((q for q in reqs if req_name(q) == name), missing.group(1))
        if name in given:
            raise DeployError(f"the given device wheel for {name} does not fit {target} / python {python_version}")
        reqs = [q for q in reqs if req_name(q) != name]
        deps = sdist_requirements(req, dest.parent / "sdist")
        reqs += [d for d in deps if req_name(d) not in {req_name(q) for q in reqs}]
        on_device.append({"requirement": req, "reason": f"the registry has no {target} wheel for it"})
        progress(f"  {req}: no {target} wheel on the registry; it will be compiled on the device")
    else:
        raise DeployError(f"cannot resolve a {target} wheelhouse (too many packages without wheels)")
    return sorted(dest.glob("*.whl")), on_device


_LEGACY_MANYLINUX = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}


def glibc_floor(wheels: Iterable[Path]) -> str | None:
    """The oldest glibc every wheel runs on: the max over wheels of each wheel's lowest manylinux tag."""
    floor = 0
    for w in wheels:
        tags = w.name[:-4].split("-")[-1].split(".")
        minors = [int(m.group(1)) for t in tags if (m := re.match(r"manylinux_2_(\d+)_", t))]
        minors += [v for t in tags for k, v in _LEGACY_MANYLINUX.items() if t.startswith(k + "_")]
        if minors:
            floor = max(floor, min(minors))
    return f"2.{floor}" if floor else None


def systemd_unit(version: str, device_root: str) -> str:
    """The service unit: boot step picks a verified slot, then the assistant runs sandboxed under a watchdog.

    The assistant runs as its own user (``glasses-assistant``: the static one if the image made
    it, else a transient one systemd allocates), with no capabilities, a read-only system, no
    home folders and device access limited to audio, serial and Bluetooth; only the boot step
    (``+``: full privileges) may touch the slots. What it writes goes to systemd-managed
    folders: /var/lib/glasses-assistant (memory, timers), /var/log/glasses-assistant (last reply,
    turn traces), /var/cache/glasses-assistant. ``tests/deploy/test_service_unit.py`` holds the
    ``systemd-analyze security`` score to its bound.
    """
    return f"""# glasses-assistant {version}: generated by `glasses-assistant device bundle`, signed with the bundle.
[Unit]
Description=glasses-assistant voice assistant ({version})
After=network-online.target sound.target bluetooth.target
StartLimitIntervalSec=600
StartLimitBurst=5

[Service]
Type=notify
NotifyAccess=main
# Before every start, as root ("+"): pick the slot that verifies (current, or previous after a failed update).
ExecStartPre=+/usr/bin/python3 {device_root}/agent.py boot --root {device_root}
ExecStart={device_root}/current/venv/bin/python -m glasses_assistant.deploy.service --root {device_root}
# READY=1 comes once the models are loaded and warmed (within TimeoutStartSec); after that the
# watchdog is pinged only while the voice loop takes microphone chunks: a stuck loop is restarted.
WatchdogSec=30
Restart=on-failure
RestartSec=2
TimeoutStartSec=300
WorkingDirectory={device_root}
Environment=PYTHONUNBUFFERED=1
Environment=XDG_DATA_HOME=%S XDG_CACHE_HOME=%C XDG_CONFIG_HOME=%E
Nice=-5

# Who: a dedicated user, never root.
User=glasses-assistant
Group=glasses-assistant
DynamicUser=yes
SupplementaryGroups=audio dialout bluetooth
StateDirectory=glasses-assistant
LogsDirectory=glasses-assistant
CacheDirectory=glasses-assistant
ConfigurationDirectory=glasses-assistant
UMask=0077

# What it may touch: the slots read-only, devices for audio, serial (the glasses' USB link) and Bluetooth.
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateMounts=yes
DevicePolicy=closed
DeviceAllow=char-alsa rw
DeviceAllow=char-ttyUSB rw
DeviceAllow=char-ttyACM rw
DeviceAllow=char-ttyS rw
DeviceAllow=/dev/rfkill r
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_BLUETOOTH
CapabilityBoundingSet=
AmbientCapabilities=
NoNewPrivileges=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
PrivateIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @mount @debug @cpu-emulation @obsolete @raw-io @reboot @swap
SystemCallErrorNumber=EPERM
# Not set, on purpose: MemoryDenyWriteExecute (ctypes callbacks through libffi need W+X pages),
# ProcSubset=pid (onnxruntime and llama.cpp read /proc/cpuinfo), PrivateUsers (hides the audio
# group's devices), PrivateNetwork / IPAddressDeny (a configured server or the glasses over TCP).

[Install]
WantedBy=multi-user.target
"""


DEFAULT_CONFIG = """# glasses-assistant device config (TOML): [mic], [vad], [stt], [llm], [tts].
# Models are read from the slot's own model folder; see `glasses-assistant run --help` for the keys.
"""


def default_model_ids() -> list[str]:
    from ..catalog import ROLES, load_catalogue

    cat = load_catalogue()
    return [cat.default_for(role).id for role in ROLES]


def build_bundle(
    out: Path,
    key: SigningKey,
    *,
    target: str,
    compatible: str,
    version: str | None = None,
    counter: int | None = None,
    models: list[str] | None = None,
    models_dir: Path | None = None,
    config: Path | None = None,
    app_wheel: Path | None = None,
    device_wheels: list[Path] | None = None,
    wheelhouse: bool = True,
    python_version: str | None = None,
    device_root: str = DEFAULT_DEVICE_ROOT,
    extra_files: list[BundleFile] | None = None,
    requirements: list[str] | None = None,
    use_lock: bool = True,
    lock: Path | None = None,
    cross_wheel: bool = True,
    progress: Callable[[str], None] = print,
) -> Bundle:
    """Build and sign a bundle in ``out`` (created; must be empty or absent).

    ``requirements`` replaces the app wheel's own dependency list for the wheelhouse (tests; no
    lock then). The wheelhouse comes from the committed lock of (target, Python) unless
    ``use_lock`` is off (``lock`` names another lock file). For a cross target
    (linux-aarch64) llama-cpp-python is cross-built and carried unless ``device_wheels`` is
    given or ``cross_wheel`` is off.
    """
    from .. import __version__
    from ..catalog import load_catalogue

    if target not in TARGETS:
        raise DeployError(f"unknown target {target!r} (known: {', '.join(TARGETS)})")
    if out.exists() and any(out.iterdir()):
        raise DeployError(f"{out} exists and is not empty; choose a new bundle folder")
    python_version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    counter = int(time.time()) if counter is None else int(counter)
    version = version or __version__
    files: list[BundleFile] = []
    with tempfile.TemporaryDirectory(prefix="ga-bundle-") as tmpd:
        tmp = Path(tmpd)
        if app_wheel is None:
            progress("building the app wheel ...")
            app_wheel = build_app_wheel(tmp / "app")
        files.append(BundleFile(f"app/{app_wheel.name}", "app", app_wheel))
        on_device: list[dict[str, str]] = []
        reqs = wheel_requirements(app_wheel) if requirements is None else requirements
        if device_wheels is None:
            device_wheels = []
            if cross_wheel and wheelhouse and target in CROSS_TARGETS and "llama-cpp-python" in map(req_name, reqs):
                # The default: llama-cpp-python cross-built here (cached), so the device needs no index.
                device_wheels = [build_device_wheel(target, progress=progress)]
        for w in device_wheels:
            if target in ELF_MACHINE and w.name.startswith("llama_cpp_python-"):
                check_wheel(w, target)  # an x86 libllama.so in an "aarch64" wheel stops here
            files.append(BundleFile(f"device-wheels/{w.name}", "device-wheel", w))
        lock_name = None
        glibc = None
        if wheelhouse:
            progress(f"building the {target} wheelhouse ...")
            lt = lock_for(target, python_version) if use_lock else None
            if use_lock and requirements is None:
                if lt is None:
                    raise DeployError(f"no lock for {target} / python {python_version} (locks: "
                                      f"{', '.join(f'{t.platform} {t.python}' for t in LOCK_TARGETS)}); "
                                      "pass --no-lock to resolve afresh")
                lk = read_lock(lt, lock)
                check_fresh(lk, reqs)
                lock_name = lt.name
                wheels, on_device = download_locked(lk, target, tmp / "wheelhouse",
                                                    device_wheels=device_wheels or [], progress=progress)
            else:
                wheels, on_device = build_wheelhouse(reqs, target, python_version,
                                                     tmp / "wheelhouse", device_wheels=device_wheels or [],
                                                     progress=progress)
            files += [BundleFile(f"wheelhouse/{w.name}", "wheel", w) for w in wheels]
            glibc = glibc_floor([*wheels, *(device_wheels or [])])
        cat = load_catalogue(cache_dir=models_dir)
        model_doc = []
        for mid in models if models is not None else default_model_ids():
            entry = cat.get(mid)
            progress(f"verifying model {mid} ...")
            # The same verified file list `models export` carries; a model inside a dependency
            # (silero VAD in faster-whisper) has none: it arrives with the wheelhouse.
            for cf in cat.carried_files([entry]):
                files.append(BundleFile(f"models/{cf.rel}", "model", cf.path, cf.file.sha256, cf.file.size,
                                        {"model": mid}))
            model_doc.append({"id": mid, "role": entry.role, "installed": entry.installed} if entry.installed
                             else {"id": mid, "role": entry.role, "entry": entry.entry})
        cfg = tmp / "config.toml"
        cfg.write_text(config.read_text() if config else DEFAULT_CONFIG)
        files.append(BundleFile("config/config.toml", "config", cfg))
        unit = tmp / UNIT_NAME
        unit.write_text(systemd_unit(version, device_root))
        files.append(BundleFile(f"systemd/{UNIT_NAME}", "unit", unit))
        files += extra_files or []

        out.mkdir(parents=True, exist_ok=True)
        (out / "blobs").mkdir()
        entries = []
        for bf in files:
            progress(f"  adding {bf.path}")
            sha, size = _store(bf.source, out / "blobs", bf.sha256 or None)
            entries.append({"path": bf.path, "kind": bf.kind, "size": size, "sha256": sha, **bf.extra})
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": "glasses-assistant",
        "version": version,
        "counter": counter,
        "compatible": compatible,
        "target": {"platform": target, "python": python_version, **({"glibc": glibc} if glibc else {}),
                   **({"lock": lock_name} if lock_name else {})},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device_root": device_root,
        "models": model_doc,
        "build_on_device": on_device,
        "wheelhouse": wheelhouse,
        "files": entries,
    }
    mb = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    sig = {"alg": "ed25519", "key_id": key.key_id, "signature": key.sign_b64(SIG_DOMAIN + mb)}
    (out / "manifest.json").write_bytes(mb)
    (out / "manifest.sig").write_text(json.dumps(sig, indent=1) + "\n")
    return Bundle(out, mb, sig)


def _store(src: Path, blobs: Path, known_sha: str | None) -> tuple[str, int]:
    """Copy ``src`` into ``blobs/<sha256>`` (hard link when possible), hashing as it goes."""
    h = hashlib.sha256()
    tmp = blobs / f".incoming-{src.name}"
    with src.open("rb") as fi, tmp.open("wb") as fo:
        while block := fi.read(1 << 20):
            h.update(block)
            fo.write(block)
    sha = h.hexdigest()
    if known_sha and sha != known_sha:
        tmp.unlink()
        raise DeployError(f"{src} changed while bundling (sha256 {sha[:12]}…, expected {known_sha[:12]}…)")
    dst = blobs / sha
    if dst.exists():
        tmp.unlink()
    else:
        tmp.rename(dst)
    return sha, dst.stat().st_size


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def copy_bundle(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)
