"""Scheduled functions: the rows of ``_scheduled_functions`` and the queue that runs them.

A job is a row with ``name``, ``args``, ``scheduled_time`` and ``completed_time`` (epoch
seconds) and ``state`` (``{"kind": "pending" | "in_progress" | "success" | "failed" |
"canceled", "error": ...}``). ``ctx.scheduler`` (:mod:`pyconvex.functions.scheduling`)
adds and cancels them through :class:`ScheduledQueue`; the worker runs them with the
machinery every background item uses (:mod:`.items`), under Convex's guarantees:

- a scheduled **mutation** runs exactly once: its writes and its job's ``success`` (or
  ``failed``, with its writes undone) commit together;
- a scheduled **action** runs at most once: its job is marked ``in_progress`` and committed
  before it starts, and one whose worker is gone (a crash, a stop) is marked ``failed``,
  never run again. So no job is retried: to retry an action, use a work pool
  (:mod:`pyconvex.workpool`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import ids, values
from ..database.system import SCHEDULED_FUNCTIONS
from ..errors import FunctionNotFoundError, InvalidValueError
from .items import ItemQueue, Outcome, describe_failure

if TYPE_CHECKING:
    from ..database import DatabaseReader, DatabaseWriter
    from ..functions import FunctionDefinition

CUT_OFF = "Transient error while executing action: the server stopped while it was running"


class ScheduledQueue(ItemQueue):
    """Scheduling, cancelling and running the jobs of ``_scheduled_functions``."""

    observes_lag = True

    @property
    def clock(self) -> Callable[[], float]:
        return self.worker.clock

    def work_added(self, writer: DatabaseWriter) -> None:
        self.worker.work_added(writer)

    # -- scheduling ------------------------------------------------------------------------

    def _target(
        self, ref: Any, args: dict[str, Any] | None
    ) -> tuple[FunctionDefinition, dict[str, Any]]:
        fn = self.executor.resolve(ref)
        if fn.kind == "query":
            raise FunctionNotFoundError(
                f"{fn.path} is a query: only mutations and actions can be scheduled"
            )
        args = {} if args is None else args
        if not isinstance(args, dict):
            raise InvalidValueError(
                f"Scheduled arguments must be a dict, not {type(args).__name__}"
            )
        values.check_value(args, what=f"Arguments scheduled for {fn.path}")
        return fn, args

    async def schedule_in(
        self, writer: DatabaseWriter, when: float, ref: Any, args: dict[str, Any] | None
    ) -> str:
        """Add a job to ``writer``'s transaction; its id."""
        fn, args = self._target(ref, args)
        job_id = await writer.system_writer().insert(
            SCHEDULED_FUNCTIONS,
            {
                "name": fn.path,
                "args": args,
                "scheduled_time": float(when),
                "state": {"kind": "pending"},
            },
        )
        self.worker.work_added(writer)
        return job_id

    async def cancel_in(self, writer: DatabaseWriter, job_id: str) -> None:
        """Cancel a job that has not started, in ``writer``'s transaction."""
        if not isinstance(job_id, str) or not ids.is_id_of(job_id, SCHEDULED_FUNCTIONS):
            raise InvalidValueError(
                f"{values.display_value(job_id)} is not a scheduled function id"
            )
        system = writer.system_writer()
        job = await system.get(job_id)
        if job is not None and job["state"]["kind"] == "pending":
            await system.patch(
                job_id, {"state": {"kind": "canceled"}, "completed_time": self.clock()}
            )

    # -- the table, for the machinery ------------------------------------------------------

    def pending(self, reader: DatabaseReader, until: float | None = None) -> Any:
        return _in_state(reader, "pending", until)

    def in_flight(self, reader: DatabaseReader) -> Any:
        return _in_state(reader, "in_progress")

    def due_time(self, row: dict[str, Any]) -> float:
        return float(row["scheduled_time"])

    def function(self, row: dict[str, Any]) -> str:
        return str(row["name"])

    async def arguments(self, row: dict[str, Any]) -> dict[str, Any]:
        return dict(row["args"])

    def label(self, row: dict[str, Any]) -> str:
        return f"Scheduled job {row['_id']} ({row['name']})"

    async def claim(self, system: DatabaseWriter, row: dict[str, Any], worker: str) -> None:
        await system.patch(row["_id"], {"state": {"kind": "in_progress"}, "claimed_by": worker})

    def is_pending(self, row: dict[str, Any]) -> bool:
        return bool(row["state"]["kind"] == "pending")

    def claimed_by(self, row: dict[str, Any], worker: str) -> bool:
        return bool(row["state"]["kind"] == "in_progress" and row.get("claimed_by") == worker)

    async def finish(
        self, system: DatabaseWriter, row: dict[str, Any], outcome: Outcome, *, claimed: bool
    ) -> None:
        state: dict[str, Any] = {"kind": "success"}
        if outcome.error is not None:
            state = {"kind": "failed", "error": describe_failure(outcome.error)}
        await system.patch(row["_id"], {"state": state, "completed_time": self.clock()})

    async def cut_off(self, system: DatabaseWriter, row: dict[str, Any]) -> None:
        await system.patch(
            row["_id"],
            {"state": {"kind": "failed", "error": CUT_OFF}, "completed_time": self.clock()},
        )


def _in_state(reader: DatabaseReader, kind: str, until: float | None = None) -> Any:
    """Jobs in state ``kind``, soonest first (only those due by ``until``, if given)."""

    def bounds(q: Any) -> Any:
        q = q.eq("state.kind", kind)
        return q if until is None else q.lte("scheduled_time", until)

    return reader.query(SCHEDULED_FUNCTIONS).with_index("by_state", bounds)
