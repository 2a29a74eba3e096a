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

import time
from typing import TYPE_CHECKING, Any

from .. import values
from ..database.system import WEBHOOK_EVENTS
from ..webhooks.core import parse_payload
from .items import ItemQueue, Outcome, RetryPolicy, describe_failure

if TYPE_CHECKING:
    from ..database import DatabaseReader, DatabaseWriter
    from ..storage import FileStorage

BACKOFF_START = 1.0
BACKOFF_MAX = 3600.0
CUT_OFF = "the server stopped while the handler was running"


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


async def body_of(files: FileStorage, row: dict[str, Any]) -> bytes:
    """An event's raw body: in its row, or (a large one) in file storage."""
    if not row.get("body_file"):
        return bytes(row["body"])
    body = await files.read_bytes(row["body_file"])
    if body is None:
        raise LookupError(f"The body of webhook event {row['_id']} is gone from file storage")
    return body


def in_status(reader: DatabaseReader, status: str, until: float | None = None) -> Any:
    """Events in ``status``, by ``next_attempt_at`` (only those due by ``until``, if given)."""

    def bounds(q: Any) -> Any:
        q = q.eq("status", status)
        return q if until is None else q.lte("next_attempt_at", until)

    return reader.query(WEBHOOK_EVENTS).with_index("by_due", bounds)


class WebhookQueue(ItemQueue):
    """The worker's queue of recorded webhook events."""

    def pending(self, reader: DatabaseReader, until: float | None = None) -> Any:
        return in_status(reader, "pending", until)

    def in_flight(self, reader: DatabaseReader) -> Any:
        return in_status(reader, "processing")

    def due_time(self, row: dict[str, Any]) -> float:
        return float(row.get("next_attempt_at") or 0.0)

    def function(self, row: dict[str, Any]) -> str:
        return str(row["handler"])

    async def arguments(self, row: dict[str, Any]) -> dict[str, Any]:
        return handler_args(row, await body_of(self.executor.files, row))

    def label(self, row: dict[str, Any]) -> str:
        return f"Webhook event {row['_id']} ({row['provider']} {row['event_id']}, {row['handler']})"

    async def claim(self, system: DatabaseWriter, row: dict[str, Any], worker: str) -> None:
        fields = {"status": "processing", "attempts": row["attempts"] + 1, "claimed_by": worker}
        await system.patch(row["_id"], fields)

    def claimed_by(self, row: dict[str, Any], worker: str) -> bool:
        return bool(row["status"] == "processing" and row.get("claimed_by") == worker)

    async def finish(
        self, system: DatabaseWriter, row: dict[str, Any], outcome: Outcome, *, claimed: bool
    ) -> None:
        attempts = row["attempts"] if claimed else row["attempts"] + 1
        fields: dict[str, Any] = {"attempts": attempts, "claimed_by": None}
        retry_after = None
        if outcome.error is None:
            fields.update(status="succeeded")
        else:
            fields["last_error"] = describe_failure(outcome.error)
            retry_after = _policy(row).retry_after(attempts, outcome.error)
        if retry_after is None:
            fields.update(completed_at=time.time(), next_attempt_at=None)
            fields.setdefault("status", "failed")
        else:
            fields.update(status="pending", next_attempt_at=self.worker.clock() + retry_after)
        await system.patch(row["_id"], fields)

    async def cut_off(self, system: DatabaseWriter, row: dict[str, Any]) -> None:
        await self.finish(system, row, Outcome(error=RuntimeError(CUT_OFF)), claimed=True)


def _policy(row: dict[str, Any]) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=int(row["max_attempts"]),
        initial_backoff=BACKOFF_START,
        max_backoff=BACKOFF_MAX,
    )
