"""Processing recorded webhook events: the handlers, retries with backoff, the dead letter.

A recorded event is ``pending`` with a ``next_attempt_at``: the row is its own
queue entry, found through the ``by_due`` index. The scheduler's worker runs
:class:`WebhookQueue` batches of due events; its handler gets
``{"provider", "id", "type", "timestamp", "payload"}``. Should the workers of
two processes take the same events, the second batch to commit conflicts, runs
again and finds them no longer pending: each event is still handled once.

- **Mutation handlers** of a batch run in one transaction, each in a
  savepoint: a handler's writes and its event's ``succeeded`` commit together
  (exactly once); a handler that raises has its writes undone and its failure
  recorded, and the others commit.
- **Action handlers** are claimed in that transaction (``processing``, attempt
  counted, committed), then run concurrently, then their outcomes are recorded in one
  transaction. One cut off by a crash is found ``processing`` at start-up and
  retried (so action handlers run at least once: make them idempotent on the
  event id).

A failure is recorded (``attempts``, ``last_error``) and retried after an
exponential backoff with jitter, up to ``max_attempts``; then the event is
``failed`` (the dead letter). ``pyconvex webhooks replay ID`` makes an event
``pending`` again with a fresh count.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any

from .. import ids, values
from ..database.system import WEBHOOK_EVENTS
from ..errors import ConflictError
from ..functions.context import Auth
from ..functions.logs import Execution, current_execution
from ..scheduler import describe_failure

if TYPE_CHECKING:
    from ..database import DatabaseReader, DatabaseWriter
    from ..deployment import Deployment

BACKOFF_START = 1.0
BACKOFF_MAX = 3600.0
CUT_OFF = "the server stopped while the handler was running"


def backoff(attempt: int) -> float:
    """Seconds before retry ``attempt`` (1-based): doubling from 1 s to an hour, with jitter
    between 50% and 100% so that many failing events do not retry in lockstep."""
    base = min(BACKOFF_START * 2.0 ** (attempt - 1), BACKOFF_MAX)
    return base * (0.5 + random.random() / 2)


def handler_args(row: dict[str, Any]) -> dict[str, Any]:
    """What the handler gets: the verified event, its payload re-read from the stored raw body."""
    return {
        "provider": row["provider"],
        "id": None if row["event_id"].startswith("sha256:") else row["event_id"],
        "type": row.get("type"),
        "timestamp": row.get("timestamp"),
        "payload": _payload(row["body"]),
    }


def _payload(body: bytes) -> Any:
    from .core import parse_payload

    payload = parse_payload(body)
    try:
        values.check_value(payload)
    except ValueError:
        return None  # not representable as a Convex value (e.g. a 2^70 integer): the raw body stays
    return payload


def _in_status(reader: DatabaseReader, status: str, until: float | None = None) -> Any:
    def bounds(q: Any) -> Any:
        q = q.eq("status", status)
        return q if until is None else q.lte("next_attempt_at", until)

    return reader.query(WEBHOOK_EVENTS).with_index("by_due", bounds)


class WebhookQueue:
    """The scheduler's :class:`~pyconvex.scheduler.WorkQueue` of recorded webhook events."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    @property
    def _clock(self) -> Any:
        return self.deployment.scheduler.clock

    async def next_due(self) -> float | None:
        async with self.deployment.database.read(system=True) as reader:
            row = await _in_status(reader, "pending").first()
        return None if row is None else float(row.get("next_attempt_at") or 0.0)

    async def run_due(self, now: float, limit: int) -> int:
        """Take up to ``limit`` due events and run them: mutation handlers in that same
        transaction, action handlers claimed in it and run after its commit. How many
        events were taken."""
        database = self.deployment.database
        worker = await self.deployment.scheduler.claimant()
        executions: list[Execution] = []
        claimed: list[dict[str, Any]] = []

        async def batch(writer: DatabaseWriter) -> int:
            executions.clear()  # a retried batch starts over (its logs too)
            claimed.clear()
            system = writer.system_writer()
            rows = await _in_status(system, "pending", now).claim(limit)
            for row in rows:
                try:
                    fn = self.deployment.executor.resolve(row["handler"])
                except Exception as exc:
                    await self._failed(system, row, exc, final=True)
                    continue
                if fn.kind == "mutation":
                    await self._run_mutation(writer, row, executions)
                    continue
                fields = {"status": "processing", "attempts": row["attempts"] + 1}
                await system.patch(row["_id"], {**fields, "claimed_by": worker})
                claimed.append({**row, **fields})
            return len(rows)

        try:
            taken: int = await database.transact(batch)
        finally:
            for execution in executions:
                execution.finish()
        if claimed:
            await self._run_actions(claimed)
        return taken

    async def _run_mutation(
        self, writer: DatabaseWriter, row: dict[str, Any], executions: list[Execution]
    ) -> None:
        """One mutation handler, and its event's outcome, in the batch's transaction."""
        executor = self.deployment.executor
        system = writer.system_writer()
        execution = executor.execution(row["handler"])
        executions.append(execution)
        token = current_execution.set(execution)
        try:
            await executor.run_nested(
                row["handler"], handler_args(row), writer, Auth(), kinds=("mutation",)
            )
        except ConflictError:
            raise
        except Exception as exc:  # its writes are undone (savepoint)
            await self._failed(system, row, exc)
            return
        finally:
            current_execution.reset(token)
        await self._succeeded(system, row)

    async def _run_actions(self, claimed: list[dict[str, Any]]) -> None:
        outcomes = await asyncio.gather(*(self._run_action(row) for row in claimed))

        async def record(writer: DatabaseWriter) -> None:
            system = writer.system_writer()
            for row, error in zip(claimed, outcomes, strict=True):
                current = await system.get(row["_id"])
                if current is None or current["status"] != "processing":
                    continue  # replayed while it ran
                if error is None:
                    await self._succeeded(system, current, counted=True)
                else:
                    await self._failed(system, current, error, counted=True)

        await self.deployment.database.transact(record)

    async def _run_action(self, row: dict[str, Any]) -> Exception | None:
        executor = self.deployment.executor
        execution: Execution = executor.execution(row["handler"])
        token = current_execution.set(execution)
        try:
            await executor.run(row["handler"], handler_args(row), kind="action")
        except Exception as exc:
            return exc
        finally:
            current_execution.reset(token)
            execution.finish()
        return None

    async def recover(self) -> int:
        """Action handlers cut off by a crash: a failed attempt each, retried after backoff.

        Only those of workers that are gone: a live worker's handlers are left running.
        """

        async def fail(system: DatabaseWriter, row: dict[str, Any]) -> None:
            await self._failed(system, row, RuntimeError(CUT_OFF), counted=True)

        return await self.deployment.scheduler.sweep_abandoned(
            lambda reader: _in_status(reader, "processing"), fail
        )

    async def _succeeded(
        self, system: DatabaseWriter, row: dict[str, Any], *, counted: bool = False
    ) -> None:
        attempts = row["attempts"] if counted else row["attempts"] + 1
        await system.patch(
            row["_id"],
            {
                "status": "succeeded",
                "attempts": attempts,
                "completed_at": time.time(),
                "next_attempt_at": None,
                "claimed_by": None,
            },
        )

    async def _failed(
        self,
        system: DatabaseWriter,
        row: dict[str, Any],
        exc: BaseException,
        *,
        counted: bool = False,
        final: bool = False,
    ) -> None:
        attempts = row["attempts"] if counted else row["attempts"] + 1
        fields: dict[str, Any] = {
            "attempts": attempts,
            "last_error": describe_failure(exc),
            "claimed_by": None,
        }
        if final or attempts >= row["max_attempts"]:
            fields.update(status="failed", completed_at=time.time(), next_attempt_at=None)
        else:
            fields.update(status="pending", next_attempt_at=self._clock() + backoff(attempts))
        await system.patch(row["_id"], fields)


def check_event_id(event_id: str) -> None:
    """:class:`LookupError` unless ``event_id`` is the id of a ``_webhook_events`` row."""
    if not ids.is_id_of(event_id, WEBHOOK_EVENTS):
        raise LookupError(f"{event_id!r} is not a webhook event id")


def _fresh(now: float) -> dict[str, Any]:
    """An event's fields when it is to be processed again, with a fresh count of attempts."""
    return {"status": "pending", "attempts": 0, "last_error": None, "next_attempt_at": now}


async def replay(deployment: Deployment, event_id: str) -> None:
    """Process an event again now (whatever its status), with a fresh count of attempts;
    :class:`LookupError` if there is no such event."""
    check_event_id(event_id)

    async def again(writer: DatabaseWriter) -> None:
        system = writer.system_writer()
        row = await system.get(event_id)
        if row is None:
            raise LookupError(f"No webhook event {event_id}")
        await system.patch(row["_id"], _fresh(deployment.scheduler.clock()))
        await deployment.scheduler.work_added(writer)

    await deployment.database.transact(again, system=True)


async def replay_failed(deployment: Deployment, since: float) -> int:
    """Process again every failed event received at or after ``since`` (epoch seconds),
    in one transaction; how many."""

    async def again(writer: DatabaseWriter) -> int:
        system = writer.system_writer()
        failed = await (
            system.query(WEBHOOK_EVENTS)
            .with_index("by_due", lambda r: r.eq("status", "failed"))
            .collect()
        )
        chosen = [row for row in failed if row["received_at"] >= since]
        now = deployment.scheduler.clock()
        for row in chosen:
            await system.patch(row["_id"], _fresh(now))
        if chosen:
            await deployment.scheduler.work_added(writer)
        return len(chosen)

    count: int = await deployment.database.transact(again, system=True)
    return count
