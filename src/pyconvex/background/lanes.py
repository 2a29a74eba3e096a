"""Queues whose items are held back lane by lane: a webhook endpoint (paused, at its
``max_parallelism``, out of its ``rate``), a work pool (at its ``max_parallelism``).

One lane's backlog must not hold up another's, however long it is. So a laned queue never
scans the items in due order: its table has an index ``[status, lane, due time]``, and the
next item of each lane is found by a *skip scan* (the first pending item, then the first
of a greater lane, and so on: one index probe per lane). Whether a lane may run is asked of
its next item only.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .items import ItemQueue

if TYPE_CHECKING:
    from ..database import DatabaseReader, DatabaseWriter

MAX_LANES = 10_000  # a bound on one skip scan, should a table hold absurdly many lanes
_FIRST = object()


class LanedQueue(ItemQueue):
    """An :class:`~.items.ItemQueue` held back lane by lane (see the module's docstring)."""

    #: The table, the field that names an item's lane, and the index [status, lane, due].
    table: str
    lane: str
    lane_index: str
    #: The status of items waiting to run, of those running, and the field of their due time.
    waiting = "pending"
    running_status: str
    due_field = "next_attempt_at"

    @abstractmethod
    async def ready_at(
        self, reader: DatabaseReader, head: dict[str, Any], gates: Any, now: float
    ) -> float | None:
        """When the lane whose next item is ``head`` may run it (its due time, or later
        for a rate), or None while it is held back until something changes (paused, full:
        the change wakes the worker)."""

    def pending(self, reader: DatabaseReader, until: float | None = None) -> Any:
        # Never asked: a laned queue finds its items lane by lane (next_due, candidates).
        raise NotImplementedError("a laned queue is read lane by lane")

    def is_pending(self, row: dict[str, Any]) -> bool:
        return bool(row["status"] == self.waiting)

    async def claim(self, system: DatabaseWriter, row: dict[str, Any], worker: str) -> None:
        attempts = row["attempts"] + 1
        fields = {"status": self.running_status, "attempts": attempts, "claimed_by": worker}
        await system.patch(row["_id"], fields)

    def claimed_by(self, row: dict[str, Any], worker: str) -> bool:
        return bool(row["status"] == self.running_status and row.get("claimed_by") == worker)

    async def heads(
        self, reader: DatabaseReader, status: str | None = None
    ) -> list[dict[str, Any]]:
        """The first item in ``status`` (waiting ones by default) of every lane (a skip
        scan)."""
        status = status or self.waiting
        heads: list[dict[str, Any]] = []
        after: Any = _FIRST
        while len(heads) < MAX_LANES:

            def bounds(q: Any, after: Any = after) -> Any:
                q = q.eq("status", status)
                if after is _FIRST:
                    return q
                if after is None:  # rows from before lanes existed sort first
                    return q.gte(self.lane, "")
                return q.gt(self.lane, after)

            head = await reader.query(self.table).with_index(self.lane_index, bounds).first()
            if head is None:
                break
            heads.append(head)
            after = head.get(self.lane)
        return heads

    def in_lane(
        self, reader: DatabaseReader, lane: str, until: float, status: str | None = None
    ) -> Any:
        """The items of ``lane`` in ``status`` (waiting ones by default) due by ``until``."""
        status = status or self.waiting
        return reader.query(self.table).with_index(
            self.lane_index,
            lambda q: q.eq("status", status).eq(self.lane, lane).lte(self.due_field, until),
        )

    async def next_due(self) -> float | None:
        if len(self.running) >= self.max_running:
            return None  # the end of a run wakes the worker
        now = self.worker.clock()
        soonest: float | None = None
        async with self.database.read(system=True) as reader:
            heads = await self.heads(reader)
            if not heads:
                return None  # the common case of an idle queue: one index probe
            gates = await self.gates(reader)
            for head in heads:
                at = await self.ready_at(reader, head, gates, now)
                if at is not None:
                    soonest = at if soonest is None else min(soonest, at)
        return soonest

    async def lanes(self) -> list[dict[str, Any]]:
        # Found before the batch's transaction, not in it: a probe there would put the
        # range before each head in its read set, and every delivery recorded meanwhile
        # would make the batch run again. A lane that appears meanwhile is the next batch's.
        async with self.database.read(system=True) as reader:
            return await self.heads(reader)

    async def candidates(
        self,
        system: DatabaseWriter,
        now: float,
        limit: int,
        lanes: list[dict[str, Any]] | None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        for head in lanes or ():
            lane = head.get(self.lane)
            if lane is None:  # a row from before lanes: on its own
                yield [head] if self.due_time(head) <= now else []
            else:
                yield await self.in_lane(system, lane, now).claim(limit)
