# SPDX-License-Identifier: GPL-3.0-or-later
"""The systemd service entry point of an installed slot (``ExecStart`` of the generated unit).

Runs ``glasses-assistant run`` on the live microphone (or on the glasses when ``bridge_url``
is set in ``device.json``) with the slot's config and model folder, and talks to systemd
over ``$NOTIFY_SOCKET`` (stdlib only):

* ``READY=1`` only once every model is loaded and warmed (:func:`glasses_assistant.lifecycle.ready`),
  so ``systemctl start`` returns when the first question gets a full-speed answer, and
  ``TimeoutStartSec`` bounds the load;
* ``WATCHDOG=1`` from the voice loop's own progress: the pinger thread sends a ping only
  when the loop took a microphone chunk since the last one (:func:`glasses_assistant.lifecycle.beat`).
  A free-running pinger would keep a wedged loop looking alive; this one goes quiet and
  systemd restarts the service, and the boot step (``agent.py boot``) then picks the slot
  that verifies. While the models load (before READY) it pings unconditionally: that phase
  is bounded by ``TimeoutStartSec`` instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import lifecycle

log = logging.getLogger(__name__)


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


class Watchdog:
    """Pings systemd every ``interval`` seconds while the voice loop makes progress."""

    def __init__(self, interval: float, send: Callable[[str], None] = notify,
                 progress: Callable[[], tuple[float, int]] = lifecycle.last_beat) -> None:
        self.interval = interval
        self.send = send
        self.progress = progress
        self.ready = threading.Event()
        self.stop = threading.Event()
        self._seen = -1
        self._stalled = False

    def tick(self) -> bool:
        """One decision: ping or not (True: pinged). Separate from the thread for the tests."""
        _, beats = self.progress()
        if not self.ready.is_set() or beats != self._seen:
            self._seen = beats
            if self._stalled:
                log.warning("voice loop moving again; watchdog pings resume")
                self._stalled = False
            self.send("WATCHDOG=1")
            return True
        if not self._stalled:
            log.error("voice loop made no progress for %.0f s; no watchdog ping (systemd restarts it)",
                      self.interval)
            self._stalled = True
        return False

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.tick()

    def mark_ready(self) -> None:
        self._seen = self.progress()[1]
        self.ready.set()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m glasses_assistant.deploy.service")
    p.add_argument("--root", type=Path, required=True, help="device root (holds current/ and device.json)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info",
                   help="log threshold (default info: the journal shows loading and each turn)")
    p.add_argument("--logs", type=Path, help="where the last reply and the turn traces go (default "
                   "$LOGS_DIRECTORY from the unit's LogsDirectory=, else ROOT/logs)")
    args = p.parse_args(argv)
    slot = (args.root / "current").resolve()
    logs = args.logs or Path(os.environ.get("LOGS_DIRECTORY", "").split(":")[0] or args.root / "logs")
    try:
        device = json.loads((args.root / "device.json").read_text())
    except (OSError, ValueError) as err:
        print(f"glasses-assistant service: cannot read {args.root}/device.json: {err}", file=sys.stderr)
        return 2
    usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
    dog = Watchdog(usec / 3e6) if usec else None
    if dog is not None:
        threading.Thread(target=dog.run, daemon=True, name="sd-watchdog").start()

    def ready() -> None:
        if dog is not None:
            dog.mark_ready()
        notify(f"READY=1\nSTATUS=listening (slot {slot.name}, models loaded and warmed)")

    lifecycle.on_ready(ready)
    notify("STATUS=loading and warming the models")
    run = ["run", "--config", str(slot / "files" / "config" / "config.toml"), "--models-dir", str(slot / "models"),
           "--out", str(logs / "last-reply.wav"), "--trace", str(logs / "turns.jsonl"),
           "--log-level", args.log_level]
    run += ["--device", str(device["bridge_url"])] if device.get("bridge_url") else ["--mic"]
    from ..cli import main as cli_main

    t0 = time.monotonic()
    rc = cli_main(run)
    log.info("voice loop ended after %.0f s (exit %d)", time.monotonic() - t0, rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
