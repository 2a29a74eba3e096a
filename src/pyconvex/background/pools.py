"""Work pools: the rows of ``_workpool_work`` and the two queues that run them.

An item runs its function (:class:`PoolQueue`), with the machinery every background item
uses (:mod:`.items`): at most ``max_parallelism`` items of one pool run at once, counted in
the table, so across every process; a failed action is retried per its policy. Its result
(``{"kind": "success", "return_value"} | {"kind": "failed", "error"} | {"kind":
"canceled"}``) then goes to its ``on_complete`` mutation, which :class:`CompletionQueue`
runs once, in a transaction of its own, marking the item finished in the same commit.

An item's life: ``pending`` -> ``running`` (an action, claimed) -> ``pending`` again (a
retry, after a backoff) -> ``completing`` (its result is in; only with an ``on_complete``)
-> ``finished``. Finished items are kept for ``KEPT_SECONDS`` (their status can be read),
then purged.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from .. import values
from ..database.system import WORKPOOL_WORK
from .items import NO_RETRY, ItemQueue, Outcome, RetryPolicy, describe_failure
from .lanes import LanedQueue

if TYPE_CHECKING:
    from ..database import DatabaseReader, DatabaseWriter

KEPT_SECONDS = 24 * 3600.0  # Convex's workpool keeps a finished item's status a day
MAX_PARALLELISM = 100
MAX_RESULT_BYTES = 256 * 1024
_log = logging.getLogger("pyconvex.workpool")


def in_status(reader: DatabaseReader, status: str, until: float | None = None) -> Any:
    """Items in ``status``, by ``next_attempt_at`` (only those up to ``until``, if given)."""

    def bounds(q: Any) -> Any:
        q = q.eq("status", status)
        return q if until is None else q.lte("next_attempt_at", until)

    return reader.query(WORKPOOL_WORK).with_index("by_due", bounds)


def of_pool(reader: DatabaseReader, pool: str, status: str) -> Any:
    # The lanes' index serves it: each index costs every write of an item.
    return reader.query(WORKPOOL_WORK).with_index(
        "by_lane", lambda q: q.eq("status", status).eq("pool", pool)
    )


async def _running(reader: DatabaseReader) -> Counter[str]:
    """How many items of each pool are running, in every process."""
    return Counter(row["pool"] for row in await in_status(reader, "running").collect())


def _result(outcome: Outcome) -> dict[str, Any]:
    if outcome.error is not None:
        return {"kind": "failed", "error": describe_failure(outcome.error)}
    try:
        values.check_value(outcome.value)
        size = len(values.dumps(outcome.value, wire=False))
    except (TypeError, ValueError) as exc:
        # It ran (a mutation's writes are committed): success, without the value.
        _log.warning("A work item's return value cannot be kept: %s", exc)
        return {"kind": "success", "return_value": None}
    if size > MAX_RESULT_BYTES:
        _log.warning("A work item's return value is too large to keep (%d bytes)", size)
        return {"kind": "success", "return_value": None}
    return {"kind": "success", "return_value": outcome.value}


async def conclude(
    system: DatabaseWriter, row: dict[str, Any], result: dict[str, Any], now: float, **fields: Any
) -> None:
    """Give ``row`` its final ``result``: to its ``on_complete``, or finished at once."""
    status = "completing" if row.get("on_complete") else "finished"
    await system.patch(
        row["_id"],
        {**fields, "status": status, "result": result, "next_attempt_at": now, "claimed_by": None},
    )


class PoolQueue(LanedQueue):
    """Runs the items of every pool, each pool within its ``max_parallelism``."""

    # Each pool's own bound applies across processes; this only stops one process from
    # taking more than any pool could allow.
    max_running = MAX_PARALLELISM
    table = WORKPOOL_WORK
    lane = "pool"
    lane_index = "by_lane"
    running_status = "running"

    def in_flight(self, reader: DatabaseReader) -> Any:
        return in_status(reader, "running")

    def due_time(self, row: dict[str, Any]) -> float:
        return float(row["next_attempt_at"])

    def function(self, row: dict[str, Any]) -> str:
        return str(row["function"])

    async def arguments(self, row: dict[str, Any]) -> dict[str, Any]:
        return dict(row["args"])

    def label(self, row: dict[str, Any]) -> str:
        return f"Work {row['_id']} of pool {row['pool']} ({row['function']})"

    async def ready_at(
        self, reader: DatabaseReader, head: dict[str, Any], gates: Any, now: float
    ) -> float | None:
        return None if gates[head["pool"]] >= head["max_parallelism"] else self.due_time(head)

    async def gates(self, reader: DatabaseReader) -> Counter[str]:
        # Read in the batch's transaction: two workers that both see room for one more
        # conflict on this read, and the second finds the pool full when it runs again.
        return await _running(reader)

    async def admit(self, system: DatabaseWriter, row: dict[str, Any], gates: Any) -> bool:
        if gates[row["pool"]] >= row["max_parallelism"]:
            return False
        gates[row["pool"]] += 1
        # Into the range of running items even for a mutation (done by the end of this
        # transaction): a concurrent batch that read that range then conflicts with this one.
        await system.patch(row["_id"], {"status": "running"})
        return True

    async def finish(
        self, system: DatabaseWriter, row: dict[str, Any], outcome: Outcome, *, claimed: bool
    ) -> None:
        attempts = row["attempts"] if claimed else row["attempts"] + 1
        now = self.worker.clock()
        if claimed:
            self.worker.work_added(system)  # a slot of the pool is free, in every process
        error = outcome.error
        if error is not None and claimed and not row.get("canceled"):
            policy = RetryPolicy.of(row["retry"]) if row.get("retry") else NO_RETRY
            retry_after = policy.retry_after(attempts, error)
            if retry_after is not None:
                await system.patch(
                    row["_id"],
                    {
                        "status": "pending",
                        "attempts": attempts,
                        "next_attempt_at": now + retry_after,
                        "last_error": describe_failure(error),
                        "claimed_by": None,
                    },
                )
                return
        result = _result(outcome)
        if row.get("canceled") and result["kind"] == "failed":
            result = {"kind": "canceled"}
        await conclude(system, row, result, now, attempts=attempts)

    async def recover(self) -> int:
        recovered = await super().recover()
        await self._purge()
        return recovered

    async def _purge(self) -> int:
        """Forget items finished more than ``KEPT_SECONDS`` ago."""
        until = self.worker.clock() - KEPT_SECONDS
        return await self.purge(lambda reader: in_status(reader, "finished", until))


class CompletionQueue(ItemQueue):
    """Runs each finished item's ``on_complete`` mutation, once, then marks it finished.

    Several completions may share one commit, each in a savepoint of its own: one that raises
    has its writes undone and is logged, the others commit (never with the work itself).
    """

    runs_actions = False  # on_complete is a mutation: an action there fails as one

    def pending(self, reader: DatabaseReader, until: float | None = None) -> Any:
        return in_status(reader, "completing", until)

    def due_time(self, row: dict[str, Any]) -> float:
        return float(row["next_attempt_at"])

    def function(self, row: dict[str, Any]) -> str:
        return str(row["on_complete"])

    async def arguments(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"work_id": row["_id"], "context": row.get("context"), "result": row["result"]}

    def label(self, row: dict[str, Any]) -> str:
        return f"on_complete {row['on_complete']} of work {row['_id']} (pool {row['pool']})"

    def is_pending(self, row: dict[str, Any]) -> bool:
        return bool(row["status"] == "completing")

    async def finish(
        self, system: DatabaseWriter, row: dict[str, Any], outcome: Outcome, *, claimed: bool
    ) -> None:
        # Its failure is logged, not retried (as Convex's workpool): the item has its result.
        fields: dict[str, Any] = {"status": "finished", "next_attempt_at": self.worker.clock()}
        if outcome.error is not None:
            fields["last_error"] = f"on_complete: {describe_failure(outcome.error)}"
        await system.patch(row["_id"], fields)
