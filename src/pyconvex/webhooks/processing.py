"""Processing recorded webhook events: the handlers, retries with backoff, the dead letter.

A recorded event is ``pending`` with a ``next_attempt_at``: the row is its own
queue entry, found through the ``by_due`` index. The scheduler's worker runs
:class:`WebhookQueue` batches of due events; its handler gets
``{"provider", "id", "type", "timestamp", "payload"}``.

- **Mutation handlers** of a batch run in one transaction, each in a
  savepoint: a handler's writes and its event's ``succeeded`` commit together
  (exactly once); a handler that raises has its writes undone and its failure
  recorded, and the others commit.
- **Action handlers** are claimed first (``processing``, attempt counted,
  committed), then run concurrently, then their outcomes are recorded in one
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

from .. import values
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
        deployment = self.deployment
        async with deployment.database.read(system=True) as reader:
            rows: list[dict[str, Any]] = await _in_status(reader, "pending", now).take(limit)
        mutations: list[dict[str, Any]] = []
        actions: list[dict[str, Any]] = []
        unknown: list[tuple[dict[str, Any], Exception]] = []
        for row in rows:
            try:
                fn = deployment.executor.resolve(row["handler"])
            except Exception as exc:
                unknown.append((row, exc))
                continue
            (mutations if fn.kind == "mutation" else actions).append(row)
        if mutations or unknown:
            await self._run_mutations(mutations, unknown)
        if actions:
            await self._run_actions(actions)
        return len(rows)

    async def _run_mutations(
        self, rows: list[dict[str, Any]], unknown: list[tuple[dict[str, Any], Exception]]
    ) -> None:
        executor = self.deployment.executor
        executions = [executor.execution(row["handler"]) for row in rows]

        async def batch(writer: DatabaseWriter) -> None:
            system = writer.system_writer()
            for row, error in unknown:
                await self._failed(system, row, error, final=True)
            for row, execution in zip(rows, executions, strict=True):
                current = await system.get(row["_id"])
                if current is None or current["status"] != "pending":
                    continue  # replayed, or done by another process meanwhile
                execution.rewind(0)  # a retried batch keeps only its last attempt's lines
                token = current_execution.set(execution)
                try:
                    await executor.run_nested(
                        current["handler"], handler_args(current), writer, Auth(),
                        kinds=("mutation",),
                    )  # fmt: skip
                except ConflictError:
                    raise
                except Exception as exc:  # its writes are undone (savepoint)
                    await self._failed(system, current, exc)
                    continue
                finally:
                    current_execution.reset(token)
                await self._succeeded(system, current)

        try:
            await self.deployment.database.transact(batch)
        finally:
            for execution in executions:
                execution.finish()

    async def _run_actions(self, rows: list[dict[str, Any]]) -> None:
        database = self.deployment.database
        worker = await self.deployment.scheduler.claimant()

        async def claim(writer: DatabaseWriter) -> list[dict[str, Any]]:
            system = writer.system_writer()
            claimed = []
            for row in rows:
                current = await system.get(row["_id"])
                if current is None or current["status"] != "pending":
                    continue
                fields = {
                    "status": "processing",
                    "attempts": current["attempts"] + 1,
                    "claimed_by": worker,
                }
                current = {**current, **fields}
                await system.patch(row["_id"], fields)
                claimed.append(current)
            return claimed

        claimed = await database.transact(claim)
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

        await database.transact(record)

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
        scheduler = self.deployment.scheduler

        async def sweep(writer: DatabaseWriter) -> int:
            system = writer.system_writer()
            running = await _in_status(system, "processing").collect()
            cut_off = [row for row in running if await scheduler.abandoned(row.get("claimed_by"))]
            for row in cut_off:
                await self._failed(system, row, RuntimeError(CUT_OFF), counted=True)
            return len(cut_off)

        # Look first with a read: most sweeps find nothing, and then take no write lock.
        async with self.deployment.database.read(system=True) as reader:
            running = await _in_status(reader, "processing").collect()
        if not any([await scheduler.abandoned(row.get("claimed_by")) for row in running]):
            return 0
        found: int = await self.deployment.database.transact(sweep)
        return found

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


async def replay(deployment: Deployment, event_id: str) -> None:
    """Process an event again now (whatever its status), with a fresh count of attempts."""

    async def again(writer: DatabaseWriter) -> None:
        system = writer.system_writer()
        row = await system.get(event_id)
        if row is None or not event_id or row.get("provider") is None:
            raise LookupError(f"No webhook event {event_id}")
        await system.patch(
            row["_id"],
            {
                "status": "pending",
                "attempts": 0,
                "last_error": None,
                "next_attempt_at": deployment.scheduler.clock(),
            },
        )
        await deployment.scheduler.work_added(writer)

    await deployment.database.transact(again, system=True)
