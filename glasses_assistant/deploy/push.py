# SPDX-License-Identifier: GPL-3.0-or-later
"""``device push``: send only what the device lacks, in verified chunks, then let it activate.

1. copy the agent and ask the device what it is (``info``);
2. ``check``: the device verifies the signature, key, device string and counter before any
   byte of the bundle moves;
3. every file is cut into 4 MiB chunks named by sha256; the device says which whole files
   (``store/blobs``) and which chunks (``store/chunks``, left over from a cut transfer) it
   already has, and only the rest is streamed (``receive``), with a progress bar on stderr;
4. ``activate``: the device joins chunks into files, re-hashes every file, installs the
   inactive slot, flips ``current``, starts the service and runs the health check within the
   deadline, keeping the slot or rolling back. This runs in one remote call so that the
   device finishes (or rolls back) on its own even if the link drops meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .agent import CHUNK_SIZE, AgentError, parse_manifest
from .bundle import Bundle, human
from .errors import RefusedError, TransferError
from .ssh import SshTarget, b64, parse_reply


@dataclass
class FilePlan:
    path: str
    sha256: str
    size: int
    chunks: list[tuple[str, int, int]]  # (sha256, offset, size)


@dataclass
class PushReport:
    """What a push did: bytes on the wire, what was skipped, how long it took."""

    version: str = ""
    slot: str = ""
    installed: bool = False
    bundle_bytes: int = 0
    files_total: int = 0
    files_present: int = 0
    chunks_sent: int = 0
    chunks_skipped: int = 0
    bytes_sent: int = 0  # chunk payload + framing + agent + requests: everything we wrote to ssh
    payload_bytes: int = 0
    transfer_s: float = 0.0
    activate_s: float = 0.0
    total_s: float = 0.0
    health: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"{self.version} -> slot {self.slot}: sent {human(self.bytes_sent)} "
                f"({self.chunks_sent} chunks; {self.chunks_skipped} chunks and {self.files_present}/"
                f"{self.files_total} files already on the device) in {self.transfer_s:.1f} s; "
                f"install + health check {self.activate_s:.1f} s; total {self.total_s:.1f} s")


def plan_files(bundle: Bundle, *, check_hashes: bool = True) -> list[FilePlan]:
    """Chunk every file of the bundle; refuse here already if a file does not match the manifest."""
    plans = []
    for f in bundle.manifest["files"]:
        path = bundle.blob(f["sha256"])
        chunks: list[tuple[str, int, int]] = []
        whole = hashlib.sha256()
        try:
            with path.open("rb") as fh:
                offset = 0
                while block := fh.read(CHUNK_SIZE):
                    whole.update(block)
                    chunks.append((hashlib.sha256(block).hexdigest(), offset, len(block)))
                    offset += len(block)
        except OSError:
            raise RefusedError(f"bundle file {f['path']} is missing from {bundle.folder}", "tampered") from None
        if check_hashes and (whole.hexdigest() != f["sha256"] or offset != f["size"]):
            raise RefusedError(f"bundle file {f['path']} fails its sha256 (tampered or corrupt); refusing to send it",
                               "tampered")
        plans.append(FilePlan(f["path"], f["sha256"], f["size"], chunks))
    return plans


def push(
    target: SshTarget,
    bundle: Bundle,
    *,
    force: bool = False,
    health_timeout: float | None = None,
    progress: bool | None = None,
    check_hashes: bool = True,
    on_chunk: Callable[[int, subprocess.Popen[bytes]], None] | None = None,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
) -> PushReport:
    """Push ``bundle`` to ``target``; raise RefusedError / TransferError / HealthCheckError (one line).

    ``on_chunk(bytes_sent_so_far, ssh_process)`` is called after each chunk (tests cut the link there).
    """
    t0 = time.monotonic()
    try:  # the device's own rules, checked here first: a defect is one line before any connection
        parse_manifest(bundle.manifest_bytes)
    except AgentError as err:
        raise RefusedError(f"bundle {bundle.folder}: {err}", err.code) from None
    rep = PushReport(version=bundle.manifest["version"], bundle_bytes=bundle.size)
    from .ssh import agent_source

    info = target.install_agent()
    rep.bytes_sent += len(agent_source())
    if not info.get("ok"):
        raise RefusedError(f"{target.url}: {info.get('error')}", str(info.get("code")))
    req = {"manifest": b64(bundle.manifest_bytes), "signature": bundle.signature, "force": force}
    rep.bytes_sent += len(json.dumps(req))
    chk = target.call("check", req)
    plans = plan_files(bundle, check_hashes=check_hashes)
    rep.files_total = len(plans)
    if chk.get("already_current") and not force:
        log(f"{target.url} already runs {rep.version} (counter {chk['counter']}); nothing to send")
    have_req = {"blobs": sorted({p.sha256 for p in plans}),
                "chunks": sorted({c[0] for p in plans for c in p.chunks})}
    rep.bytes_sent += len(json.dumps(have_req))
    have = target.call("have", have_req)
    blobs_present = set(have["blobs"])
    chunks_present = set(have["chunks"])
    rep.files_present = sum(1 for p in plans if p.sha256 in blobs_present)
    needed = [p for p in plans if p.sha256 not in blobs_present]
    to_send: dict[str, tuple[FilePlan, int, int]] = {}
    for p in needed:
        for sha, off, size in p.chunks:
            if sha in chunks_present:
                rep.chunks_skipped += 1
            elif sha not in to_send:
                to_send[sha] = (p, off, size)
    rep.chunks_skipped += sum(len(p.chunks) for p in plans if p.sha256 in blobs_present)

    t1 = time.monotonic()
    if to_send:
        _stream(target, bundle, to_send, rep, progress, on_chunk)
    rep.transfer_s = time.monotonic() - t1

    t2 = time.monotonic()
    act = {**req, "chunks": {p.sha256: [c[0] for c in p.chunks] for p in needed},
           "health_timeout": health_timeout}
    rep.bytes_sent += len(json.dumps(act))
    log(f"installing {rep.version} on {target.url} and running the health check ...")
    out = target.call("activate", act, timeout=(health_timeout or 600) + 300)
    rep.activate_s = time.monotonic() - t2
    rep.slot, rep.installed, rep.health = out["slot"], bool(out.get("installed")), out.get("health", {})
    rep.total_s = time.monotonic() - t0
    return rep


def _stream(target: SshTarget, bundle: Bundle, to_send: dict[str, tuple[FilePlan, int, int]], rep: PushReport,
            progress: bool | None, on_chunk: Callable[[int, subprocess.Popen[bytes]], None] | None) -> None:
    from tqdm import tqdm

    total = sum(size for _p, _o, size in to_send.values())
    proc = target.open_stream("receive")
    assert proc.stdin is not None
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="push", file=sys.stderr,
               disable=(not sys.stderr.isatty()) if progress is None else not progress, leave=False)
    sent = 0
    try:
        for sha, (plan, off, size) in to_send.items():
            with bundle.blob(plan.sha256).open("rb") as fh:
                fh.seek(off)
                data = fh.read(size)
            header = (json.dumps({"sha256": sha, "size": size}) + "\n").encode()
            proc.stdin.write(header)
            proc.stdin.write(data)
            sent += size
            rep.bytes_sent += len(header) + size
            rep.payload_bytes += size
            rep.chunks_sent += 1
            bar.update(size)
            if on_chunk is not None:
                on_chunk(sent, proc)
        out, err = proc.communicate(timeout=600)
    except (BrokenPipeError, ConnectionResetError, ValueError, OSError):
        proc.kill()
        proc.wait()
        raise TransferError(f"connection to {target.url} cut after {human(sent)} of {human(total)}; "
                            "run the same push again to resume") from None
    finally:
        bar.close()
    if proc.returncode != 0:
        try:
            reply = parse_reply(out, err, proc.returncode, target.url)
        except TransferError:
            reply = {}
        raise TransferError(f"transfer to {target.url} failed after {human(sent)} of {human(total)} "
                            f"({reply.get('error', 'link lost')}); run the same push again to resume")
