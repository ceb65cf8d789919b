# SPDX-License-Identifier: GPL-3.0-or-later
"""The device-side deploy agent: one self-contained file, standard library + ``cryptography``.

``glasses-assistant device push`` copies this file to ``<root>/agent.py`` on the device
and runs it over SSH as ``python3 agent.py VERB --root ROOT``; every verb prints one JSON
object on stdout (``{"ok": true, ...}`` or ``{"ok": false, "error": "...", "code": "..."}``)
and exits 0 or 1. The host imports this same module for the manifest and signature
rules, so both sides check exactly the same thing.

Device root layout::

    agent.py  device.json  keys/<key_id>.pub
    high-water.json           the highest bundle counter ever confirmed healthy (anti-downgrade)
    store/chunks/<sha256>     received chunks (a cut transfer resumes from these)
    store/blobs/<sha256>      files joined from chunks, staged until installed (then removed)
    slots/a  slots/b          the two installs, each with its own copy of every file:
                              manifest, files/, models -> files/models, site/ or venv/
    current -> slots/X        what boots (flipped by renaming a temporary symlink over it)
    previous -> slots/Y       what a rollback goes back to
    logs/agent.log            one JSON line per action

Safety rule: ``current`` only ever points at a slot whose READY marker was written (with
fsync) after every file was verified, and the flip is one ``rename(2)``. ``boot`` (run by
the systemd unit before the service starts) picks a slot whose every file hashes to its
signed manifest, so a process killed at any instant leaves a device that boots the old or
the new slot, never neither, and a file edited after install is caught before it runs.

The slots and the store never share an inode: every file is *copied* into its slot (hashed
while copying), so editing a file in the current slot cannot change the rollback slot, and no
write into a slot can reach a file another slot or the store relies on. A file that both
slots hold is not sent twice: ``have`` counts a verified slot copy as present.

A signed manifest is still checked as a whole before anything is installed
(:func:`validate_manifest`): a signature proves who wrote it, not that it is sane.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard

AGENT_VERSION = 2
MANIFEST_FORMAT = 1
CHUNK_SIZE = 4 << 20
MAX_MANIFEST_BYTES = 16 << 20
MAX_FILES = 100_000
MAX_FILE_SIZE = 64 << 30
MAX_COUNTER = (1 << 63) - 1
MAX_PATH = 1024
SLOTS = ("a", "b")
UNIT_NAME = "glasses-assistant.service"
SIG_DOMAIN = b"glasses-assistant-bundle-v1\n"  # so a bundle signature can never be replayed as anything else
_BLOCK = 1 << 20


class AgentError(Exception):
    """A refusal or failure, one line; ``code`` lets the host tell them apart."""

    def __init__(self, message: str, code: str = "error") -> None:
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------ shared rules
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_path(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def key_id(public_raw: bytes) -> str:
    """A short, stable name for a public key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def parse_public_key(text: str) -> bytes:
    """``ed25519 <64 hex digits> [comment]`` -> the 32 raw key bytes."""
    parts = text.split()
    if len(parts) < 2 or parts[0] != "ed25519":
        raise AgentError("not an ed25519 public key file (expected 'ed25519 <hex> [comment]')", "bad-key")
    try:
        raw = bytes.fromhex(parts[1])
    except ValueError:
        raise AgentError("public key is not hex", "bad-key") from None
    if len(raw) != 32:
        raise AgentError("an ed25519 public key is 32 bytes", "bad-key")
    return raw


def verify_signature(manifest_bytes: bytes, sig_doc: dict[str, Any], trusted: dict[str, bytes]) -> str:
    """Check ``sig_doc`` over ``manifest_bytes`` with one of ``trusted`` (key id -> raw key).

    Returns the key id. Raises AgentError code ``unknown-key`` or ``bad-signature``.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if sig_doc.get("alg") != "ed25519":
        raise AgentError(f"unsupported signature algorithm {sig_doc.get('alg')!r}", "bad-signature")
    kid = str(sig_doc.get("key_id", ""))
    if kid not in trusted:
        raise AgentError(f"bundle is signed by key {kid or '?'}, which this device does not trust", "unknown-key")
    try:
        sig = base64.b64decode(str(sig_doc.get("signature", "")), validate=True)
        Ed25519PublicKey.from_public_bytes(trusted[kid]).verify(sig, SIG_DOMAIN + manifest_bytes)
    except (InvalidSignature, ValueError):
        raise AgentError(f"bad signature on the bundle manifest (key {kid})", "bad-signature") from None
    return kid


def parse_manifest(manifest_bytes: bytes) -> dict[str, Any]:
    """Load a manifest (after its signature was verified) and check it as a whole (:func:`validate_manifest`)."""
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise AgentError(f"manifest.json is larger than {MAX_MANIFEST_BYTES >> 20} MiB", "bad-manifest")
    try:
        m = json.loads(manifest_bytes)
    except (ValueError, RecursionError):
        raise AgentError("manifest.json is not valid JSON", "bad-manifest") from None
    validate_manifest(m)
    return m


# ------------------------------------------------------------------ manifest rules
# Where each kind of file may live in a slot (the first path component) and how deep. A model
# may only be under models/<id>/, so no signed entry can land on manifest.json, READY, site/
# or venv/ of the slot. A new kind of file is one line here.
KIND_FOLDERS: dict[str, tuple[str, int]] = {
    "app": ("app", 2),
    "wheel": ("wheelhouse", 2),
    "device-wheel": ("device-wheels", 2),
    "model": ("models", 3),
    "config": ("config", 2),
    "unit": ("systemd", 2),
}


MANIFEST_CODES = ("bad-manifest", "bad-counter", "bad-path", "duplicate-path", "misplaced-file", "bad-kind",
                  "bad-size", "bad-sha256", "bad-app")
"""The refusal codes of :func:`validate_manifest`."""


def _refuse(code: str, message: str) -> AgentError:
    return AgentError(message, code)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_slot_path(path: Any) -> str:
    """A file path of a manifest, if it is a plain relative path (else AgentError ``bad-path``).

    No absolute paths, no empty, ``.`` or ``..`` components, no backslashes, control
    characters or NUL, a bounded length: the string itself is then the normal form, so two
    entries name the same file only if their strings are equal.
    """
    if not isinstance(path, str) or not path:
        raise _refuse("bad-path", f"manifest lists a file with no usable path ({_shown(path)})")
    parts = path.split("/")
    bad = (len(path) > MAX_PATH or path.startswith("/") or "\\" in path
           or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in path)
           or any(p in ("", ".", "..") or len(p.encode("utf-8", "surrogatepass")) > 255 for p in parts))
    if bad:
        raise _refuse("bad-path", f"manifest lists a bad file path {_shown(path)} (it must be relative, "
                      "with no empty, '.' or '..' parts)")
    return path


def validate_manifest(m: Any) -> None:
    """Check a whole manifest before anything of it is installed; AgentError names the first defect.

    Codes: ``bad-manifest`` (shape, format, missing keys), ``bad-counter`` (not an integer
    0..2^63-1), ``bad-path``, ``duplicate-path`` (two entries for one file, or a file that is
    also another's folder), ``misplaced-file`` (a kind outside its folder, e.g. a model on
    ``manifest.json`` or under ``site/``), ``bad-kind``, ``bad-size``, ``bad-sha256`` and
    ``bad-app`` (not exactly one app wheel).
    """
    if not isinstance(m, dict):
        raise _refuse("bad-manifest", "manifest.json is not a JSON object")
    if m.get("format") != MANIFEST_FORMAT:
        raise _refuse("bad-manifest", f"manifest format {_shown(m.get('format'))} is not {MANIFEST_FORMAT}")
    for key in ("version", "counter", "compatible", "files"):
        if key not in m:
            raise _refuse("bad-manifest", f"manifest has no {key!r}")
    for key in ("version", "compatible"):
        if not isinstance(m[key], str) or not m[key].strip() or len(m[key]) > 200 \
                or any(ord(c) < 0x20 for c in m[key]):
            raise _refuse("bad-manifest", f"manifest {key} must be a short line of text (got {_shown(m[key])})")
    counter = m["counter"]
    if not _is_int(counter) or not 0 <= counter <= MAX_COUNTER:
        raise _refuse("bad-counter", f"manifest counter must be an integer 0..2^63-1 (got {_shown(counter)})")
    files = m["files"]
    if not isinstance(files, list) or not files or len(files) > MAX_FILES:
        raise _refuse("bad-manifest", f"manifest files must be a list of 1..{MAX_FILES} entries")
    seen: set[str] = set()
    folders: set[str] = set()
    apps = 0
    for f in files:
        if not isinstance(f, dict):
            raise _refuse("bad-manifest", f"manifest lists a file entry that is not an object ({_shown(f)})")
        path = check_slot_path(f.get("path"))
        kind = f.get("kind")
        if kind not in KIND_FOLDERS:
            raise _refuse("bad-kind", f"{path}: unknown kind {_shown(kind)} (known: {', '.join(KIND_FOLDERS)})")
        folder, depth = KIND_FOLDERS[kind]
        parts = path.split("/")
        if parts[0] != folder or len(parts) < depth or (depth == 2 and len(parts) != 2):
            raise _refuse("misplaced-file", f"{path}: a {kind} file must be under {folder}/ "
                          f"({'/'.join([folder] + ['NAME'] * (depth - 1))})")
        if kind in ("app", "wheel", "device-wheel") and not path.endswith(".whl"):
            raise _refuse("misplaced-file", f"{path}: a {kind} must be a .whl file")
        size = f.get("size")
        if not _is_int(size) or not 0 <= size <= MAX_FILE_SIZE:
            raise _refuse("bad-size", f"{path}: size must be an integer 0..{MAX_FILE_SIZE} (got {_shown(size)})")
        sha = f.get("sha256")
        if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise _refuse("bad-sha256", f"{path}: sha256 must be 64 lower-case hex digits (got {_shown(sha)})")
        if path in seen or path in folders:
            raise _refuse("duplicate-path", f"manifest lists {path} twice (or as a file and a folder)")
        prefixes = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if prefixes & seen:
            raise _refuse("duplicate-path", f"manifest lists {path} inside {min(prefixes & seen)}, which is a file")
        seen.add(path)
        folders |= prefixes
        apps += kind == "app"
    if apps != 1:
        raise _refuse("bad-app", f"a bundle carries exactly one app wheel (this one has {apps})")


def manifest_counter(m: dict[str, Any] | None) -> int:
    """The counter of an installed manifest, 0 when it is unusable (never raises: this reads old slots)."""
    value = (m or {}).get("counter", 0)
    return value if _is_int(value) and 0 <= value <= MAX_COUNTER else 0


def check_admissible(m: dict[str, Any], device: dict[str, Any], current: dict[str, Any] | None,
                     force: bool, high_water: int = 0) -> None:
    """Refuse a bundle for another device, or a downgrade unless forced.

    A downgrade is a counter below the highest ever confirmed healthy on this device
    (``high_water``, persisted apart from the ``current`` link) or below the current slot's.
    """
    if m["compatible"] != device.get("compatible"):
        raise AgentError(f"bundle is for {m['compatible']!r}, this device is {device.get('compatible')!r}",
                         "incompatible")
    if force:
        return
    cur = manifest_counter(current) if current is not None else 0
    floor = max(cur, high_water)
    if m["counter"] < floor:
        what = (f"the installed {current.get('version')} (counter {cur})" if current is not None and cur == floor
                else f"counter {floor}, the highest this device has run")
        raise AgentError(f"bundle {m['version']} (counter {m['counter']}) is older than {what}; "
                         "use --force to downgrade", "downgrade")


_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64"}


def device_glibc() -> str | None:
    """This machine's glibc version ("2.36"), or None on a libc that is not glibc."""
    try:
        v = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return None
    return v.split()[-1] if v.startswith("glibc ") else None


def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return ()


def check_platform(m: dict[str, Any], *, machine: str, glibc: str | None, python: str | None) -> None:
    """Refuse a bundle this device cannot run, before anything is installed: another CPU
    architecture, wheels that need a newer glibc than the device's, or a wheelhouse for another
    Python than the one that would build the slot's venv (``python`` None: not checked)."""
    target = m.get("target")
    if not isinstance(target, dict):
        return
    plat = target.get("platform")
    here = _ARCH_ALIASES.get(machine, machine)
    if isinstance(plat, str) and plat.startswith("linux-") and plat.split("-", 1)[1] != here:
        raise AgentError(f"bundle is for {plat}, this device is linux-{here}", "wrong-platform")
    need = target.get("glibc")
    if isinstance(need, str) and _version_tuple(need):
        if glibc is None:
            raise AgentError(f"bundle needs glibc {need} or newer, this device has no glibc", "glibc-too-old")
        if _version_tuple(glibc) < _version_tuple(need):
            raise AgentError(f"bundle needs glibc {need} or newer, this device has glibc {glibc}", "glibc-too-old")
    py = target.get("python")
    if python is not None and m.get("wheelhouse") and isinstance(py, str) and py != python:
        raise AgentError(f"bundle's wheelhouse is for Python {py}, this device builds slots with Python {python}",
                         "wrong-python")


# ------------------------------------------------------------------ the device
class Device:
    """The device root and the operations on it."""

    def __init__(self, root: Path, crash_at: str = "") -> None:
        self.root = root
        self.crash_at = crash_at
        self.chunks = root / "store" / "chunks"
        self.blobs = root / "store" / "blobs"
        self.slots = root / "slots"
        self.logs = root / "logs"

    # -- helpers -----------------------------------------------------------------
    def _crash(self, point: str) -> None:
        # Fault injection for the tests: die like SIGKILL would (no cleanup, no flush).
        if self.crash_at == point:
            os._exit(137)

    def log(self, event: str, **fields: Any) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / "agent.log").open("a") as f:
            f.write(json.dumps({"t": round(time.time(), 3), "event": event, **fields}) + "\n")

    @property
    def config(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / "device.json").read_text())
        except OSError:
            raise AgentError(f"{self.root} is not set up: run `glasses-assistant device init`", "not-initialised") \
                from None

    def trusted_keys(self) -> dict[str, bytes]:
        keys: dict[str, bytes] = {}
        for p in sorted((self.root / "keys").glob("*.pub")):
            raw = parse_public_key(p.read_text())
            keys[key_id(raw)] = raw
        return keys

    def link_target(self, name: str) -> str | None:
        """Slot name a root symlink points at, or None."""
        try:
            return Path(os.readlink(self.root / name)).name
        except OSError:
            return None

    def slot_manifest(self, slot: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.slots / slot / "manifest.json").read_bytes())
        except (OSError, ValueError):
            return None

    def slot_state(self, slot: str) -> str:
        try:
            return str(json.loads((self.slots / slot / "state.json").read_text())["state"])
        except (OSError, ValueError, KeyError):
            return "missing"

    def set_state(self, slot: str, state: str, **extra: Any) -> None:
        _atomic_write(self.slots / slot / "state.json",
                      json.dumps({"state": state, "t": round(time.time(), 3), **extra}).encode())

    def slot_problem(self, slot: str, *, full: bool = True) -> str | None:
        """Why ``slot`` must not boot, or None: READY marker, trusted signature, a valid manifest,
        and every file a regular file of its own (no link into another slot or the store) whose
        sha256 is the manifest's. ``full=False`` checks sizes only (``info``: quick, not for boot).
        """
        d = self.slots / slot
        if not (d / "READY").is_file():
            return "not completely installed (no READY marker)"
        try:
            mb = (d / "manifest.json").read_bytes()
            verify_signature(mb, json.loads((d / "manifest.sig").read_text()), self.trusted_keys())
            m = parse_manifest(mb)
            for f in m["files"]:
                p = d / "files" / f["path"]
                st = p.lstat()
                if not stat.S_ISREG(st.st_mode):
                    return f"{f['path']} is not a regular file"
                if st.st_size != f["size"]:
                    return f"{f['path']} has {st.st_size} bytes, the manifest says {f['size']}"
                if full and sha256_path(p) != f["sha256"]:
                    return f"{f['path']} fails its sha256 (changed after install)"
            if any(f["kind"] == "model" for f in m["files"]) and os.readlink(d / "models") != "files/models":
                return "models does not point at the slot's own model files"
        except (AgentError, OSError, ValueError) as err:
            return f"does not verify: {err}"
        return None

    def slot_verifies(self, slot: str, *, full: bool = True) -> bool:
        """True when :meth:`slot_problem` finds nothing (every file hashed unless ``full=False``)."""
        return self.slot_problem(slot, full=full) is None

    # -- anti-downgrade ----------------------------------------------------------------
    @property
    def high_water(self) -> int:
        """The highest counter ever confirmed healthy here (0 on a new device).

        Kept in its own file, not read from the ``current`` link: a manual rollback, or a
        ``current`` pointing at an older slot after a failed update, must not lower the bar.
        An unreadable file counts as the installed slots' highest counter, never as 0.
        """
        try:
            value = json.loads((self.root / "high-water.json").read_text())["counter"]
            if _is_int(value) and 0 <= value <= MAX_COUNTER:
                return int(value)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return max((manifest_counter(self.slot_manifest(s)) for s in SLOTS if self.slot_state(s) == "good"),
                   default=0)

    def raise_high_water(self, counter: int, version: str) -> None:
        if counter > self.high_water or not (self.root / "high-water.json").is_file():
            _atomic_write(self.root / "high-water.json",
                          json.dumps({"counter": max(counter, self.high_water), "version": version,
                                      "t": round(time.time(), 3)}).encode())

    def set_link(self, name: str, slot: str | None) -> None:
        """Point ``name`` at ``slots/<slot>`` with one rename: never a moment without the link."""
        link = self.root / name
        if slot is None:
            if link.is_symlink():
                link.unlink()
            return
        tmp = self.root / f".{name}.tmp-{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(f"slots/{slot}", tmp)
        os.replace(tmp, link)
        _fsync_dir(self.root)

    # -- verbs -------------------------------------------------------------------
    def init(self, req: dict[str, Any]) -> dict[str, Any]:
        """Create the root, trust the given public keys and write device.json."""
        for d in (self.chunks, self.blobs, self.slots, self.logs, self.root / "keys"):
            d.mkdir(parents=True, exist_ok=True)
        for text in req.get("keys", []):
            raw = parse_public_key(text)
            (self.root / "keys" / f"{key_id(raw)}.pub").write_text(text.strip() + "\n")
        old = {}
        if (self.root / "device.json").is_file():
            old = self.config
        conf = {**old, **{k: v for k, v in req.get("device", {}).items() if v is not None}}
        if not conf.get("compatible"):
            raise AgentError("device init needs a compatible-device string", "bad-request")
        _atomic_write(self.root / "device.json", json.dumps(conf, indent=2).encode())
        self.log("init", device=conf, keys=sorted(self.trusted_keys()))
        return {"device": conf, "keys": sorted(self.trusted_keys())}

    def info(self, req: dict[str, Any]) -> dict[str, Any]:
        """Slots, versions and links; ``verifies`` is the quick check (sizes) unless ``full`` was asked."""
        cur, prev = self.link_target("current"), self.link_target("previous")
        full = bool(req.get("full"))
        slots = {}
        for s in SLOTS:
            m = self.slot_manifest(s)
            problem = None if m is None else self.slot_problem(s, full=full)
            slots[s] = None if m is None else {
                "version": m.get("version"), "counter": m.get("counter"), "state": self.slot_state(s),
                "compatible": m.get("compatible"), "verifies": problem is None, "problem": problem,
            }
        return {
            "agent_version": AGENT_VERSION, "root": str(self.root), "device": self.config,
            "current": cur, "previous": prev, "slots": slots, "keys": sorted(self.trusted_keys()),
            "high_water": self.high_water,
            "machine": platform.machine(), "python": sys.version.split()[0],
            "systemd": self._systemd(),
        }

    def have(self, req: dict[str, Any]) -> dict[str, Any]:
        """Which of the named files (by sha256) and chunks the device already holds (complete).

        A file counts when the store has it or a slot holds a copy of the right size; the copy
        is hashed again when it is copied into the next slot, so a tampered one is caught then.
        """
        copies = self._slot_copies()
        blobs = [b for b in _str_list(req, "blobs") if (self.blobs / _hex(b)).is_file() or _hex(b) in copies]
        chunks = [c for c in _str_list(req, "chunks") if (self.chunks / _hex(c)).is_file()]
        return {"blobs": blobs, "chunks": chunks}

    def check(self, req: dict[str, Any]) -> dict[str, Any]:
        """The refusals, before any byte is sent: signature, key, device, downgrade."""
        m = self._admit(req)
        cur = self.link_target("current")
        same = cur is not None and _manifest_sha(self.slots / cur) == sha256_bytes(_req_bytes(req, "manifest"))
        return {"version": m["version"], "counter": m["counter"], "already_current": same}

    def receive(self, stream: BinaryIO) -> dict[str, Any]:
        """Read ``{"sha256": .., "size": n}\\n`` + n bytes records from stdin into the chunk store.

        Each chunk is hashed and renamed into place only when complete and correct, so a
        connection cut in the middle leaves only whole, verified chunks behind. A header is one
        short JSON line and ``n`` an integer 1..CHUNK_SIZE: nothing a sender writes makes the
        agent read more than one chunk ahead (a negative size once meant "all of stdin").
        """
        self.chunks.mkdir(parents=True, exist_ok=True)
        count = total = 0
        while True:
            line = stream.readline(1024)
            if not line:
                break
            if not line.endswith(b"\n"):
                raise AgentError("chunk header is not one short JSON line", "bad-request")
            try:
                hdr = json.loads(line)
            except ValueError:
                raise AgentError("chunk header is not JSON", "bad-request") from None
            if not isinstance(hdr, dict):
                raise AgentError("chunk header is not a JSON object", "bad-request")
            want, size = _hex(hdr.get("sha256", "")), hdr.get("size")
            if not _is_int(size) or not 0 < size <= CHUNK_SIZE:
                raise AgentError(f"chunk size must be an integer 1..{CHUNK_SIZE} (got {_shown(size)})", "bad-request")
            tmp = self.chunks / f".{want}.{os.getpid()}.part"
            h = hashlib.sha256()
            left = size
            with tmp.open("wb") as out:
                while left:
                    block = stream.read(min(left, _BLOCK))
                    if not block:
                        break
                    h.update(block)
                    out.write(block)
                    left -= len(block)
            if left:
                tmp.unlink()
                raise AgentError(f"transfer cut after {count} chunks ({total} bytes)", "cut")
            if h.hexdigest() != want:
                tmp.unlink()
                raise AgentError(f"chunk {want[:12]} arrived corrupted", "corrupt")
            os.replace(tmp, self.chunks / want)
            count += 1
            total += size
        return {"chunks": count, "bytes": total}

    def activate(self, req: dict[str, Any]) -> dict[str, Any]:
        """Verify, install into the inactive slot, switch, start, health-check, commit or roll back."""
        m = self._admit(req)
        mbytes, sig = _req_bytes(req, "manifest"), req["signature"]
        cur = self.link_target("current")
        if cur is not None and _manifest_sha(self.slots / cur) == sha256_bytes(mbytes) \
                and self.slot_state(cur) == "good" and not req.get("force"):
            return {"slot": cur, "version": m["version"], "installed": False, "health": {"ok": True, "skipped": True}}
        for s in SLOTS:
            self._make_private(s)  # slots of agent 1 shared inodes with the store: copy them first
        chunk_lists = req.get("chunks", {})
        if not isinstance(chunk_lists, dict):
            raise AgentError("chunks must be an object of sha256 -> chunk list", "bad-request")
        sources = self._assemble(m, chunk_lists)
        target = next(s for s in SLOTS if s != cur)
        self.log("install", slot=target, version=m["version"], counter=m["counter"])
        self._install(target, m, mbytes, sig, sources)
        self._crash("before-switch")
        old = cur
        if old is not None:
            self.set_link("previous", old)
        self._crash("after-previous")
        self.set_link("current", target)
        self._crash("after-current")
        self.log("switch", current=target, previous=old)
        health = self.start_and_check(target, req.get("health_timeout"))
        if health["ok"]:
            self.set_state(target, "good")
            self.raise_high_water(m["counter"], m["version"])
            self.log("healthy", slot=target, version=m["version"])
            self.gc()
            return {"slot": target, "version": m["version"], "installed": True, "health": health}
        self.set_state(target, "bad", reason=health.get("error", "health check failed"))
        rolled = None
        if old is not None and self.slot_verifies(old):
            self.set_link("current", old)
            self.set_link("previous", target)
            self._restart_service(old)
            rolled = old
        self.log("rollback", failed=target, to=rolled, error=health.get("error"))
        raise AgentError(
            f"health check of {m['version']} failed ({health.get('error', 'unknown')}); "
            + (f"rolled back to slot {rolled}" if rolled else "no previous slot to roll back to"),
            "health-failed",
        )

    def boot(self, _req: dict[str, Any]) -> dict[str, Any]:
        """Pick the slot to boot: current if it verifies and is not an unconfirmed trial, else previous.

        "Verifies" hashes every file of the slot against its signed manifest (not only sizes):
        a same-size edit after install is caught here, before the service starts it.
        """
        cur, prev = self.link_target("current"), self.link_target("previous")
        checked: dict[str, bool] = {}

        def good(s: str | None) -> TypeGuard[str]:
            if s is None or s not in SLOTS:
                return False
            if s not in checked:
                self._make_private(s)
                problem = self.slot_problem(s)
                if problem is not None and (self.slots / s / "READY").is_file():
                    self.log("boot", action="refused", slot=s, problem=problem)
                checked[s] = problem is None
            return checked[s] and self.slot_state(s) not in ("bad",)

        if good(cur) and self.slot_state(cur) == "trial" and good(prev) and self.slot_state(prev) == "good":
            # Switched but never confirmed (the health check did not finish): the old slot is
            # the one known to work.
            self.set_state(cur, "bad", reason="never confirmed healthy")
            self.set_link("current", prev)
            self.set_link("previous", cur)
            self.log("boot", action="rolled-back", slot=prev)
            return {"slot": prev, "action": "rolled-back"}
        if good(cur):
            return {"slot": cur, "action": "kept"}
        candidates = [s for s in ([prev] + list(SLOTS)) if good(s)]
        if not candidates:
            raise AgentError("no slot verifies: nothing to boot", "unbootable")
        best = max(candidates, key=lambda s: manifest_counter(self.slot_manifest(s)))
        self.set_link("current", best)
        self.log("boot", action="repaired", slot=best)
        return {"slot": best, "action": "repaired"}

    def rollback(self, req: dict[str, Any]) -> dict[str, Any]:
        cur, prev = self.link_target("current"), self.link_target("previous")
        if prev is not None and prev in SLOTS:
            self._make_private(prev)
        if prev is None or prev == cur or not self.slot_verifies(prev):
            raise AgentError("there is no previous slot that verifies to roll back to", "no-previous")
        if self.slot_state(prev) == "bad" and not req.get("force"):
            raise AgentError(f"the previous slot {prev} failed its health check; use --force to boot it anyway",
                             "previous-bad")
        self.set_link("current", prev)
        if cur is not None:
            self.set_link("previous", cur)
        self._restart_service(prev)
        self.log("rollback", to=prev, manual=True)
        return {"slot": prev, "version": (self.slot_manifest(prev) or {}).get("version"), "previous": cur}

    def logs_(self, req: dict[str, Any]) -> dict[str, Any]:
        n = req.get("lines", 50)
        n = min(max(n, 1), 10_000) if _is_int(n) else 50
        lines: list[str] = []
        try:
            lines = (self.logs / "agent.log").read_text().splitlines()[-n:]
        except OSError:
            pass
        health = sorted(self.logs.glob("health-*.log"))
        last = health[-1].read_text()[-8000:] if health else ""
        journal = ""
        if self._systemd():
            r = subprocess.run(["journalctl", "-u", UNIT_NAME, "-n", str(n), "--no-pager"],
                               capture_output=True, text=True, check=False)
            journal = r.stdout
        return {"agent": lines, "health": last, "journal": journal}

    def health(self, req: dict[str, Any]) -> dict[str, Any]:
        cur = self.link_target("current")
        if cur is None:
            raise AgentError("nothing is installed", "not-installed")
        return self.run_health(cur, req.get("health_timeout"))

    # -- internals ---------------------------------------------------------------
    def _admit(self, req: dict[str, Any]) -> dict[str, Any]:
        mbytes = _req_bytes(req, "manifest")
        sig = req.get("signature")
        if not isinstance(sig, dict):
            raise AgentError("request has no signature object", "bad-request")
        verify_signature(mbytes, sig, self.trusted_keys())
        m = parse_manifest(mbytes)
        cur = self.link_target("current")
        if cur is not None and _manifest_sha(self.slots / cur) == sha256_bytes(mbytes):
            check_admissible(m, self.config, None, True)  # what runs now is no downgrade of itself
        else:
            check_admissible(m, self.config, self.slot_manifest(cur) if cur else None, bool(req.get("force")),
                             self.high_water)
        # Not even --force: a bundle this device cannot run is refused before a byte is installed.
        builds_venv = not self.config.get("python")
        check_platform(m, machine=platform.machine(), glibc=device_glibc(),
                       python=f"{sys.version_info[0]}.{sys.version_info[1]}" if builds_venv else None)
        return m

    def _slot_copies(self) -> dict[str, Path]:
        """sha256 -> a file in a slot that should hold it (right size; hashed when copied from)."""
        out: dict[str, Path] = {}
        for s in SLOTS:
            try:
                m = parse_manifest((self.slots / s / "manifest.json").read_bytes())
            except (OSError, AgentError):
                continue
            for f in m["files"]:
                p = self.slots / s / "files" / f["path"]
                try:
                    st = p.lstat()
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_size == f["size"]:
                    out.setdefault(f["sha256"], p)
        return out

    def _assemble(self, m: dict[str, Any], chunk_lists: dict[str, Any]) -> dict[str, Path]:
        """Where each file of ``m`` comes from: a blob joined from received chunks, or a slot's copy.

        Every source is hashed while it is copied into the new slot (:func:`_copy_verified`).
        """
        self.blobs.mkdir(parents=True, exist_ok=True)
        copies: dict[str, Path] | None = None
        sources: dict[str, Path] = {}
        for f in m["files"]:
            sha = f["sha256"]
            if sha in sources:
                continue
            blob = self.blobs / sha
            if not blob.is_file():
                chunks = chunk_lists.get(sha)
                if chunks is None:
                    copies = self._slot_copies() if copies is None else copies
                    if sha not in copies:
                        raise AgentError(f"{f['path']} was not transferred", "incomplete")
                    sources[sha] = copies[sha]
                    continue
                if not isinstance(chunks, list):
                    raise AgentError(f"{f['path']}: the chunk list is not a list", "bad-request")
                tmp = self.blobs / f".{sha}.{os.getpid()}.part"
                with tmp.open("wb") as out:
                    for c in chunks:
                        try:
                            with (self.chunks / _hex(c)).open("rb") as src:
                                shutil.copyfileobj(src, out, _BLOCK)
                        except FileNotFoundError:
                            tmp.unlink()
                            raise AgentError(f"{f['path']}: chunk {str(c)[:12]} missing", "incomplete") from None
                os.replace(tmp, blob)
            sources[sha] = blob
        return sources

    def _install(self, slot: str, m: dict[str, Any], mbytes: bytes, sig: dict[str, Any],
                 sources: dict[str, Path]) -> None:
        new = self.slots / f"{slot}.new"
        if new.exists():
            shutil.rmtree(new)
        new.mkdir(parents=True)
        for f in m["files"]:
            dst = new / "files" / f["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            src = sources[f["sha256"]]
            if not _copy_verified(src, dst, f["sha256"], f["size"]):
                if src.parent == self.blobs:
                    src.unlink()  # a bad blob must not satisfy the next `have`
                raise AgentError(f"{f['path']} fails its sha256 on the device (tampered or corrupt)", "tampered")
        if any(f["kind"] == "model" for f in m["files"]):
            # The catalogue of the slot's code reads <slot>/models: the slot's own copies.
            os.symlink("files/models", new / "models")
        self._crash("mid-install")
        (new / "manifest.json").write_bytes(mbytes)
        (new / "manifest.sig").write_text(json.dumps(sig))
        self._prepare_runtime(new, m)
        _atomic_write(new / "state.json", json.dumps({"state": "trial", "t": round(time.time(), 3)}).encode())
        _atomic_write(new / "READY", sha256_bytes(mbytes).encode())
        _fsync_dir(new)
        old = self.slots / slot
        if old.exists():
            # This slot is not `current` (maybe `previous`): replacing it keeps the device bootable.
            trash = self.slots / f".{slot}.old-{os.getpid()}"
            os.replace(old, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(new, old)
        _fsync_dir(self.slots)

    def _make_private(self, slot: str) -> None:
        """Give a slot installed by agent 1 its own files: it hard-linked them to the store and
        symlinked models/ into it, so one edit changed every slot. Idempotent; a no-op on slots
        this agent installed."""
        d = self.slots / slot
        try:
            m = parse_manifest((d / "manifest.json").read_bytes())
        except (OSError, AgentError):
            return
        for f in m["files"]:
            p = d / "files" / f["path"]
            try:
                st = p.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                tmp = p.with_name(f".{p.name}.own-{os.getpid()}")
                shutil.copyfile(p, tmp)
                os.replace(tmp, p)
        models = d / "models"
        if models.is_dir() and not models.is_symlink() and (d / "files" / "models").is_dir():
            old = d / f".models-old-{os.getpid()}"
            os.replace(models, old)
            os.symlink("files/models", models)
            shutil.rmtree(old, ignore_errors=True)

    def _prepare_runtime(self, slot_dir: Path, m: dict[str, Any]) -> None:
        """Unpack the app wheel into site/; on a real device also build venv/ from the wheelhouse."""
        apps = [f for f in m["files"] if f.get("kind") == "app"]
        if not apps:
            raise AgentError("bundle has no app wheel", "bad-manifest")
        with zipfile.ZipFile(slot_dir / "files" / apps[0]["path"]) as z:
            z.extractall(slot_dir / "site")
        if self.config.get("python"):
            return  # a development device runs the slot's code with a given interpreter (see docs)
        venv = slot_dir / "venv"
        r = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, check=False)
        if r.returncode:
            raise AgentError(f"cannot create the slot's venv: {r.stderr.strip()[-300:]}", "runtime")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
               "--find-links", str(slot_dir / "files" / "wheelhouse")]
        extra = [str(p) for p in sorted((slot_dir / "files" / "device-wheels").glob("*.whl"))]
        r = subprocess.run([*pip, str(slot_dir / "files" / apps[0]["path"]), *extra],
                           capture_output=True, text=True, check=False)
        if r.returncode and m.get("build_on_device"):
            # Packages the registry has no wheel for compile here, from the index, once.
            r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                                "--find-links", str(slot_dir / "files" / "wheelhouse"),
                                str(slot_dir / "files" / apps[0]["path"]), *extra],
                               capture_output=True, text=True, check=False)
        if r.returncode:
            raise AgentError(f"cannot install the slot's venv: {r.stderr.strip()[-300:]}", "runtime")

    def slot_python(self, slot: str) -> tuple[list[str], dict[str, str]]:
        d = self.slots / slot
        env = dict(os.environ)
        py = self.config.get("python")
        if py:
            env["PYTHONPATH"] = str(d / "site") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            return [py], env
        return [str(d / "venv" / "bin" / "python")], env

    def run_health(self, slot: str, timeout: float | None) -> dict[str, Any]:
        """Run the slot's own ``glasses_assistant.deploy.health`` within a deadline."""
        conf = self.config
        deadline = float(timeout or conf.get("health_timeout_s", 180))
        py, env = self.slot_python(slot)
        d = self.slots / slot
        cmd = [*py, "-m", "glasses_assistant.deploy.health", "--slot", str(d),
               "--level", str(conf.get("health_level", "full")),
               # The answer may use the whole deadline: a slow board (or an emulated one) loads
               # and warms for minutes before the question is asked; the deadline bounds both.
               "--answer-timeout", f"{deadline:g}"]
        if conf.get("bridge_url"):
            cmd += ["--bridge", str(conf["bridge_url"])]
        self.logs.mkdir(parents=True, exist_ok=True)
        logf = self.logs / f"health-{time.strftime('%Y%m%d-%H%M%S')}-{slot}.log"
        t0 = time.monotonic()
        with logf.open("w") as err:
            try:
                r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, env=env, cwd=str(d),
                                   timeout=deadline, check=False)
            except subprocess.TimeoutExpired:
                return {"ok": False, "error": f"no healthy answer within {deadline:g} s", "log": str(logf)}
        out = r.stdout.decode(errors="replace").strip().splitlines()
        try:
            result = json.loads(out[-1])
        except (IndexError, ValueError):
            tail = logf.read_text().strip().splitlines()[-1:] or ["no output"]
            result = {"ok": False, "error": f"health exited {r.returncode}: {tail[0][-200:]}"}
        result["seconds"] = round(time.monotonic() - t0, 2)
        result["log"] = str(logf)
        if r.returncode and result.get("ok"):
            result["ok"] = False
        return result

    def start_and_check(self, slot: str, timeout: float | None) -> dict[str, Any]:
        if self._systemd():
            self._restart_service(slot)
        return self.run_health(slot, timeout)

    def _systemd(self) -> bool:
        setting = self.config.get("systemd", "auto") if (self.root / "device.json").is_file() else "auto"
        if setting in (False, "off"):
            return False
        present = Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None
        return present if setting in ("auto", None) else bool(present)

    def _restart_service(self, slot: str) -> None:
        if not self._systemd():
            return  # no service manager (a test root): the health check runs the slot directly
        unit = self.slots / slot / "files" / "systemd" / UNIT_NAME
        link = Path("/etc/systemd/system") / UNIT_NAME
        if unit.is_file():
            tmp = link.with_name(f".{UNIT_NAME}.tmp")
            if tmp.is_symlink():
                tmp.unlink()
            os.symlink(self.root / "current" / "files" / "systemd" / UNIT_NAME, tmp)
            os.replace(tmp, link)
        for cmd in (["systemctl", "daemon-reload"], ["systemctl", "enable", UNIT_NAME],
                    ["systemctl", "restart", UNIT_NAME]):
            subprocess.run(cmd, capture_output=True, check=False)

    def gc(self) -> None:
        """Drop the staging store (chunks and blobs): both slots hold their own copies now."""
        for d in (self.blobs, self.chunks):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True, exist_ok=True)


# ------------------------------------------------------------------ small helpers
def _hex(s: str) -> str:
    s = str(s).lower()
    if len(s) != 64 or any(c not in "0123456789abcdef" for c in s):
        raise AgentError(f"not a sha256: {s[:70]!r}", "bad-request")
    return s


def _manifest_sha(slot_dir: Path) -> str | None:
    try:
        return sha256_bytes((slot_dir / "manifest.json").read_bytes())
    except OSError:
        return None


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_verified(src: Path, dst: Path, sha: str, size: int) -> bool:
    """Copy ``src`` to a new file ``dst`` (never a link: the slot gets its own inode), hashing the
    bytes as they are written; True when they are the manifest's. ``dst`` is removed otherwise."""
    h = hashlib.sha256()
    n = 0
    with src.open("rb") as fi, dst.open("xb") as fo:
        while block := fi.read(_BLOCK):
            h.update(block)
            fo.write(block)
            n += len(block)
        fo.flush()
        os.fsync(fo.fileno())
    if n != size or h.hexdigest() != sha:
        dst.unlink()
        return False
    return True


def _str_list(req: dict[str, Any], key: str) -> list[str]:
    value = req.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AgentError(f"{key} must be a list of sha256 strings", "bad-request")
    return value


def _req_bytes(req: dict[str, Any], key: str) -> bytes:
    """A base64 field of a request, decoded; AgentError ``bad-request`` when missing or not base64."""
    value = req.get(key)
    if not isinstance(value, str) or len(value) > 2 * MAX_MANIFEST_BYTES:
        raise AgentError(f"request has no usable {key}", "bad-request")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise AgentError(f"request {key} is not base64", "bad-request") from None


VERBS = {
    "init": Device.init, "info": Device.info, "have": Device.have, "check": Device.check,
    "activate": Device.activate, "boot": Device.boot, "rollback": Device.rollback,
    "logs": Device.logs_, "health": Device.health,
}


def main(argv: list[str] | None = None) -> int:
    """``agent.py VERB --root ROOT [--crash-at POINT]``; JSON request on stdin, JSON result on stdout."""
    args = list(sys.argv[1:] if argv is None else argv)
    # The host may vanish (cut link) while we finish an install: finish anyway, log the result.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    out: dict[str, Any]
    try:
        verb = args.pop(0) if args else ""
        opts = dict(zip(args[::2], args[1::2]))  # noqa: B905 - no strict= on the devices' Python 3.8
        root = Path(opts.get("--root", "/opt/glasses-assistant")).expanduser()
        dev = Device(root, crash_at=opts.get("--crash-at", ""))
        if verb == "receive":
            out = dev.receive(sys.stdin.buffer)
        elif verb in VERBS:
            raw = sys.stdin.read() if verb in ("init", "have", "check", "activate", "rollback", "logs", "health") \
                else ""
            try:
                req = json.loads(raw) if raw.strip() else {}
            except (ValueError, RecursionError):
                raise AgentError("the request is not JSON", "bad-request") from None
            if not isinstance(req, dict):
                raise AgentError("the request is not a JSON object", "bad-request")
            out = VERBS[verb](dev, req)
        else:
            raise AgentError(f"unknown verb {verb!r} (known: receive, {', '.join(VERBS)})", "bad-request")
        out = {"ok": True, **out}
        code = 0
    except AgentError as err:
        out, code = {"ok": False, "error": str(err), "code": err.code}, 1
    except Exception as err:  # the host must always get one JSON line it can show
        out, code = {"ok": False, "error": f"{type(err).__name__}: {err}", "code": "internal"}, 1
    try:
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    except OSError:
        pass
    return code


if __name__ == "__main__":
    sys.exit(main())
