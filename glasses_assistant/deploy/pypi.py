# SPDX-License-Identifier: GPL-3.0-or-later
"""What bundles and locks both ask of the package registry: platform tags, sdist metadata, the source tree.

A module of its own so that ``bundle`` (which reads locks) and ``locks`` (which resolves with
the same tags) share it without importing each other.
"""

from __future__ import annotations

import email.parser
import logging
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from .errors import DeployError

log = logging.getLogger(__name__)

# Jetson (JetPack 6, Ubuntu 22.04) and Raspberry Pi OS 12 have glibc 2.35 / 2.36: wheels up to
# manylinux_2_35 run there.
MAX_GLIBC_MINOR = 35


def pip_platforms(target: str) -> list[str]:
    arch = target.split("-", 1)[1]
    tags = [f"manylinux_2_{m}_{arch}" for m in range(MAX_GLIBC_MINOR, 16, -1)]
    return [*tags, f"manylinux2014_{arch}", f"linux_{arch}"]


def project_root() -> Path | None:
    """The source tree of the running assistant (an editable or repository checkout), if any."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() else None


def sdist_requirements(req: str, tmp: Path) -> list[str]:
    """The runtime requirements declared in a package's sdist (PKG-INFO), fetched without building."""
    tmp.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary=:all:",
                        "-d", str(tmp), req], capture_output=True, text=True, check=False)
    for sd in sorted(tmp.glob("*.tar.gz")):
        if req_name(sd.name.rsplit("-", 1)[0]) != req_name(req):
            continue
        with tarfile.open(sd) as t:
            info = next((m for m in t.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")), None)
            if info is None:
                return []
            f = t.extractfile(info)
            msg = email.parser.Parser().parsestr(f.read().decode() if f else "")
        return [q for q in msg.get_all("Requires-Dist") or [] if "extra ==" not in q]
    if r.returncode:
        raise DeployError(f"cannot fetch the sdist of {req} to read its requirements")
    return []


def req_name(req: str) -> str:
    """The normalised project name of a requirement string."""
    return re.split(r"[\s;<>=!~\[(]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")
