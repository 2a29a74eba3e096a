"""Time limits for many concurrent calls, kept by one sweeping task instead of a timer each.

    limit = deadlines.begin(1.0)          # in the task whose work is limited
    try:
        result = await work()
    except asyncio.CancelledError:
        if deadlines.end(limit):          # the limit ran out: this cancellation is ours
            asyncio.current_task().uncancel()
            raise FunctionTimeoutError(...) from None
        raise
    deadlines.end(limit)

``asyncio.timeout`` arms a loop timer per call (under uvloop a libuv timer, several µs
to arm and disarm); here a call costs a set insertion and removal, and one task looks
at the calls in flight every so often (a twentieth of the shortest limit, at least every
5 ms) and cancels the overdue ones. A limit is kept to within that tick; Convex's are
not exact either. The sweeper runs only while calls are in flight.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

_TICK_MIN = 0.005


class Limit:
    """One call's deadline."""

    __slots__ = ("deadline", "expired", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.expired = False


class Deadlines:
    """The calls in flight and their deadlines, per event loop."""

    def __init__(self) -> None:
        self._tick = 1.0
        # loop -> (calls in flight, the sweeper while it runs)
        self._loops: dict[asyncio.AbstractEventLoop, tuple[set[Limit], list[Any]]] = {}

    def begin(self, seconds: float) -> Limit:
        """Start limiting the current task to ``seconds`` from now."""
        task = asyncio.current_task()
        assert task is not None, "deadlines need a running task"
        limit = Limit(task, time.monotonic() + seconds)
        loop = task.get_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = (set(), [None])
        live, sweeper = state
        live.add(limit)
        tick = seconds / 20
        if tick < self._tick:
            self._tick = max(tick, _TICK_MIN)
        if sweeper[0] is None:
            sweeper[0] = loop.create_task(self._sweep(loop, live, sweeper))
        return limit

    def end(self, limit: Limit) -> bool:
        """Stop limiting; whether the limit ran out (and the task was cancelled for it)."""
        state = self._loops.get(limit.task.get_loop())
        if state is not None:
            state[0].discard(limit)
        return limit.expired

    async def _sweep(
        self, loop: asyncio.AbstractEventLoop, live: set[Limit], sweeper: list[Any]
    ) -> None:
        try:
            while live:
                await asyncio.sleep(self._tick)
                now = time.monotonic()
                for limit in [limit for limit in live if limit.deadline <= now]:
                    live.discard(limit)
                    limit.expired = True
                    limit.task.cancel()
        finally:
            sweeper[0] = None
            if not live:
                self._loops.pop(loop, None)  # a loop that is done with us is forgotten
