# SPDX-License-Identifier: GPL-3.0-or-later
"""Process-wide liveness signals of the voice loop, for a supervisor (the systemd service).

Two facts a supervisor needs and only the loop itself knows: *ready* (every model is
loaded and warmed, the first question will be answered at full speed) and *progress* (the
loop took another microphone chunk). :mod:`glasses_assistant.deploy.service` turns them
into ``READY=1`` and into watchdog pings that stop when the loop stops, so a wedged loop is
restarted instead of looking alive. Nothing here imports the rest of the package: any room
may signal without a cycle, and without a subscriber a signal costs one attribute write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_ready_hooks: list[Callable[[], None]] = []
_lock = threading.Lock()
_last_beat = 0.0
_beats = 0


def on_ready(hook: Callable[[], None]) -> None:
    """Call ``hook`` (once per :func:`ready`) when the models are loaded and warmed."""
    with _lock:
        _ready_hooks.append(hook)


def clear() -> None:
    """Forget every hook (tests; a process that stops supervising)."""
    with _lock:
        _ready_hooks.clear()


def ready() -> None:
    """The assistant is loaded, warmed and about to listen."""
    with _lock:
        hooks = list(_ready_hooks)
    for hook in hooks:
        try:
            hook()
        except Exception:  # a supervisor's failure must not stop the assistant
            log.exception("a ready hook failed")


def beat() -> None:
    """The voice loop made progress (called once per microphone chunk)."""
    global _last_beat, _beats
    _last_beat = time.monotonic()
    _beats += 1


def last_beat() -> tuple[float, int]:
    """(monotonic time of the last beat, 0.0 before any; number of beats so far)."""
    return _last_beat, _beats
