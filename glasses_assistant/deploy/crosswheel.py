# SPDX-License-Identifier: GPL-3.0-or-later
"""``device wheel``: llama-cpp-python cross-built for a device, checked, tagged and cached.

llama-cpp-python publishes only an sdist, so without this a device compiles llama.cpp at flash
time (15+ minutes on the board, and it needs the package index). The wheel is ``py3-none``
(ctypes, no CPython ABI), so one aarch64 build serves every Python the targets run (3.10-3.12).

Why each step:

- The cross toolchain is Debian's ``g++-aarch64-linux-gnu``; ggml's native tuning is off when
  cross-compiling, so the CPU level is given explicitly: armv8.2-a with dotprod and fp16, which
  both the Raspberry Pi 5 (Cortex-A76) and the Jetson Orin (Cortex-A78AE) implement.
- scikit-build-core names the wheel after the build machine (``linux_x86_64``); the tag is
  rewritten to ``manylinux_2_<N>_aarch64``, N being the newest glibc symbol version the
  libraries actually need (read from the binaries, not assumed).
- Before a wheel is accepted every shared library in it must be an ELF for the target's
  machine: a build that silently used the host compiler would otherwise ship x86 code.
- The result is cached outside any checkout (``~/.cache/glasses-assistant/wheels``, or
  ``$GLASSES_ASSISTANT_WHEEL_CACHE``) under a key of the version and the build flags, so a
  later session or CI run reuses it; a cached wheel is checked again before it is used.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import DeployError

log = logging.getLogger(__name__)

PACKAGE = "llama-cpp-python"
# ELF e_machine values (System V ABI): what a shared library in a wheel for the target must say.
ELF_MACHINE = {"linux-aarch64": 183, "linux-x86_64": 62}
ELF_MACHINE_NAMES = {183: "aarch64", 62: "x86-64", 3: "i386", 40: "arm", 243: "riscv"}
# target -> (C compiler, C++ compiler, sysroot, -march)
TOOLCHAINS = {
    "linux-aarch64": ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++", "/usr/aarch64-linux-gnu",
                      "armv8.2-a+dotprod+fp16"),
}
CROSS_TARGETS = tuple(TOOLCHAINS)
# The oldest glibc the shipped targets have (Ubuntu 22.04 / JetPack 6). pymicro-wakeword's only
# aarch64 wheel is manylinux_2_35, so nothing older can run the assistant anyway.
GLIBC_FLOOR = (2, 35)
# The newest libstdc++ symbol version (GLIBCXX_3.4.N) each manylinux_2_M baseline ships (auditwheel's
# policies): a library built with GCC 12 (3.4.30) needs a 2.35-era system even if its glibc symbols
# are older, so the tag must say 2.35, not what the glibc symbols alone say.
GLIBCXX_BY_GLIBC = ((17, 19), (24, 22), (28, 25), (31, 28), (34, 29), (35, 30), (38, 32), (39, 33))


def llama_version() -> str:
    """The llama-cpp-python version the assistant pins (the same the host build uses)."""
    from importlib import metadata

    for req in metadata.requires("glasses-assistant") or []:
        m = re.match(r"llama[-_]cpp[-_]python\s*==\s*([0-9][0-9.]*)", req)
        if m:
            return m.group(1)
    raise DeployError("the assistant's metadata pins no llama-cpp-python version")


def cache_dir(env_var: str, name: str) -> Path:
    """``$env_var`` if set, else ``$XDG_CACHE_HOME/glasses-assistant/<name>`` (~/.cache/...)."""
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "glasses-assistant" / name


def cache_root() -> Path:
    return cache_dir("GLASSES_ASSISTANT_WHEEL_CACHE", "wheels")


def cmake_args(target: str) -> list[str]:
    """The CMake flags of a cross build for ``target`` (part of the cache key)."""
    cc, cxx, sysroot, march = _toolchain(target)
    return [
        "-DCMAKE_SYSTEM_NAME=Linux", f"-DCMAKE_SYSTEM_PROCESSOR={target.split('-', 1)[1]}",
        f"-DCMAKE_C_COMPILER={cc}", f"-DCMAKE_CXX_COMPILER={cxx}",
        f"-DCMAKE_FIND_ROOT_PATH={sysroot}", "-DCMAKE_FIND_ROOT_PATH_MODE_PROGRAM=NEVER",
        "-DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY", "-DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY",
        "-DGGML_NATIVE=OFF", f"-DGGML_CPU_ARM_ARCH={march}",
        # ggml's own thread pool instead of OpenMP: one system library fewer the board must have.
        "-DGGML_OPENMP=OFF",
        # No libcurl for the target (models are local files) and no multimodal library: the
        # assistant's vision runs on onnxruntime, and mtmd is a third of the build time.
        "-DLLAMA_CURL=OFF", "-DLLAVA_BUILD=OFF",
    ]


def _toolchain(target: str) -> tuple[str, str, str, str]:
    if target not in TOOLCHAINS:
        raise DeployError(f"no cross build for {target!r} (known: {', '.join(CROSS_TARGETS)})")
    return TOOLCHAINS[target]


def cache_key(version: str, target: str) -> str:
    doc = json.dumps({"package": PACKAGE, "version": version, "target": target, "cmake": cmake_args(target)})
    return hashlib.sha256(doc.encode()).hexdigest()[:12]


def cache_folder(version: str, target: str) -> Path:
    return cache_root() / target / f"{PACKAGE}-{version}-{cache_key(version, target)}"


@dataclass(frozen=True)
class WheelCheck:
    """What the shared libraries of a wheel are."""

    libraries: tuple[str, ...]
    machine: int
    glibc: tuple[int, int]
    glibcxx: str

    @property
    def platform_glibc(self) -> tuple[int, int]:
        """The glibc baseline the wheel needs: its glibc symbols, raised by its libstdc++ symbols."""
        if not self.glibcxx:
            return self.glibc
        n = int(self.glibcxx.rsplit(".", 1)[1])
        minor = next((g for g, cxx in GLIBCXX_BY_GLIBC if cxx >= n), 99)
        return max(self.glibc, (2, minor))

    @property
    def manylinux(self) -> str:
        g = self.platform_glibc
        return f"manylinux_{g[0]}_{g[1]}"


def elf_machine(head: bytes) -> int | None:
    """e_machine of an ELF header, or None when ``head`` is not one."""
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def check_wheel(wheel: Path, target: str) -> WheelCheck:
    """Refuse a wheel whose libraries are not ELF for ``target``, or that lacks libllama.so."""
    want = ELF_MACHINE[target]
    libs: list[str] = []
    glibc = (2, 17)
    glibcxx = ""
    try:
        z = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as err:
        raise DeployError(f"{wheel.name} is not a wheel: {err}") from None
    with z:
        for name in z.namelist():
            base = name.rsplit("/", 1)[-1]
            if not re.search(r"\.so(\.\d+)*$", base):
                continue
            data = z.read(name)
            machine = elf_machine(data[:64])
            if machine is None:
                continue  # a symlink stored as a text file
            if machine != want:
                got = ELF_MACHINE_NAMES.get(machine, f"machine {machine}")
                raise DeployError(f"{wheel.name}: {name} is an {got} binary, not {target.split('-', 1)[1]}; "
                                  "the cross build used the wrong compiler")
            libs.append(name)
            for v in re.findall(rb"GLIBC_2\.(\d+)", data):
                glibc = max(glibc, (2, int(v)))
            for v in re.findall(rb"GLIBCXX_(3\.4\.\d+)", data):
                glibcxx = max(glibcxx, v.decode(), key=lambda s: [int(x) for x in s.split(".")] if s else [])
    if not any(n.rsplit("/", 1)[-1] == "libllama.so" or "/libllama.so" in n for n in libs):
        raise DeployError(f"{wheel.name} has no libllama.so for {target}")
    chk = WheelCheck(tuple(sorted(libs)), want, glibc, glibcxx)
    need = chk.platform_glibc
    if need > GLIBC_FLOOR:
        why = f"glibc {need[0]}.{need[1]}" + (f" (libstdc++ GLIBCXX_{glibcxx})" if need != glibc else "")
        raise DeployError(f"{wheel.name} needs {why}, newer than the targets' floor "
                          f"{GLIBC_FLOOR[0]}.{GLIBC_FLOOR[1]}")
    return chk


def retag(wheel: Path, platform_tag: str, out_dir: Path) -> Path:
    """Copy ``wheel`` into ``out_dir`` with its platform tag (file name, WHEEL, RECORD) rewritten."""
    parts = wheel.name[:-4].split("-")
    name, version, py, abi = parts[0], parts[1], parts[-3], parts[-2]
    dist_info = f"{name}-{version}.dist-info"
    new_tag = f"{py}-{abi}-{platform_tag}"
    out = out_dir / f"{name}-{version}-{new_tag}.whl"
    records: list[list[str]] = []
    with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == f"{dist_info}/RECORD":
                continue
            if info.filename == f"{dist_info}/WHEEL":
                lines = [ln for ln in data.decode().splitlines() if not ln.startswith("Tag:")]
                lines.insert(len(lines) if lines[-1:] != [""] else -1, f"Tag: {new_tag}")
                data = ("\n".join(lines).rstrip("\n") + "\n").encode()
            zout.writestr(info, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append([info.filename, f"sha256={digest}", str(len(data))])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([*records, [f"{dist_info}/RECORD", "", ""]])
        zout.writestr(f"{dist_info}/RECORD", buf.getvalue())
    return out


def cached_wheel(target: str, version: str | None = None) -> Path | None:
    """The cached, re-checked wheel for ``target``, or None when there is none (or it fails)."""
    if target not in TOOLCHAINS:
        return None
    version = version or llama_version()
    folder = cache_folder(version, target)
    for w in sorted(folder.glob("*.whl")):
        try:
            chk = check_wheel(w, target)
        except DeployError as err:
            log.warning("ignoring cached %s: %s", w, err)
            continue
        tag = f"{chk.manylinux}_{target.split('-', 1)[1]}"
        if not w.name.endswith(f"-{tag}.whl"):
            # Cached under an older tagging rule: the binaries are right, only the name is not.
            with tempfile.TemporaryDirectory(prefix="ga-retag-", dir=folder) as tmpd:
                fixed = retag(w, tag, Path(tmpd))
                w.unlink()
                w = fixed.rename(folder / fixed.name)
        return w
    return None


def build_device_wheel(
    target: str, *, version: str | None = None, force: bool = False, jobs: int | None = None,
    sdist: Path | None = None, progress: Callable[[str], None] = print,
) -> Path:
    """Cross-build (or reuse) the llama-cpp-python wheel for ``target``; return the cached wheel."""
    version = version or llama_version()
    cc, cxx, _sysroot, march = _toolchain(target)
    if not force and (hit := cached_wheel(target, version)):
        progress(f"{PACKAGE} {version} for {target}: cached {hit}")
        return hit
    for tool in (cc, cxx):
        if shutil.which(tool) is None:
            raise DeployError(f"{tool} not found: install Debian's g++-{target.split('-', 1)[1]}-linux-gnu "
                              "(make system-deps-cross)")
    folder = cache_folder(version, target)
    folder.mkdir(parents=True, exist_ok=True)
    logfile = folder / "build.log"
    env = dict(os.environ, CMAKE_ARGS=" ".join(cmake_args(target)),
               CMAKE_BUILD_PARALLEL_LEVEL=str(jobs or os.cpu_count() or 1))
    source = str(sdist) if sdist else f"{PACKAGE}=={version}"
    progress(f"cross-building {PACKAGE} {version} for {target} ({march}); log: {logfile}")
    progress("  this compiles llama.cpp: 15-25 minutes on two cores; the result is cached")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ga-wheel-") as tmpd:
        raw = Path(tmpd) / "raw"
        cmd = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-binary", PACKAGE,
               "--no-cache-dir", "-w", str(raw), source]
        last_shown = 0.0
        with logfile.open("w") as lf:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                lf.write(line)
                step = re.search(r"\[(\d+)/(\d+)\]", line)
                if step and time.monotonic() - last_shown > 20:
                    last_shown = time.monotonic()
                    progress(f"  compiling {step.group(1)}/{step.group(2)} "
                             f"({time.monotonic() - t0:.0f} s)")
            rc = proc.wait()
        built = sorted(raw.glob("*.whl"))
        if rc or not built:
            tail = logfile.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise DeployError(f"the cross build failed (exit {rc}): {tail[0]} (full log: {logfile})")
        chk = check_wheel(built[0], target)
        arch = target.split("-", 1)[1]
        for old in folder.glob("*.whl"):
            old.unlink()
        wheel = retag(built[0], f"{chk.manylinux}_{arch}", folder)
    check_wheel(wheel, target)
    minutes = (time.monotonic() - t0) / 60
    (folder / "build.json").write_text(json.dumps({
        "package": PACKAGE, "version": version, "target": target, "cmake_args": cmake_args(target),
        "wheel": wheel.name, "size": wheel.stat().st_size, "build_minutes": round(minutes, 1),
        "glibc": ".".join(map(str, chk.glibc)), "glibcxx": chk.glibcxx, "libraries": list(chk.libraries),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, indent=1) + "\n")
    progress(f"built {wheel} ({wheel.stat().st_size / 1e6:.1f} MB, {chk.manylinux}) in {minutes:.1f} min")
    return wheel
