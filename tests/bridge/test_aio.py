# SPDX-License-Identifier: GPL-3.0-or-later
"""cancel_and_wait: a close() ends its tasks even when a cancellation is swallowed, and never hangs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

import pytest

from firmware_bridge.aio import cancel_and_wait


def test_a_swallowed_cancellation_is_repeated_until_the_task_ends() -> None:
    async def main() -> tuple[bool, bool, int]:
        swallowed = 0

        async def stubborn() -> None:
            nonlocal swallowed
            while True:
                try:
                    await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    if swallowed >= 2:
                        raise
                    swallowed += 1  # what wait_for does on 3.10/3.11 when its awaitable just finished

        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0.01)
        ended = await cancel_and_wait(task, timeout=3.0)
        return ended, task.cancelled(), swallowed

    assert asyncio.run(main()) == (True, True, 2)


def test_a_task_that_never_stops_costs_the_bound_not_a_hang(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[bool, float]:
        release = asyncio.Event()

        async def deaf() -> None:
            while not release.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0.02)

        task = asyncio.create_task(deaf(), name="deaf-task")
        await asyncio.sleep(0.01)  # running: a task cancelled before it starts never runs at all
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        ended = await cancel_and_wait(task, timeout=0.6)
        took = loop.time() - t0
        release.set()  # the test's own clean-up
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return ended, took

    with caplog.at_level(logging.WARNING, logger="firmware_bridge.aio"):
        ended, took = asyncio.run(main())
    assert not ended
    assert 0.5 <= took < 2.0
    assert "deaf-task" in caplog.text and "did not stop" in caplog.text


def test_what_the_tasks_raised_is_taken_and_dropped() -> None:
    async def main() -> bool:
        async def fails() -> None:
            raise RuntimeError("boom")

        task = asyncio.create_task(fails())
        await asyncio.sleep(0)
        return await cancel_and_wait(task, None, timeout=1.0)

    assert asyncio.run(main()) is True


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="asyncio.wait_for keeps such cancellations from 3.12 on")
def test_why_a_single_cancel_is_not_enough_on_this_python() -> None:
    """A ping loop cancelled in the loop step where its awaitable finished runs on: wait_for returned."""
    async def main() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        inner: asyncio.Future[int] = loop.create_future()

        async def ping_loop() -> None:
            nonlocal inner
            while True:  # a link's ping loop: a result or a timeout, and ping again
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(inner, 10)
                inner = loop.create_future()
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ping_loop())
        await asyncio.sleep(0)  # the task waits in wait_for
        inner.set_result(1)
        task.cancel()  # the same step: wait_for returns the result and drops the cancellation
        done, _ = await asyncio.wait({task}, timeout=0.3)
        once_enough = bool(done)
        ended = await cancel_and_wait(task, timeout=3.0)
        return once_enough, ended

    assert asyncio.run(main()) == (False, True)
