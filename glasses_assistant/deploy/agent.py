# SPDX-License-Identifier: GPL-3.0-or-later
"""The device-side deploy agent: one self-contained file, standard library + ``cryptography``.

``glasses-assistant device push`` copies this file to ``<root>/agent.py`` on the device
and runs it over SSH as ``python3 agent.py VERB --root ROOT``; every verb prints one JSON
object on stdout (``{"ok": true, ...}`` or ``{"ok": false, "error": "...", "code": "..."}``)
and exits 0 or 1. The host imports this same module for the manifest and signature
rules, so both sides check exactly the same thing.

Device root layout::

    agent.py  device.json  keys/<key_id>.pub
    store/chunks/<sha256>     received chunks (a cut transfer resumes from these)
    store/blobs/<sha256>      every bundle file, content-addressed: shared by both slots
    slots/a  slots/b          the two installs (manifest, files, models/ symlinks, site/ or venv/)
    current -> slots/X        what boots (flipped by renaming a temporary symlink over it)
    previous -> slots/Y       what a rollback goes back to
    logs/agent.log            one JSON line per action

Safety rule: ``current`` only ever points at a slot whose READY marker was written (with
fsync) after every file was verified, and the flip is one ``rename(2)``. ``boot`` (run by
the systemd unit before the service starts) picks a slot that verifies, so a process
killed at any instant leaves a device that boots the old or the new slot, never neither.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

AGENT_VERSION = 1
MANIFEST_FORMAT = 1
CHUNK_SIZE = 4 << 20
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
    """Load and sanity-check a manifest (after its signature was verified)."""
    try:
        m = json.loads(manifest_bytes)
    except ValueError:
        raise AgentError("manifest.json is not valid JSON", "bad-manifest") from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
        raise AgentError(f"manifest format {m.get('format') if isinstance(m, dict) else '?'} is not "
                         f"{MANIFEST_FORMAT}", "bad-manifest")
    for key in ("version", "counter", "compatible", "files"):
        if key not in m:
            raise AgentError(f"manifest has no {key!r}", "bad-manifest")
    for f in m["files"]:
        p = str(f.get("path", ""))
        # Paths become file names inside the slot: no absolute paths, no climbing out.
        if not p or p.startswith("/") or ".." in Path(p).parts or len(str(f.get("sha256", ""))) != 64:
            raise AgentError(f"manifest lists a bad file entry {p!r}", "bad-manifest")
    return m


def check_admissible(m: dict[str, Any], device: dict[str, Any], current: dict[str, Any] | None,
                     force: bool) -> None:
    """Refuse a bundle for another device, or a downgrade unless forced."""
    if m["compatible"] != device.get("compatible"):
        raise AgentError(f"bundle is for {m['compatible']!r}, this device is {device.get('compatible')!r}",
                         "incompatible")
    if current is not None and not force:
        cur = int(current.get("counter", 0))
        if int(m["counter"]) < cur:
            raise AgentError(f"bundle {m['version']} (counter {m['counter']}) is older than the installed "
                             f"{current.get('version')} (counter {cur}); use --force to downgrade", "downgrade")


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

    def slot_verifies(self, slot: str, *, full: bool = False) -> bool:
        """READY marker, trusted signature, every file present at its size (or hash when ``full``)."""
        d = self.slots / slot
        if not (d / "READY").is_file():
            return False
        try:
            mb = (d / "manifest.json").read_bytes()
            verify_signature(mb, json.loads((d / "manifest.sig").read_text()), self.trusted_keys())
            m = parse_manifest(mb)
            for f in m["files"]:
                p = d / "files" / f["path"]
                if p.stat().st_size != f["size"] or (full and sha256_path(p) != f["sha256"]):
                    return False
        except (AgentError, OSError, ValueError):
            return False
        return True

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

    def info(self, _req: dict[str, Any]) -> dict[str, Any]:
        cur, prev = self.link_target("current"), self.link_target("previous")
        slots = {}
        for s in SLOTS:
            m = self.slot_manifest(s)
            slots[s] = None if m is None else {
                "version": m.get("version"), "counter": m.get("counter"), "state": self.slot_state(s),
                "compatible": m.get("compatible"), "verifies": self.slot_verifies(s),
            }
        return {
            "agent_version": AGENT_VERSION, "root": str(self.root), "device": self.config,
            "current": cur, "previous": prev, "slots": slots, "keys": sorted(self.trusted_keys()),
            "machine": platform.machine(), "python": sys.version.split()[0],
            "systemd": self._systemd(),
        }

    def have(self, req: dict[str, Any]) -> dict[str, Any]:
        """Which of the named blobs and chunks the device already holds (complete)."""
        blobs = [b for b in req.get("blobs", []) if (self.blobs / _hex(b)).is_file()]
        chunks = [c for c in req.get("chunks", []) if (self.chunks / _hex(c)).is_file()]
        return {"blobs": blobs, "chunks": chunks}

    def check(self, req: dict[str, Any]) -> dict[str, Any]:
        """The refusals, before any byte is sent: signature, key, device, downgrade."""
        m = self._admit(req)
        cur = self.link_target("current")
        same = cur is not None and _manifest_sha(self.slots / cur) == sha256_bytes(_b64(req["manifest"]))
        return {"version": m["version"], "counter": m["counter"], "already_current": same}

    def receive(self, stream: BinaryIO) -> dict[str, Any]:
        """Read ``{"sha256": .., "size": n}\\n`` + n bytes records from stdin into the chunk store.

        Each chunk is hashed and renamed into place only when complete and correct, so a
        connection cut in the middle leaves only whole, verified chunks behind.
        """
        self.chunks.mkdir(parents=True, exist_ok=True)
        count = total = 0
        while True:
            line = stream.readline()
            if not line:
                break
            hdr = json.loads(line)
            want, size = _hex(hdr["sha256"]), int(hdr["size"])
            if size > 64 * CHUNK_SIZE:
                raise AgentError(f"chunk of {size} bytes is too large", "bad-request")
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
        mbytes, sig = _b64(req["manifest"]), req["signature"]
        cur = self.link_target("current")
        if cur is not None and _manifest_sha(self.slots / cur) == sha256_bytes(mbytes) \
                and self.slot_state(cur) == "good" and not req.get("force"):
            return {"slot": cur, "version": m["version"], "installed": False, "health": {"ok": True, "skipped": True}}
        self._assemble(m, req.get("chunks", {}))
        target = next(s for s in SLOTS if s != cur)
        self.log("install", slot=target, version=m["version"], counter=m["counter"])
        self._install(target, m, mbytes, sig)
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
        """Pick the slot to boot: current if it verifies and is not an unconfirmed trial, else previous."""
        cur, prev = self.link_target("current"), self.link_target("previous")

        def good(s: str | None) -> bool:
            return s is not None and self.slot_verifies(s) and self.slot_state(s) not in ("bad",)

        if good(cur) and self.slot_state(cur) == "trial" and good(prev) and self.slot_state(prev) == "good":
            # Switched but never confirmed (the health check did not finish): the old slot is
            # the one known to work.
            self.set_state(cur, "bad", reason="never confirmed healthy")  # type: ignore[arg-type]
            self.set_link("current", prev)
            self.set_link("previous", cur)
            self.log("boot", action="rolled-back", slot=prev)
            return {"slot": prev, "action": "rolled-back"}
        if good(cur):
            return {"slot": cur, "action": "kept"}
        candidates = [s for s in ([prev] + list(SLOTS)) if good(s)]
        if not candidates:
            raise AgentError("no slot verifies: nothing to boot", "unbootable")
        best = max(candidates, key=lambda s: int((self.slot_manifest(s) or {}).get("counter", 0)))
        self.set_link("current", best)
        self.log("boot", action="repaired", slot=best)
        return {"slot": best, "action": "repaired"}

    def rollback(self, req: dict[str, Any]) -> dict[str, Any]:
        cur, prev = self.link_target("current"), self.link_target("previous")
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
        n = int(req.get("lines", 50))
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
        mbytes = _b64(req["manifest"])
        verify_signature(mbytes, req["signature"], self.trusted_keys())
        m = parse_manifest(mbytes)
        cur = self.link_target("current")
        check_admissible(m, self.config, self.slot_manifest(cur) if cur else None, bool(req.get("force")))
        return m

    def _assemble(self, m: dict[str, Any], chunk_lists: dict[str, list[str]]) -> None:
        """Join received chunks into blobs and verify every file's sha256 (all of them, every time)."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        for f in m["files"]:
            sha = _hex(f["sha256"])
            blob = self.blobs / sha
            if not blob.is_file():
                chunks = chunk_lists.get(sha)
                if chunks is None:
                    raise AgentError(f"{f['path']} was not transferred", "incomplete")
                tmp = self.blobs / f".{sha}.{os.getpid()}.part"
                with tmp.open("wb") as out:
                    for c in chunks:
                        try:
                            with (self.chunks / _hex(c)).open("rb") as src:
                                shutil.copyfileobj(src, out, _BLOCK)
                        except FileNotFoundError:
                            tmp.unlink()
                            raise AgentError(f"{f['path']}: chunk {c[:12]} missing", "incomplete") from None
                os.replace(tmp, blob)
            got = sha256_path(blob)
            if got != sha or blob.stat().st_size != f["size"]:
                blob.unlink()  # a bad blob must not satisfy the next `have`
                raise AgentError(f"{f['path']} fails its sha256 on the device (tampered or corrupt)", "tampered")

    def _install(self, slot: str, m: dict[str, Any], mbytes: bytes, sig: dict[str, Any]) -> None:
        new = self.slots / f"{slot}.new"
        if new.exists():
            shutil.rmtree(new)
        new.mkdir(parents=True)
        for f in m["files"]:
            dst = new / "files" / f["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(self.blobs / f["sha256"], dst)
            if f.get("kind") == "model":
                # models/<id>/<name> -> the shared blob: the catalogue of the slot's code reads this folder.
                mdst = new / f["path"]
                mdst.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.path.relpath(self.blobs / f["sha256"], mdst.parent), mdst)
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
               "--level", str(conf.get("health_level", "full"))]
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
        """Drop chunks, and blobs no slot refers to (both slots' blobs stay for rollback)."""
        keep: set[str] = set()
        for s in SLOTS:
            m = self.slot_manifest(s)
            if m:
                keep.update(f["sha256"] for f in m["files"])
        for b in self.blobs.iterdir():
            if b.name not in keep:
                b.unlink()
        shutil.rmtree(self.chunks, ignore_errors=True)
        self.chunks.mkdir(parents=True, exist_ok=True)


# ------------------------------------------------------------------ small helpers
def _hex(s: str) -> str:
    s = str(s).lower()
    if len(s) != 64 or any(c not in "0123456789abcdef" for c in s):
        raise AgentError(f"not a sha256: {s[:70]!r}", "bad-request")
    return s


def _b64(s: str) -> bytes:
    return base64.b64decode(s)


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


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


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
            req = json.loads(raw) if raw.strip() else {}
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
