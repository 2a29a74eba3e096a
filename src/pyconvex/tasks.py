"""Stopping background tasks for sure.

    await cancel_and_wait(worker, *running)

Python 3.11's ``asyncio.wait_for``, which libraries use (psycopg-pool waits for a
connection with it), returns normally when a cancellation lands just as what it waits for
completes: the cancelled task never sees its ``CancelledError`` and runs on, and whoever
awaits its end waits for ever. So a task is cancelled again until it has ended.
"""

from __future__ import annotations

import asyncio
from typing import Any

RECANCEL_SECONDS = 1.0


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel the tasks (None is skipped) and return once every one has ended."""
    started = [task for task in tasks if task is not None]
    pending = {task for task in started if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
    # Their outcomes (CancelledError, or an error on the way out) are retrieved, not raised.
    await asyncio.gather(*started, return_exceptions=True)
