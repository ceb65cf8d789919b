# SPDX-License-Identifier: GPL-3.0-or-later
"""The cross-built wheel's gate: ELF machine, glibc floor, platform tag; and the per-target locks.

Fast: the wheels here are small zips around real ELF files (this machine's own x86-64
libllama.so, and an aarch64 header); the real cross build is ``make device-wheel-aarch64``
and is installed and run under emulation by ``make test-aarch64``.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from glasses_assistant.deploy import crosswheel, locks
from glasses_assistant.deploy.bundle import build_bundle, glibc_floor
from glasses_assistant.deploy.crosswheel import check_wheel, elf_machine, retag
from glasses_assistant.deploy.errors import DeployError

DIST = "llama_cpp_python-0.3.36.dist-info"


def _elf(machine: int, extra: bytes = b"") -> bytes:
    head = bytearray(64)
    head[:6] = b"\x7fELF\x02\x01"  # 64-bit, little endian
    head[18:20] = machine.to_bytes(2, "little")
    return bytes(head) + extra


def _wheel(path: Path, libs: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("llama_cpp/__init__.py", "")
        for name, data in libs.items():
            z.writestr(f"llama_cpp/lib/{name}", data)
        z.writestr(f"{DIST}/WHEEL", "Wheel-Version: 1.0\nGenerator: scikit-build-core\nRoot-Is-Purelib: false\n"
                                    "Tag: py3-none-linux_x86_64\n")
        z.writestr(f"{DIST}/METADATA", "Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: 0.3.36\n")
        z.writestr(f"{DIST}/RECORD", "")
    return path


def test_an_x86_libllama_in_an_aarch64_wheel_is_caught(tmp_path: Path) -> None:
    import llama_cpp

    real = Path(llama_cpp.__file__).parent / "lib" / "libllama.so"  # this machine's own build: x86-64
    w = _wheel(tmp_path / "llama_cpp_python-0.3.36-py3-none-manylinux_2_17_aarch64.whl",
               {"libllama.so": real.read_bytes()})
    assert check_wheel(w, "linux-x86_64").machine == 62
    with pytest.raises(DeployError, match=r"libllama\.so is an x86-64 binary, not aarch64"):
        check_wheel(w, "linux-aarch64")


def test_glibc_need_is_read_from_the_binaries(tmp_path: Path) -> None:
    ok = _wheel(tmp_path / "ok.whl", {"libllama.so": _elf(183, b"\0GLIBC_2.17\0GLIBC_2.34\0GLIBCXX_3.4.30\0"),
                                      "libggml.so": _elf(183, b"\0GLIBC_2.29\0")})
    c = check_wheel(ok, "linux-aarch64")
    # glibc symbols say 2.34, but GLIBCXX_3.4.30 (GCC 12's libstdc++) first shipped in the 2.35 baseline.
    assert (c.glibc, c.glibcxx, c.manylinux) == ((2, 34), "3.4.30", "manylinux_2_35")
    old_cxx = _wheel(tmp_path / "old.whl", {"libllama.so": _elf(183, b"\0GLIBC_2.17\0GLIBCXX_3.4.19\0")})
    assert check_wheel(old_cxx, "linux-aarch64").manylinux == "manylinux_2_17"
    new = _wheel(tmp_path / "new.whl", {"libllama.so": _elf(183, b"\0GLIBC_2.38\0")})
    with pytest.raises(DeployError, match=r"needs glibc 2\.38, newer than the targets' floor 2\.35"):
        check_wheel(new, "linux-aarch64")
    with pytest.raises(DeployError, match="has no libllama.so"):
        check_wheel(_wheel(tmp_path / "none.whl", {"libggml.so": _elf(183)}), "linux-aarch64")
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(DeployError, match="is not a wheel"):
        check_wheel(tmp_path / "junk.whl", "linux-aarch64")
    assert elf_machine(b"#!/bin/sh\n" + bytes(30)) is None


def test_retag_rewrites_name_wheel_and_record(tmp_path: Path) -> None:
    src = _wheel(tmp_path / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl",
                 {"libllama.so": _elf(183, b"\0GLIBC_2.17\0")})
    (tmp_path / "out").mkdir()
    w = retag(src, "manylinux_2_17_aarch64", tmp_path / "out")
    assert w.name == "llama_cpp_python-0.3.36-py3-none-manylinux_2_17_aarch64.whl"
    with zipfile.ZipFile(w) as z:
        tags = [ln for ln in z.read(f"{DIST}/WHEEL").decode().splitlines() if ln.startswith("Tag:")]
        assert tags == ["Tag: py3-none-manylinux_2_17_aarch64"]
        rows = list(csv.reader(io.StringIO(z.read(f"{DIST}/RECORD").decode())))
        for name, digest, size in rows:
            if name.endswith("RECORD"):
                continue
            data = z.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, int(size)) == (f"sha256={want}", len(data)), name
    assert {r[0] for r in rows} == set(zipfile.ZipFile(w).namelist())


def test_cache_key_follows_the_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GLASSES_ASSISTANT_WHEEL_CACHE", str(tmp_path))
    a = crosswheel.cache_folder("0.3.36", "linux-aarch64")
    assert a.parent == tmp_path / "linux-aarch64" and crosswheel.cache_folder("0.3.37", "linux-aarch64") != a
    assert "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" in crosswheel.cmake_args("linux-aarch64")
    assert crosswheel.cached_wheel("linux-aarch64", "0.3.36") is None
    with pytest.raises(DeployError, match="no cross build for 'linux-riscv64'"):
        crosswheel.cmake_args("linux-riscv64")


def test_bundle_refuses_a_wrong_architecture_device_wheel(tmp_path: Path, signing_key, app_wheel: Path) -> None:  # type: ignore[no-untyped-def]
    bad = _wheel(tmp_path / "llama_cpp_python-0.3.36-py3-none-manylinux_2_17_aarch64.whl",
                 {"libllama.so": _elf(62)})
    with pytest.raises(DeployError, match="x86-64 binary, not aarch64"):
        build_bundle(tmp_path / "b", signing_key, target="linux-aarch64", compatible="jetson", counter=1,
                     models=[], app_wheel=app_wheel, device_wheels=[bad], wheelhouse=False, progress=lambda _m: None)


def test_glibc_floor_of_a_wheelhouse() -> None:
    names = ["numpy-2.2.6-cp310-cp310-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
             "pymicro_wakeword-2.5.0-cp310-cp310-manylinux_2_35_aarch64.whl", "tomli-2.0.1-py3-none-any.whl"]
    assert glibc_floor(Path(n) for n in names) == "2.35"
    assert glibc_floor([Path("tomli-2.0.1-py3-none-any.whl")]) is None


def test_committed_locks_match_the_app_requirements() -> None:
    """What ships is what was locked: every lock pins every requirement of this very app."""
    from importlib import metadata

    reqs = [r for r in metadata.requires("glasses-assistant") or [] if "extra ==" not in r]
    for t in locks.LOCK_TARGETS:
        lk = locks.read_lock(t)
        locks.check_fresh(lk, reqs)
        assert lk.built_here() == ["llama-cpp-python==" + crosswheel.llama_version()], t.name
    jetpack = locks.read_lock(locks.lock_for("linux-aarch64", "3.10"))  # type: ignore[arg-type]
    assert jetpack.pins["pymicro-wakeword"] == locks.read_lock(locks.LOCK_TARGETS[1]).pins["pymicro-wakeword"]


def test_python_3_11_locks_ship_the_versions_ci_tested() -> None:
    tested_file = locks.constraints_file()
    assert tested_file is not None
    tested = {}
    for line in tested_file.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            tested[locks.name_of(name)] = version.strip()
    for t in locks.LOCK_TARGETS:
        if t.python == locks.TESTED_PYTHON:
            pins = locks.read_lock(t).pins
            differ = {n: (v, tested[n]) for n, v in pins.items() if n in tested and tested[n] != v}
            assert not differ, (t.name, differ)


def test_a_stale_or_broken_lock_is_refused(tmp_path: Path) -> None:
    t = locks.LOCK_TARGETS[1]
    lk = locks.read_lock(t)
    with pytest.raises(DeployError, match="lock is stale"):
        locks.check_fresh(lk, ["numpy>=1.0", "something-new==1.0"])
    (tmp_path / "l.txt").write_text("# requirements-digest: 0123456789abcdef\nnumpy>=1\n")
    with pytest.raises(DeployError, match=r"l\.txt:2: not a pin"):
        locks.read_lock(t, tmp_path / "l.txt")
    (tmp_path / "n.txt").write_text("numpy==1.0\n")
    with pytest.raises(DeployError, match="no '# requirements-digest:' line"):
        locks.read_lock(t, tmp_path / "n.txt")


def test_cli_check_refuses_an_x86_wheel_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from glasses_assistant.cli import main

    bad = _wheel(tmp_path / "llama_cpp_python-0.3.36-py3-none-manylinux_2_17_aarch64.whl", {"libllama.so": _elf(62)})
    assert main(["device", "wheel", "--target", "linux-aarch64", "--check", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x86-64 binary, not aarch64" in err[0], err
    good = _wheel(tmp_path / "g.whl", {"libllama.so": _elf(183, b"\0GLIBC_2.17\0")})
    assert main(["device", "wheel", "--check", str(good)]) == 0
    assert "needs glibc 2.17" in capsys.readouterr().out
