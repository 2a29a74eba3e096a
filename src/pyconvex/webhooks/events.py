"""Reading and replaying recorded webhook events (``pyconvex webhooks``, ``/api/webhooks``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import ids
from ..database.system import WEBHOOK_EVENTS
from .receiver import REDACTED

# A header whose name holds one of these carries a signature or a secret. The receiver
# stores each provider's signature headers redacted already; these are the ones it cannot
# know of (a sender's own "x-api-key", a token in a custom header).
_SECRET_WORDS = (
    "sig", "secret", "token", "auth", "cookie", "hmac", "key", "pass", "credential",
    "session", "jwt",
)  # fmt: skip

if TYPE_CHECKING:
    from ..database import DatabaseWriter
    from ..deployment import Deployment

__all__ = ["detail", "get", "recent", "replay", "replay_failed", "summary"]


async def recent(deployment: Deployment, limit: int = 50) -> list[dict[str, Any]]:
    """The newest events first."""
    async with deployment.database.read(system=True) as reader:
        rows: list[dict[str, Any]] = await reader.query(WEBHOOK_EVENTS).order("desc").take(limit)
    return rows


async def get(deployment: Deployment, event_id: str) -> dict[str, Any]:
    check_event_id(event_id)
    async with deployment.database.read(system=True) as reader:
        row = await reader.get(event_id)
    if row is None:
        raise LookupError(f"No webhook event {event_id}")
    return await with_body(deployment, row)


async def with_body(deployment: Deployment, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its raw body in ``body``, read from file storage if it is large."""
    if not row.get("body_file"):
        return row
    body = await deployment.files.read_bytes(row["body_file"])
    return {**row, "body": body if body is not None else b"[the body is gone from file storage]"}


def _when(seconds: float | None) -> str | None:
    return (
        None
        if seconds is None
        else datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
    )


def summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["_id"],
        "provider": row["provider"],
        "event_id": row["event_id"],
        "type": row.get("type"),
        "status": row["status"],
        "attempts": row["attempts"],
        "received_at": _when(row["received_at"]),
        "last_error": row.get("last_error"),
    }


def is_secret_header(name: str) -> bool:
    lower = name.lower()
    return any(word in lower for word in _SECRET_WORDS)


def header_pairs(row: dict[str, Any]) -> list[tuple[str, str]]:
    """An event's headers as recorded, in order (rows of 0.1.0 kept a dict)."""
    stored = row["headers"]
    if isinstance(stored, dict):
        return list(stored.items())
    return [(name, value) for name, value in stored]


def detail(row: dict[str, Any], body: bytes | None = None) -> dict[str, Any]:
    """Everything, with the raw body as text (invalid UTF-8 replaced) for reading, and the
    values of secret-looking headers as ``[redacted]`` (the CLI, the admin API and the
    dashboard show events through this). A header sent twice is shown once, its values
    joined with ", " (as HTTP reads them). ``body``: a large body, read from file storage."""
    headers: dict[str, str] = {}
    for name, value in header_pairs(row):
        shown = REDACTED if is_secret_header(name) else value
        headers[name] = f"{headers[name]}, {shown}" if name in headers else shown
    raw = row["body"] if body is None else body
    return {
        **summary(row),
        "handler": row["handler"],
        "completed_at": _when(row.get("completed_at")),
        "headers": headers,
        "body": raw.decode("utf-8", errors="replace"),
    }


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
        deployment.scheduler.work_added(writer)

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
            deployment.scheduler.work_added(writer)
        return len(chosen)

    count: int = await deployment.database.transact(again, system=True)
    return count
