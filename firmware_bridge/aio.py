# SPDX-License-Identifier: GPL-3.0-or-later
"""Stopping background tasks so that a close() always returns.

Python 3.10 and 3.11's ``asyncio.wait_for`` swallows a cancellation that arrives in the same loop
step as the result of what it waits for (it returns the result instead; fixed in 3.12, where it
is built on ``asyncio.timeout``). A loop inside such a task then carries on, and the usual
``task.cancel(); await task`` waits for it for ever: a link's ping loop did that on close, and the
whole run hung with nothing in the log. :func:`cancel_and_wait` cancels again until the task ends,
and gives up (with a warning) after a bound, so that closing can never hang.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

RECANCEL_S = 0.2
"""How long a cancelled task gets before it is cancelled once more."""


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None, timeout: float = 5.0) -> bool:
    """Cancel ``tasks`` and wait until all have ended, at most ``timeout`` s; True when they have.

    What they raised (their cancellation included) is taken and dropped: a closing owner has no use
    for it. A caller that is itself cancelled meanwhile gets its CancelledError as usual.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {t for t in tasks if t is not None and not t.done()}
    while pending:
        left = deadline - loop.time()
        if left <= 0:
            log.warning("%d task(s) did not stop within %.1f s of being cancelled: %s", len(pending), timeout,
                        ", ".join(sorted(_name(t) for t in pending)))
            break
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_S, left))
    for task in tasks:
        if task is not None and task.done() and not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at garbage collection
    return not pending


def _name(task: asyncio.Future[Any]) -> str:
    get_name = getattr(task, "get_name", None)
    return str(get_name()) if get_name is not None else repr(task)
