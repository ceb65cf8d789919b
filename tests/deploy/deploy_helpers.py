# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers shared by the deploy tests (a module of its own: ``conftest`` names clash across folders)."""

from __future__ import annotations

import socket
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from glasses_assistant.deploy.ssh import SshTarget

SSHD = Path("/usr/sbin/sshd")
COMPATIBLE = "test-board/glasses-v1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SshServer:
    port: int
    options: list[str]
    user: str

    def target(self, root: Path, **kw: object) -> SshTarget:
        return SshTarget(host="127.0.0.1", user=self.user, port=self.port, root=str(root), options=list(self.options),
                         agent_python=sys.executable, **kw)  # type: ignore[arg-type]

    def url(self, root: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{root}"


def patched_wheel(src: Path, dst_dir: Path, changes: dict[str, str]) -> Path:
    """A copy of ``src`` with some files replaced or added (a new app build)."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / src.name
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zo:
        for item in zi.infolist():
            if item.filename not in changes:
                zo.writestr(item, zi.read(item.filename))
        for name, text in changes.items():
            zo.writestr(zipfile.ZipInfo(name, (2020, 2, 2, 0, 0, 0)), text)
    return dst


