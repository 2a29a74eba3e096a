"""cancel_and_wait: a task that swallowed its cancellation is cancelled again until it ends."""

from __future__ import annotations

import asyncio

from pyconvex import tasks
from pyconvex.tasks import cancel_and_wait


async def test_a_task_that_swallowed_its_cancellation_is_stopped_anyway(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tasks, "RECANCEL_SECONDS", 0.05)
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # what Python 3.11's wait_for does when the wait ends as well

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)  # let it start sleeping
    async with asyncio.timeout(10):
        await cancel_and_wait(task, None)
    assert swallowed == 1 and task.cancelled()


async def test_errors_on_the_way_out_are_retrieved_not_raised() -> None:
    async def failing_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("cleanup broke")

    task = asyncio.create_task(failing_on_cancel())
    done = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0)
    await cancel_and_wait(task, done)
    assert isinstance(task.exception(), RuntimeError) and done.done()
