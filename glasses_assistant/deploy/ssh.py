# SPDX-License-Identifier: GPL-3.0-or-later
"""The OpenSSH client as the transport to a device, and the agent's verbs over it.

Why the system ``ssh`` binary (subprocess) rather than paramiko/asyncssh: it is what a
developer already uses to reach the board, so their ``~/.ssh/config``, agent, jump hosts and
``known_hosts`` just work; host keys are checked by the same code as every other login; and
it adds no Python dependency. Every call is ``ssh HOST 'PYTHON ROOT/agent.py VERB --root ROOT'``
with a JSON request on stdin and one JSON line back (binary chunk streams for ``receive``).
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from .agent import MANIFEST_CODES
from .bundle import DEFAULT_DEVICE_ROOT
from .errors import DeployError, HealthCheckError, RefusedError, TransferError

REFUSALS = {"bad-signature", "unknown-key", "tampered", "downgrade", "incompatible", "previous-bad", "no-previous",
            "wrong-platform", "glibc-too-old", "wrong-python",
            *MANIFEST_CODES}
# Keep-alives so a cut link is noticed in ~15 s instead of hanging on TCP timeouts.
BASE_OPTIONS = ("-o", "BatchMode=yes", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                "-o", "ConnectTimeout=10")


def agent_source() -> bytes:
    """The device agent, exactly as it ships in this package."""
    return Path(__file__).with_name("agent.py").read_bytes()


@dataclass
class SshTarget:
    """``ssh://[user@]host[:port][/device/root]`` plus client options."""

    host: str
    user: str | None = None
    port: int | None = None
    root: str = DEFAULT_DEVICE_ROOT
    options: list[str] = field(default_factory=list)
    agent_python: str = "python3"
    crash_at: str = ""  # fault injection, passed to the agent (tests only)

    @classmethod
    def parse(cls, url: str, **kw: Any) -> SshTarget:
        u = urlparse(url)
        if u.scheme != "ssh" or not u.hostname:
            raise DeployError(f"device address must be ssh://[user@]host[:port][/root], not {url!r}")
        try:
            port = u.port
        except ValueError:
            raise DeployError(f"bad port in {url!r}") from None
        root = u.path if u.path not in ("", "/") else DEFAULT_DEVICE_ROOT
        return cls(host=u.hostname, user=u.username, port=port, root=root.rstrip("/") or "/", **kw)

    @property
    def url(self) -> str:
        who = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{who}{self.host}{port}{self.root}"

    def argv(self, remote: str) -> list[str]:
        cmd = ["ssh", *BASE_OPTIONS, *self.options]
        if self.port:
            cmd += ["-p", str(self.port)]
        cmd += [f"{self.user}@{self.host}" if self.user else self.host, "--", remote]
        return cmd

    def agent_cmd(self, verb: str) -> str:
        root = shlex.quote(self.root)
        cmd = f"{shlex.quote(self.agent_python)} {root}/agent.py {verb} --root {root}"
        if self.crash_at:
            cmd += f" --crash-at {shlex.quote(self.crash_at)}"
        return cmd

    # -- calls ---------------------------------------------------------------------
    def call(self, verb: str, request: dict[str, Any] | None = None, *, timeout: float = 600) -> dict[str, Any]:
        """Run one agent verb; return its JSON result or raise the matching one-line error."""
        data = json.dumps(request or {}).encode()
        return self._run(self.agent_cmd(verb), data, timeout=timeout)

    def install_agent(self) -> dict[str, Any]:
        """Copy the agent to the device (rename into place: a cut copy never replaces a good one) and ``info``."""
        root = shlex.quote(self.root)
        remote = (f"mkdir -p {root} && cat > {root}/.agent.py.tmp && mv {root}/.agent.py.tmp {root}/agent.py"
                  f" && {self.agent_cmd('info')}")
        return self._run(remote, agent_source(), timeout=60, allow_uninitialised=True)

    def open_stream(self, verb: str) -> subprocess.Popen[bytes]:
        """Start a verb that reads a binary stream on stdin (``receive``)."""
        return subprocess.Popen(self.argv(self.agent_cmd(verb)), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def _run(self, remote: str, data: bytes, *, timeout: float, allow_uninitialised: bool = False) -> dict[str, Any]:
        try:
            r = subprocess.run(self.argv(remote), input=data, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise TransferError(f"{self.url}: no answer within {timeout:g} s") from None
        except FileNotFoundError:
            raise DeployError("the OpenSSH client (ssh) is not installed: apt-get install openssh-client") from None
        result = parse_reply(r.stdout, r.stderr, r.returncode, self.url)
        if not result.get("ok") and not (allow_uninitialised and result.get("code") == "not-initialised"):
            raise error_for(result, self.url)
        return result


def parse_reply(stdout: bytes, stderr: bytes, rc: int, url: str) -> dict[str, Any]:
    lines = stdout.decode(errors="replace").strip().splitlines()
    if lines:
        try:
            out = json.loads(lines[-1])
            if isinstance(out, dict):
                return out
        except ValueError:
            pass
    err = stderr.decode(errors="replace").strip().splitlines()
    last = err[-1] if err else f"exit status {rc}"
    if rc == 255:
        raise TransferError(f"ssh to {url} failed: {last}")
    if "No module named 'cryptography'" in stderr.decode(errors="replace"):
        raise DeployError(f"{url}: the device's python3 lacks cryptography (apt-get install python3-cryptography)")
    raise TransferError(f"{url}: the agent gave no answer ({last})")


def error_for(result: dict[str, Any], url: str) -> DeployError:
    code = str(result.get("code", "error"))
    msg = f"{url}: {result.get('error', 'failed')}"
    if code in REFUSALS:
        return RefusedError(msg, code)
    if code == "health-failed":
        return HealthCheckError(msg)
    if code == "cut":
        return TransferError(msg)
    return DeployError(msg)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_all(pipe: IO[bytes], data: bytes) -> None:
    pipe.write(data)
