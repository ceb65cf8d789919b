# SPDX-License-Identifier: GPL-3.0-or-later
"""Attacks on the device agent over real SSH: signed manifests with defects, tampering, downgrades.

Every manifest here is *correctly signed* by the trusted key: the signature proves who wrote
it, not that it is sane. Each defect goes straight to the agent (bypassing the host's own
check, which runs the same rules) and must be refused with its code, with nothing installed.
Then what happens after a good install: a same-size edit is caught at boot, an edit in the
current slot leaves the rollback slot as it was, the anti-downgrade floor survives a
rollback, and slots installed by agent 1 (hard links into the store) are made private.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from glasses_assistant.deploy.agent import SIG_DOMAIN
from glasses_assistant.deploy.bundle import Bundle, load_bundle
from glasses_assistant.deploy.errors import DeployError, RefusedError
from glasses_assistant.deploy.keys import SigningKey
from glasses_assistant.deploy.push import push
from glasses_assistant.deploy.ssh import SshTarget, b64

Edit = Callable[[dict[str, Any]], None]


def model(m: dict[str, Any]) -> dict[str, Any]:
    return next(f for f in m["files"] if f["kind"] == "model")


def _set(key: str, value: Any) -> Edit:
    return lambda m: m.__setitem__(key, value)


def _model_path(path: Any) -> Edit:
    return lambda m: model(m).__setitem__("path", path)


def _dup(m: dict[str, Any]) -> None:
    m["files"].append(copy.deepcopy(model(m)))


def _dup_other_sha(m: dict[str, Any]) -> None:
    f = copy.deepcopy(model(m))
    f["sha256"] = "0" * 64
    m["files"].append(f)


def _file_and_folder(m: dict[str, Any]) -> None:
    f = copy.deepcopy(model(m))
    f["path"] = model(m)["path"] + "/inner.bin"
    m["files"].append(f)


def _second_app(m: dict[str, Any]) -> None:
    app = next(f for f in m["files"] if f["kind"] == "app")
    m["files"].append({**app, "path": "app/other-1.0-py3-none-any.whl"})


def _no_app(m: dict[str, Any]) -> None:
    m["files"] = [f for f in m["files"] if f["kind"] != "app"]


def _entry(key: str, value: Any) -> Edit:
    return lambda m: model(m).__setitem__(key, value)


# (what, the edit of a good manifest, the code it must be refused with)
DEFECTS: list[tuple[str, Edit, str]] = [
    ("duplicate path", _dup, "duplicate-path"),
    ("duplicate path, other content", _dup_other_sha, "duplicate-path"),
    ("a file that is another file's folder", _file_and_folder, "duplicate-path"),
    ("path '.'", _model_path("."), "bad-path"),
    ("path with a '.' part", _model_path("models/fake/./llm.gguf"), "bad-path"),
    ("path with an empty part", _model_path("models//llm.gguf"), "bad-path"),
    ("path ending in /", _model_path("models/fake/"), "bad-path"),
    ("path climbing out", _model_path("models/../../etc/passwd"), "bad-path"),
    ("absolute path", _model_path("/etc/passwd"), "bad-path"),
    ("backslash path", _model_path("models\\fake\\x"), "bad-path"),
    ("NUL in a path", _model_path("models/fake/x\x00y"), "bad-path"),
    ("newline in a path", _model_path("models/fake/x\ny"), "bad-path"),
    ("C1 control (CSI) in a path", _model_path("models/fake/x\x9b2Jy"), "bad-path"),
    ("a 300-byte path part", _model_path("models/fake/" + "x" * 300), "bad-path"),
    ("empty path", _model_path(""), "bad-path"),
    ("path not a string", _model_path(["models", "x"]), "bad-path"),
    ("model on manifest.json", _model_path("manifest.json"), "misplaced-file"),
    ("model under site/", _model_path("site/glasses_assistant/pipeline.py"), "misplaced-file"),
    ("model under venv/", _model_path("venv/bin/python"), "misplaced-file"),
    ("model on READY", _model_path("READY"), "misplaced-file"),
    ("model outside models/<id>/", _model_path("models/llm.gguf"), "misplaced-file"),
    ("app not a wheel", lambda m: next(f for f in m["files"] if f["kind"] == "app").__setitem__(
        "path", "app/run.sh"), "misplaced-file"),
    ("unknown kind", _entry("kind", "firmware"), "bad-kind"),
    ("two app wheels", _second_app, "bad-app"),
    ("no app wheel", _no_app, "bad-app"),
    ("counter 'abc'", _set("counter", "abc"), "bad-counter"),
    ("counter true", _set("counter", True), "bad-counter"),
    ("counter 1.5", _set("counter", 1.5), "bad-counter"),
    ("counter -1", _set("counter", -1), "bad-counter"),
    ("counter 2^64", _set("counter", 2**64), "bad-counter"),
    ("counter NaN", _set("counter", float("nan")), "bad-counter"),
    ("negative size", _entry("size", -1), "bad-size"),
    ("size as text", _entry("size", "10"), "bad-size"),
    ("size 2^70", _entry("size", 2**70), "bad-size"),
    ("sha256 not hex", _entry("sha256", "z" * 64), "bad-sha256"),
    ("sha256 upper case", _entry("sha256", "A" * 64), "bad-sha256"),
    ("files not a list", _set("files", {"a": 1}), "bad-manifest"),
    ("no files", _set("files", []), "bad-manifest"),
    ("entry not an object", lambda m: m["files"].append("app/x.whl"), "bad-manifest"),
    ("format 2", _set("format", 2), "bad-manifest"),
    ("version not text", _set("version", ["1"]), "bad-manifest"),
    ("version with a newline", _set("version", "1.0\nroot"), "bad-manifest"),
    ("no compatible", lambda m: m.pop("compatible"), "bad-manifest"),
]


def signed(bundle: Bundle, key: SigningKey, edit: Edit) -> dict[str, Any]:
    """An agent request for ``bundle``'s manifest with ``edit`` applied, signed by ``key``."""
    m = json.loads(bundle.manifest_bytes)
    edit(m)
    mb = (json.dumps(m, indent=1, sort_keys=True) + "\n").encode()
    sig = {"alg": "ed25519", "key_id": key.key_id, "signature": key.sign_b64(SIG_DOMAIN + mb)}
    return {"manifest": b64(mb), "signature": sig}


def test_every_manifest_defect_is_refused_with_its_code(device: SshTarget, make_bundle, signing_key) -> None:  # type: ignore[no-untyped-def]
    b = make_bundle(1)
    refused: dict[str, str] = {}
    for i, (what, edit, code) in enumerate(DEFECTS):
        req = signed(b, signing_key, edit)
        # `activate` is what would install; `check` (the same admission) is asked for some of them.
        for verb in ("activate", "check") if i % 8 == 0 else ("activate",):
            with pytest.raises(RefusedError) as ei:
                device.call(verb, req)
            assert ei.value.reason == code, f"{what}: refused as {ei.value.reason}, not {code}: {ei.value}"
            assert "\n" not in str(ei.value)
        refused[what] = code
    info = device.call("info")
    assert info["current"] is None and all(s is None for s in info["slots"].values())  # nothing installed
    assert len(refused) == len(DEFECTS)
    print(f"deploy defects refused: {len(refused)} ({len(set(refused.values()))} codes)")


def test_the_host_refuses_the_same_defects_before_connecting(make_bundle, signing_key, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    b = make_bundle(1)
    req = signed(b, signing_key, _model_path("manifest.json"))
    import base64

    folder = tmp_path / "bad-bundle"
    folder.mkdir()
    (folder / "manifest.json").write_bytes(base64.b64decode(req["manifest"]))
    (folder / "manifest.sig").write_text(json.dumps(req["signature"]))
    nowhere = SshTarget(host="127.0.0.1", port=9, root="/nonexistent")
    with pytest.raises(RefusedError, match="misplaced|must be under models") as ei:
        push(nowhere, load_bundle(folder))
    assert ei.value.reason == "misplaced-file"


def test_receive_refuses_bad_sizes_instead_of_buffering_stdin(device: SshTarget) -> None:
    sha = "a" * 64
    for header, what in ((f'{{"sha256": "{sha}", "size": -1}}\n'.encode(), "negative"),
                         (f'{{"sha256": "{sha}", "size": {2**40}}}\n'.encode(), "huge"),
                         (f'{{"sha256": "{sha}", "size": "12"}}\n'.encode(), "text"),
                         (b"[1, 2]\n", "not an object"),
                         (b"{" + b" " * 5000, "a header line with no end")):
        proc = device.open_stream("receive")
        out, _ = proc.communicate(header + os.urandom(1 << 20), timeout=60)
        reply = json.loads(out.decode().strip().splitlines()[-1])
        assert not reply["ok"] and reply["code"] == "bad-request", (what, reply)
    assert not [p for p in (Path(device.root) / "store" / "chunks").iterdir()]


def boots(t: SshTarget) -> str:
    return str(t.call("boot")["slot"])


def test_tampering_after_install_is_caught_at_boot(device: SshTarget, make_bundle) -> None:  # type: ignore[no-untyped-def]
    b1, b2 = make_bundle(1), make_bundle(2)
    push(device, b1)
    push(device, b2)
    root = Path(device.root)
    assert boots(device) == "b"
    target = root / "slots" / "b" / "files" / model(b2.manifest)["path"]
    data = bytearray(target.read_bytes())
    data[100] ^= 0x01  # same size, one bit: a size check boots it
    st = target.stat()
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old modification time
    assert boots(device) == "a"  # b refused, a (which verifies) boots instead
    info = device.call("info", {})
    assert info["current"] == "a"
    logs = device.call("logs", {"lines": 20})["agent"]
    assert any('"refused"' in line and "sha256" in line for line in logs)


def test_an_edit_in_the_current_slot_leaves_the_rollback_slot_as_it_was(device: SshTarget, make_bundle) -> None:  # type: ignore[no-untyped-def]
    b1, b2 = make_bundle(1), make_bundle(2)
    push(device, b1)
    push(device, b2)  # the same models in both slots (not sent twice)
    root = Path(device.root)
    for f in b2.manifest["files"]:
        cur, old = (root / "slots" / s / "files" / f["path"] for s in ("b", "a"))
        if not old.exists():
            continue
        with cur.open("r+b") as fh:  # edit in place, as a careless `vi` on the device would
            fh.write(b"EDITED")
        assert old.read_bytes()[:6] != b"EDITED", f"{f['path']}: the rollback slot changed with the current one"
    assert device.call("rollback")["slot"] == "a"
    assert boots(device) == "a"


def test_the_anti_downgrade_floor_survives_a_rollback(device: SshTarget, make_bundle) -> None:  # type: ignore[no-untyped-def]
    push(device, make_bundle(5))
    push(device, make_bundle(6))
    assert device.call("rollback")["slot"] == "a"  # current is counter 5 now
    assert device.call("info")["high_water"] == 6
    with pytest.raises(RefusedError, match="counter 6, the highest this device has run") as ei:
        push(device, make_bundle(5, version="1.0.5-rebuilt"))
    assert ei.value.reason == "downgrade"
    # A lost or garbled high-water file is never "0": the slots that ran are the floor.
    (Path(device.root) / "high-water.json").write_text("garbage")
    with pytest.raises(RefusedError, match="downgrade"):
        push(device, make_bundle(4))
    assert push(device, make_bundle(5, version="1.0.5-forced"), force=True).installed


def test_slots_of_agent_1_are_made_private(device: SshTarget, make_bundle) -> None:  # type: ignore[no-untyped-def]
    """Agent 1 hard-linked slot files to the store and symlinked models/<id>/<file> into it."""
    b = make_bundle(1)
    push(device, b)
    root = Path(device.root)
    slot, blobs = root / "slots" / "a", root / "store" / "blobs"
    (slot / "models").unlink()
    for f in b.manifest["files"]:
        p = slot / "files" / f["path"]
        if not (blobs / f["sha256"]).exists():
            os.link(p, blobs / f["sha256"])
        if f["kind"] == "model":
            link = slot / f["path"]
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(blobs / f["sha256"], link.parent), link)
    assert (slot / "files" / model(b.manifest)["path"]).stat().st_nlink == 2
    assert boots(device) == "a"  # still boots, and now owns its files
    for f in b.manifest["files"]:
        assert (slot / "files" / f["path"]).stat().st_nlink == 1
    assert os.readlink(slot / "models") == "files/models"


def test_bad_requests_are_one_line_errors(device: SshTarget) -> None:
    for verb, req in (("check", {"manifest": "!!not base64!!", "signature": {}}), ("check", {}),
                      ("have", {"blobs": "abc"}), ("activate", {"manifest": b64(b"{}"), "signature": "x"})):
        with pytest.raises(DeployError) as ei:
            device.call(verb, req)
        assert "\n" not in str(ei.value) and "Traceback" not in str(ei.value)
    r = subprocess.run(device.argv(device.agent_cmd("info")), input=b"[not json", capture_output=True, check=False)
    assert b'"ok": true' in r.stdout  # info reads no request
    r = subprocess.run(device.argv(device.agent_cmd("have")), input=b"[not json", capture_output=True, check=False)
    assert json.loads(r.stdout)["code"] == "bad-request"
