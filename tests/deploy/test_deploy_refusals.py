# SPDX-License-Identifier: GPL-3.0-or-later
"""Every refusal, checked by the device agent over real SSH: nothing is installed or switched."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from glasses_assistant.deploy.bundle import load_bundle
from glasses_assistant.deploy.errors import RefusedError
from glasses_assistant.deploy.keys import generate, load_signing_key
from glasses_assistant.deploy.push import push
from glasses_assistant.deploy.ssh import SshTarget


def untouched(t: SshTarget, current: str | None) -> None:
    info = t.call("info")
    assert info["current"] == current


def test_unknown_key(device: SshTarget, make_bundle, tmp_path: Path) -> None:
    key, _ = generate(tmp_path / "stranger")
    with pytest.raises(RefusedError, match="does not trust") as ei:
        push(device, make_bundle(1, key=load_signing_key(key)))
    assert ei.value.reason == "unknown-key"
    untouched(device, None)


def test_wrong_signature(device: SshTarget, make_bundle) -> None:
    b = make_bundle(1)
    # Edit the manifest after signing (a bigger counter): the signature no longer matches.
    m = json.loads(b.manifest_bytes)
    m["counter"] = 99
    (b.folder / "manifest.json").write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")
    with pytest.raises(RefusedError, match="bad signature") as ei:
        push(device, load_bundle(b.folder))
    assert ei.value.reason == "bad-signature"
    untouched(device, None)


def test_tampered_file_refused_by_host_and_by_device(device: SshTarget, make_bundle) -> None:
    push(device, make_bundle(1))
    b = make_bundle(2)
    model = next(f for f in b.manifest["files"] if f["kind"] == "unit")  # new in this bundle
    blob = b.blob(model["sha256"])
    data = bytearray(blob.read_bytes())
    data[10] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(RefusedError, match="fails its sha256.*refusing to send"):
        push(device, b)
    # Even if the host did not check, the device re-hashes every file and refuses.
    with pytest.raises(RefusedError, match="fails its sha256 on the device") as ei:
        push(device, b, check_hashes=False)
    assert ei.value.reason == "tampered"
    untouched(device, "a")
    assert model["sha256"] not in os.listdir(Path(device.root) / "store" / "blobs")


def test_downgrade_refused_unless_forced(device: SshTarget, make_bundle) -> None:
    push(device, make_bundle(5))
    with pytest.raises(RefusedError, match="older than the installed.*--force") as ei:
        push(device, make_bundle(4))
    assert ei.value.reason == "downgrade"
    untouched(device, "a")
    r = push(device, make_bundle(4), force=True)
    assert r.installed and r.slot == "b"


def test_bundle_for_another_device(device: SshTarget, make_bundle) -> None:
    with pytest.raises(RefusedError, match="is for 'other-board'") as ei:
        push(device, make_bundle(1, compatible="other-board"))
    assert ei.value.reason == "incompatible"
    untouched(device, None)


def test_refusals_send_no_bundle_bytes(device: SshTarget, make_bundle) -> None:
    """The refusal comes from `check`, before any chunk moves."""
    with pytest.raises(RefusedError):
        push(device, make_bundle(1, compatible="other-board"))
    assert not list((Path(device.root) / "store" / "chunks").iterdir())


def _platform_bundle(tmp_path: Path, signing_key, app_wheel: Path, fake_models, name: str, **kw):  # type: ignore[no-untyped-def]
    from deploy_helpers import COMPATIBLE

    from glasses_assistant.deploy.bundle import BundleFile, build_bundle

    extra = [BundleFile(f"models/fake/{p.name}", "model", p, extra={"model": "fake"}) for p in fake_models]
    return build_bundle(tmp_path / name, signing_key, compatible=COMPATIBLE, counter=5, models=[],
                        app_wheel=app_wheel, extra_files=extra, progress=lambda _m: None, **kw)


def test_bundle_for_another_architecture_is_refused_even_forced(device: SshTarget, tmp_path: Path, signing_key,  # type: ignore[no-untyped-def]
                                                                app_wheel: Path, fake_models) -> None:
    b = _platform_bundle(tmp_path, signing_key, app_wheel, fake_models, "arm", target="linux-aarch64",
                         wheelhouse=False)
    for force in (False, True):
        with pytest.raises(RefusedError, match=r"bundle is for linux-aarch64, this device is linux-x86_64") as ei:
            push(device, b, force=force)
        assert ei.value.reason == "wrong-platform"
    untouched(device, None)
    assert not list((Path(device.root) / "store" / "chunks").iterdir())  # refused before any byte was sent


def test_bundle_needing_a_newer_glibc_than_the_device_is_refused(device: SshTarget, tmp_path: Path, signing_key,  # type: ignore[no-untyped-def]
                                                                 app_wheel: Path, fake_models) -> None:
    # A wheel built against a glibc from the future (2.99): the wheelhouse's floor is read from its tag.
    future = tmp_path / "w" / "fakepkg-1.0-py3-none-manylinux_2_99_x86_64.whl"
    future.parent.mkdir()
    import zipfile

    with zipfile.ZipFile(future, "w") as z:
        z.writestr("fakepkg/__init__.py", "")
    b = _platform_bundle(tmp_path, signing_key, app_wheel, fake_models, "future", target="linux-x86_64",
                         requirements=["tomli==2.0.1"], python_version="3.11", device_wheels=[future])
    assert b.manifest["target"]["glibc"] == "2.99"
    glibc = os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    with pytest.raises(RefusedError, match=rf"bundle needs glibc 2\.99 or newer, this device has glibc {glibc}") as ei:
        push(device, b, force=True)
    assert ei.value.reason == "glibc-too-old"
    untouched(device, None)
