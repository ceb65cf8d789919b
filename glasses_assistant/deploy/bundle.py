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
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .agent import MANIFEST_FORMAT, SIG_DOMAIN, UNIT_NAME, parse_manifest, sha256_path, verify_signature
from .errors import DeployError, RefusedError
from .keys import SigningKey

TARGETS = ("linux-aarch64", "linux-x86_64")
DEFAULT_DEVICE_ROOT = "/opt/glasses-assistant"
# Jetson (JetPack 6, Ubuntu 22.04) and Raspberry Pi OS 12 have glibc 2.35 / 2.36: wheels up to
# manylinux_2_35 run there.
MAX_GLIBC_MINOR = 35


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
        mb = (folder / "manifest.json").read_bytes()
        sig = json.loads((folder / "manifest.sig").read_text())
    except OSError as err:
        raise DeployError(f"{folder} is not a bundle (no manifest.json / manifest.sig): {err.strerror}") from None
    except ValueError:
        raise DeployError(f"{folder}/manifest.sig is not valid JSON") from None
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


def pip_platforms(target: str) -> list[str]:
    arch = target.split("-", 1)[1]
    tags = [f"manylinux_2_{m}_{arch}" for m in range(MAX_GLIBC_MINOR, 16, -1)]
    return [*tags, f"manylinux2014_{arch}", f"linux_{arch}"]


def host_target() -> str:
    return f"linux-{platform.machine()}"


def project_root() -> Path | None:
    """The source tree of the running assistant (an editable or repository checkout), if any."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() else None


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


def _req_name(req: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def build_wheelhouse(
    requirements: list[str], target: str, python_version: str, dest: Path, *,
    device_wheels: Iterable[Path] = (), progress: Callable[[str], None] = print,
) -> tuple[list[Path], list[dict[str, str]]]:
    """Download wheels for ``target``; return (wheels, packages that must be built on the device).

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
        name = _req_name(missing.group(1))
        req = next((q for q in reqs if _req_name(q) == name), missing.group(1))
        if name in given:
            raise DeployError(f"the given device wheel for {name} does not fit {target} / python {python_version}")
        reqs = [q for q in reqs if _req_name(q) != name]
        deps = _sdist_requirements(req, dest.parent / "sdist")
        reqs += [d for d in deps if _req_name(d) not in {_req_name(q) for q in reqs}]
        on_device.append({"requirement": req, "reason": f"the registry has no {target} wheel for it"})
        progress(f"  {req}: no {target} wheel on the registry; it will be compiled on the device")
    else:
        raise DeployError(f"cannot resolve a {target} wheelhouse (too many packages without wheels)")
    return sorted(dest.glob("*.whl")), on_device


def _sdist_requirements(req: str, tmp: Path) -> list[str]:
    """The runtime requirements declared in a package's sdist (PKG-INFO), fetched without building."""
    tmp.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary=:all:",
                        "-d", str(tmp), req], capture_output=True, text=True, check=False)
    for sd in sorted(tmp.glob("*.tar.gz")):
        if _req_name(sd.name.rsplit("-", 1)[0]) != _req_name(req):
            continue
        with tarfile.open(sd) as t:
            info = next((m for m in t.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")), None)
            if info is None:
                return []
            f = t.extractfile(info)
            msg = email.parser.Parser().parsestr(f.read().decode() if f else "")
        return [q for q in msg.get_all("Requires-Dist") or [] if "extra ==" not in q]
    if r.returncode:
        raise DeployError(f"cannot fetch the sdist of {req} to read its requirements")
    return []


def systemd_unit(version: str, device_root: str) -> str:
    """The service unit: boot step picks a verified slot, then the assistant runs under a watchdog."""
    return f"""# glasses-assistant {version}: generated by `glasses-assistant device bundle`, signed with the bundle.
[Unit]
Description=glasses-assistant voice assistant ({version})
After=network-online.target sound.target
StartLimitIntervalSec=600
StartLimitBurst=5

[Service]
Type=notify
NotifyAccess=main
# Before every start: pick the slot that verifies (current, or previous after a failed update).
ExecStartPre=/usr/bin/python3 {device_root}/agent.py boot --root {device_root}
ExecStart={device_root}/current/venv/bin/python -m glasses_assistant.deploy.service --root {device_root}
# The service pings the watchdog; a hung interpreter is killed and restarted.
WatchdogSec=30
Restart=on-failure
RestartSec=2
TimeoutStartSec=300
WorkingDirectory={device_root}
Environment=PYTHONUNBUFFERED=1
Nice=-5

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
    progress: Callable[[str], None] = print,
) -> Bundle:
    """Build and sign a bundle in ``out`` (created; must be empty or absent).

    ``requirements`` replaces the app wheel's own dependency list for the wheelhouse (tests).
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
        for w in device_wheels or []:
            files.append(BundleFile(f"device-wheels/{w.name}", "device-wheel", w))
        if wheelhouse:
            progress(f"building the {target} wheelhouse ...")
            reqs = wheel_requirements(app_wheel) if requirements is None else requirements
            wheels, on_device = build_wheelhouse(reqs, target, python_version,
                                                 tmp / "wheelhouse", device_wheels=device_wheels or [],
                                                 progress=progress)
            files += [BundleFile(f"wheelhouse/{w.name}", "wheel", w) for w in wheels]
        cat = load_catalogue(cache_dir=models_dir)
        model_doc = []
        for mid in models if models is not None else default_model_ids():
            entry = cat.get(mid)
            progress(f"verifying model {mid} ...")
            cat.verify(entry)
            if entry.installed:
                # Ships inside a dependency (silero VAD in faster-whisper): it arrives with the wheelhouse.
                model_doc.append({"id": mid, "role": entry.role, "installed": entry.installed})
                continue
            folder = cat.folder(entry)
            for mf in entry.files:
                files.append(BundleFile(f"models/{mid}/{mf.name}", "model", folder / mf.name, mf.sha256, mf.size,
                                        {"model": mid}))
            model_doc.append({"id": mid, "role": entry.role, "entry": entry.entry})
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
        "target": {"platform": target, "python": python_version},
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
