"""``ctx.scheduler``: scheduling and cancelling functions from a mutation or an action.

    job_id = await ctx.scheduler.run_after(60, internal.emails.send, {"to": email})
    job_id = await ctx.scheduler.run_at(datetime(2027, 1, 1, tzinfo=UTC), internal.reports.build, {})
    await ctx.scheduler.cancel(job_id)

From a mutation, scheduling and cancelling are part of its transaction (nothing is scheduled
unless it commits); from an action they happen at once. The jobs themselves are kept and run
by the deployment's background layer (:mod:`pyconvex.background.scheduled`), handed to the
executor as a :class:`JobScheduler`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..database import Database, DatabaseWriter


class JobScheduler(Protocol):
    """What ``ctx.scheduler`` needs of the scheduled functions' queue."""

    @property
    def clock(self) -> Callable[[], float]:
        """The deployment's clock (a test's, in ConvexTest)."""

    async def schedule_in(
        self, writer: DatabaseWriter, when: float, ref: Any, args: dict[str, Any] | None
    ) -> str: ...

    async def cancel_in(self, writer: DatabaseWriter, job_id: str) -> None: ...

    def work_added(self, writer: DatabaseWriter) -> None:
        """Wake the background workers once ``writer``'s transaction commits."""


def finite_seconds(value: object, what: str) -> float:
    """``value`` as seconds: :class:`TypeError` naming ``what`` unless a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{what} takes a finite number of seconds, not {value!r}")
    return float(value)


def _when(value: datetime | float | int) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"run_at() takes a datetime or epoch seconds, not {type(value).__name__}")
    if not math.isfinite(value):
        raise TypeError(f"run_at() takes a finite time, not {value!r}")
    return float(value)


class SchedulerApi:
    """``ctx.scheduler``. In a mutation, part of its transaction; in an action, immediate."""

    _sync_facade = True

    def __init__(
        self, scheduler: JobScheduler, database: Database, writer: DatabaseWriter | None
    ) -> None:
        self._scheduler = scheduler
        self._database = database
        self._writer = writer

    async def _in_transaction(self, fn: Callable[[DatabaseWriter], Any]) -> Any:
        if self._writer is not None:
            return await fn(self._writer)
        return await self._database.transact(fn)

    async def run_after(self, seconds: float, ref: Any, args: dict[str, Any] | None = None) -> str:
        """Run ``ref(args)`` ``seconds`` from now; returns the job id.

        await ctx.scheduler.run_after(0, internal.emails.send, {"to": "a@example.com"})
        """
        delay = finite_seconds(seconds, "run_after()")
        when = self._scheduler.clock() + max(delay, 0.0)
        job_id: str = await self._in_transaction(
            lambda w: self._scheduler.schedule_in(w, when, ref, args)
        )
        return job_id

    async def run_at(
        self, when: datetime | float, ref: Any, args: dict[str, Any] | None = None
    ) -> str:
        """Run ``ref(args)`` at ``when`` (a datetime or epoch seconds); returns the job id.

        await ctx.scheduler.run_at(datetime(2027, 1, 1, tzinfo=UTC), internal.reports.build)
        """
        at = _when(when)
        job_id: str = await self._in_transaction(
            lambda w: self._scheduler.schedule_in(w, at, ref, args)
        )
        return job_id

    async def cancel(self, job_id: str) -> None:
        """Cancel a job that has not started (a running or finished job is left alone).

        await ctx.scheduler.cancel(job_id)
        """
        await self._in_transaction(lambda w: self._scheduler.cancel_in(w, job_id))
