# SPDX-License-Identifier: GPL-3.0-or-later
"""Bundles: keys, manifest, signature, content-addressed models, wheelhouse for another platform."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from glasses_assistant.deploy.agent import parse_public_key
from glasses_assistant.deploy.bundle import build_bundle, load_bundle, verify_bundle
from glasses_assistant.deploy.errors import KeyFileError, RefusedError
from glasses_assistant.deploy.keys import generate, load_public_key, load_signing_key


def test_keygen(tmp_path: Path) -> None:
    key, pub = generate(tmp_path / "k")
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(parse_public_key(pub.read_text())) == 32
    assert load_signing_key(key).public_raw == load_public_key(pub)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        generate(tmp_path / "k")
    with pytest.raises(KeyFileError, match="not an unencrypted PEM"):
        load_signing_key(pub)


def test_manifest_lists_every_file_and_verifies(make_bundle, keys) -> None:  # type: ignore[no-untyped-def]
    b = make_bundle(7, version="2.0.0")
    m = b.manifest
    assert (m["version"], m["counter"], m["compatible"]) == ("2.0.0", 7, "test-board/glasses-v1")
    kinds = sorted(f["kind"] for f in m["files"])
    assert kinds == ["app", "config", "model", "model", "unit"]
    for f in m["files"]:
        assert b.blob(f["sha256"]).stat().st_size == f["size"]
    trusted = {load_signing_key(keys["release"]).key_id: load_public_key(keys["release.pub"])}
    verify_bundle(load_bundle(b.folder), trusted)
    other = {load_signing_key(keys["other"]).key_id: load_public_key(keys["other.pub"])}
    with pytest.raises(RefusedError, match="does not trust"):
        verify_bundle(b, other)


def test_aarch64_wheelhouse_is_built_and_listed(tmp_path: Path, signing_key, app_wheel: Path) -> None:  # type: ignore[no-untyped-def]
    """Wheels for another platform come from the registry (small requirement set to keep it quick)."""
    b = build_bundle(tmp_path / "b", signing_key, target="linux-aarch64", compatible="jetson", counter=1,
                     models=[], app_wheel=app_wheel, requirements=["tomli==2.0.1", "soxr>=0.3"],
                     python_version="3.11", progress=lambda _m: None)
    wheels = [f for f in b.manifest["files"] if f["kind"] == "wheel"]
    names = sorted(Path(f["path"]).name for f in wheels)
    assert any(n.startswith("soxr-") and "aarch64" in n for n in names), names
    assert any(n.startswith("tomli-") and n.endswith("none-any.whl") for n in names), names
    # The glibc floor the wheels need, read from their manylinux tags (soxr: manylinux_2_17 or newer).
    assert b.manifest["target"]["platform"] == "linux-aarch64" and b.manifest["target"]["python"] == "3.11"
    assert b.manifest["target"]["glibc"].startswith("2."), b.manifest["target"]
    assert b.manifest["build_on_device"] == []
    for f in wheels:
        with zipfile.ZipFile(b.blob(f["sha256"])) as z:
            assert z.testzip() is None


def test_real_default_models_are_content_addressed(tmp_path: Path, signing_key, app_wheel: Path) -> None:  # type: ignore[no-untyped-def]
    from glasses_assistant.catalog import ROLES, load_catalogue

    b = build_bundle(tmp_path / "b", signing_key, target="linux-x86_64", compatible="x", counter=1,
                     app_wheel=app_wheel, wheelhouse=False, progress=lambda _m: None)
    cat = load_catalogue()
    models = {m["id"]: m for m in b.manifest["models"]}
    assert set(models) == {cat.default_for(role).id for role in ROLES}
    assert {"silero-vad-v6", "whisper-tiny-en", "qwen2.5-coder-1.5b-q4_k_m", "piper-en-us-joe-medium"} <= set(models)
    assert "installed" in models["silero-vad-v6"]  # ships inside faster-whisper's wheel
    for f in b.manifest["files"]:
        if f["kind"] == "model":
            entry = cat.get(f["model"])
            mf = next(x for x in entry.files if x.name == Path(f["path"]).name)
            assert (mf.sha256, mf.size) == (f["sha256"], f["size"])
            assert b.blob(f["sha256"]).name == mf.sha256
    assert json.loads((b.folder / "manifest.sig").read_text())["alg"] == "ed25519"
