# SPDX-License-Identifier: GPL-3.0-or-later
"""The systemd service entry point of an installed slot (``ExecStart`` of the generated unit).

Runs ``glasses-assistant run`` on the live microphone (or on the glasses when ``bridge_url``
is set in ``device.json``) with the slot's config and model folder, and talks to systemd
over ``$NOTIFY_SOCKET`` (stdlib only): READY=1 once started, WATCHDOG=1 every third of
``WatchdogSec``. The pings come from a thread that needs the GIL, so an interpreter wedged
in native code holding it stops pinging and systemd restarts the service; the boot step
(``agent.py boot``) then picks the slot that verifies.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
from pathlib import Path


def notify(message: str) -> None:
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (no-op outside systemd)."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract namespace socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(message.encode())


def _watchdog(interval: float) -> None:
    while True:
        notify("WATCHDOG=1")
        threading.Event().wait(interval)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m glasses_assistant.deploy.service")
    p.add_argument("--root", type=Path, required=True, help="device root (holds current/ and device.json)")
    args = p.parse_args(argv)
    slot = (args.root / "current").resolve()
    device = json.loads((args.root / "device.json").read_text())
    usec = int(os.environ.get("WATCHDOG_USEC", "0"))
    if usec:
        threading.Thread(target=_watchdog, args=(usec / 3e6,), daemon=True, name="sd-watchdog").start()
    run = ["run", "--config", str(slot / "files" / "config" / "config.toml"), "--models-dir", str(slot / "models"),
           "--out", str(args.root / "logs" / "last-reply.wav"), "--trace", str(args.root / "logs" / "turns.jsonl")]
    run += ["--device", str(device["bridge_url"])] if device.get("bridge_url") else ["--mic"]
    notify("READY=1")
    from ..cli import main as cli_main

    return cli_main(run)


if __name__ == "__main__":
    sys.exit(main())
