"""Processing recorded webhook events: their handlers, retried with backoff, then the dead letter.

A recorded event (``_webhook_events``) is ``pending`` with a ``next_attempt_at``: the row is
its own queue entry, run by the machinery every background item uses (:mod:`.items`). Its
handler gets ``{"provider", "id", "type", "timestamp", "payload"}``:

- a **mutation** handler runs in the batch's transaction: its writes and its event's
  ``succeeded`` commit together (exactly once);
- an **action** handler is claimed (``processing``, attempt counted, committed), then run.
  One cut off by a crash counts as a failed attempt and is retried, so action handlers run at
  least once: make them idempotent on the event id.

A failure is recorded (``attempts``, ``last_error``) and retried after an exponential
backoff from 1 s (at most an hour) with jitter, up to the receiver's ``max_attempts``, or
ends at once if the handler raised :class:`~pyconvex.errors.NonRetryableError`; then the
event is ``failed`` (the dead letter). ``pyconvex webhooks replay ID`` makes an event
``pending`` again with a fresh count.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import values
from ..database.system import WEBHOOK_EVENTS, WEBHOOK_PAUSES
from ..errors import NonRetryableError
from ..rate_limit import take
from ..webhooks.core import parse_payload
from .items import Outcome, RetryPolicy, describe_failure
from .lanes import LanedQueue

if TYPE_CHECKING:
    from ..database import DatabaseReader, DatabaseWriter
    from ..storage import FileStorage

BACKOFF_START = 1.0
BACKOFF_MAX = 3600.0
CUT_OFF = "the server stopped while the handler was running"
RETENTION_DAYS = 30.0  # succeeded events are kept this long (http.webhook(retention_days=))


def handler_args(row: dict[str, Any], body: bytes) -> dict[str, Any]:
    """What the handler gets: the verified event, its payload re-read from the raw body."""
    return {
        "provider": row["provider"],
        "id": None if row["event_id"].startswith("sha256:") else row["event_id"],
        "type": row.get("type"),
        "timestamp": row.get("timestamp"),
        "payload": _payload(body),
    }


def _payload(body: bytes) -> Any:
    payload = parse_payload(body)
    try:
        values.check_value(payload)
    except ValueError:
        return None  # not representable as a Convex value (e.g. a 2^70 integer): the raw body stays
    return payload


async def stored_body(files: FileStorage, row: dict[str, Any]) -> bytes | None:
    """An event's raw body: in its row, or (a large one) in file storage; None if it is
    gone from there."""
    if not row.get("body_file"):
        return bytes(row["body"])
    try:
        return await files.read_bytes(row["body_file"])
    except OSError:
        return None


async def body_of(files: FileStorage, row: dict[str, Any]) -> bytes:
    """An event's raw body, for its handler."""
    body = await stored_body(files, row)
    if body is None:  # deleted by hand: no retry brings it back
        raise NonRetryableError(f"The body of webhook event {row['_id']} is gone from file storage")
    return body


async def _rate(db: Any, row: dict[str, Any], now: float, *, write: bool) -> dict[str, Any]:
    """Take a run from ``row``'s endpoint's ``rate`` (only look, unless ``write``): a token
    bucket that holds ``count`` and refills ``count`` per ``seconds``, in ``_rate_limits``."""
    count, seconds = row["rate"]["count"], row["rate"]["seconds"]
    config = {"kind": "token bucket", "rate": count, "period": seconds, "capacity": count}
    name = f"webhook {row.get('endpoint') or row['provider']}"
    return await take(db, name, config, now=now, write=write)


@dataclass
class Gates:
    """What holds events back, as one transaction sees it: paused providers, and the
    handlers each endpoint is running (in every process)."""

    paused: set[str]
    running: Counter[str] = field(default_factory=Counter)

    @classmethod
    async def read(cls, reader: DatabaseReader) -> Gates:
        paused = {row["provider"] for row in await reader.query(WEBHOOK_PAUSES).collect()}
        running = Counter(
            row.get("endpoint") for row in await in_status(reader, "processing").collect()
        )
        return cls(paused, running)

    def full(self, row: dict[str, Any]) -> bool:
        if row["provider"] in self.paused:
            return True
        most = row.get("max_parallelism")
        return most is not None and self.running[row.get("endpoint")] >= most  # type: ignore[index]


def in_status(reader: DatabaseReader, status: str) -> Any:
    """Events in ``status``, endpoint by endpoint, each endpoint's in due order."""
    return reader.query(WEBHOOK_EVENTS).with_index("by_endpoint", lambda q: q.eq("status", status))


class WebhookQueue(LanedQueue):
    """The worker's queue of recorded webhook events."""

    table = WEBHOOK_EVENTS
    lane = "endpoint"
    lane_index = "by_endpoint"
    running_status = "processing"
    cut_off_error = CUT_OFF

    def in_flight(self, reader: DatabaseReader) -> Any:
        return in_status(reader, "processing")

    def due_time(self, row: dict[str, Any]) -> float:
        return float(row.get("next_attempt_at") or 0.0)

    async def ready_at(
        self, reader: DatabaseReader, head: dict[str, Any], gates: Any, now: float
    ) -> float | None:
        if gates.full(head):
            return None
        due = self.due_time(head)
        if head.get("rate"):
            allowed = await _rate(reader, head, now, write=False)
            if not allowed["ok"]:
                due = max(due, now + allowed["retry_after"])
        return due

    async def gates(self, reader: DatabaseReader) -> Gates:
        # Read (and tokens taken) in the batch's transaction, so every process keeps to the
        # same bounds: two that take an endpoint's last slot (or token) at once conflict.
        return await Gates.read(reader)

    async def admit(self, system: DatabaseWriter, row: dict[str, Any], gates: Any) -> bool:
        if gates.full(row):
            return False
        if (
            row.get("rate")
            and not (await _rate(system, row, self.worker.clock(), write=True))["ok"]
        ):
            return False
        gates.running[row.get("endpoint")] += 1
        if row.get("max_parallelism") is not None:
            # Into the range of running handlers even for a mutation (done by the end of this
            # transaction): a concurrent batch that read that range then conflicts with this.
            await system.patch(row["_id"], {"status": "processing"})
        return True

    def function(self, row: dict[str, Any]) -> str:
        return str(row["handler"])

    async def arguments(self, row: dict[str, Any]) -> dict[str, Any]:
        return handler_args(row, await body_of(self.executor.files, row))

    def label(self, row: dict[str, Any]) -> str:
        return f"Webhook event {row['_id']} ({row['provider']} {row['event_id']}, {row['handler']})"

    async def finish(
        self, system: DatabaseWriter, row: dict[str, Any], outcome: Outcome, *, claimed: bool
    ) -> None:
        attempts = row["attempts"] if claimed else row["attempts"] + 1
        now = self.worker.clock()
        fields: dict[str, Any] = {"attempts": attempts, "claimed_by": None}
        if claimed and row.get("max_parallelism") is not None:
            self.worker.work_added(system)  # a slot of the endpoint is free, in every process
        if outcome.error is None:
            days = row.get("retention_days", RETENTION_DAYS)
            fields.update(
                status="succeeded", completed_at=now, next_attempt_at=now + days * 86400.0
            )
            await system.patch(row["_id"], fields)
            return
        fields["last_error"] = describe_failure(outcome.error)
        retry_after = _policy(row).retry_after(attempts, outcome.error)
        if retry_after is None:  # the dead letter: kept until replayed or purged by hand
            fields.update(status="failed", completed_at=now, next_attempt_at=None)
        else:
            fields.update(status="pending", next_attempt_at=now + retry_after)
        await system.patch(row["_id"], fields)

    async def recover(self) -> int:
        recovered = await super().recover()
        await self.purge_expired()
        return recovered

    async def purge_expired(self) -> int:
        """Delete succeeded events past their retention, with their large bodies, endpoint
        by endpoint; how many. (Rows that succeeded before retention existed have no time
        to go by and no endpoint: they are purged by hand, pyconvex webhooks purge.)"""
        now = self.worker.clock()
        files = self.executor.files

        async def body(writer: DatabaseWriter, row: dict[str, Any]) -> None:
            if row.get("body_file"):
                await files.delete_in(writer, row["body_file"])

        async with self.database.read(system=True) as reader:
            lanes = [head.get("endpoint") for head in await self.heads(reader, "succeeded")]
        purged = 0
        for lane in lanes:
            if lane is not None:
                expired = functools.partial(self.in_lane, lane=lane, until=now, status="succeeded")
                purged += await self.purge(expired, body)
        return purged


def _policy(row: dict[str, Any]) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=int(row["max_attempts"]),
        initial_backoff=BACKOFF_START,
        max_backoff=BACKOFF_MAX,
    )
