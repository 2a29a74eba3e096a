"""Reading and replaying recorded webhook events (``pyconvex webhooks``, ``/api/webhooks``)."""

from __future__ import annotations

import json
from contextlib import aclosing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import ids
from ..background.webhooks import stored_body
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
    from ..deployment import Deployment

__all__ = ["detail", "find", "get", "recent", "summary", "with_body"]


async def recent(deployment: Deployment, limit: int = 50) -> list[dict[str, Any]]:
    """The newest events first."""
    async with deployment.database.read(system=True) as reader:
        rows: list[dict[str, Any]] = await reader.query(WEBHOOK_EVENTS).order("desc").take(limit)
    return rows


MAX_SCAN = 10_000  # events looked at for one filtered list


async def find(
    deployment: Deployment,
    *,
    provider: str | None = None,
    status: str | None = None,
    type: str | None = None,
    since: float | None = None,
    until: float | None = None,
    text: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The newest events first that match every filter given: ``provider``, ``status``,
    ``type`` (exact), received in ``[since, until]`` (epoch seconds), and ``text`` somewhere
    in the raw body (case-insensitive; large bodies are read from file storage). Looks at the
    newest ``MAX_SCAN`` events."""
    needle = text.lower().encode() if text else None
    found: list[dict[str, Any]] = []
    async with (
        deployment.database.read(system=True) as reader,
        aclosing(aiter(reader.query(WEBHOOK_EVENTS).order("desc"))) as rows,
    ):
        scanned = 0
        async for row in rows:
            # Read as it goes: a page of matches stops the scan, not MAX_SCAN events later.
            scanned += 1
            if scanned > MAX_SCAN:
                break
            if (
                (status is not None and row["status"] != status)
                or (provider is not None and row["provider"] != provider)
                or (type is not None and row.get("type") != type)
                or (since is not None and row["received_at"] < since)
                or (until is not None and row["received_at"] > until)
            ):
                continue
            if needle is not None:
                body = (await with_body(deployment, row))["body"]
                if needle not in body.lower():
                    continue
            found.append(row)
            if len(found) >= limit:
                break
    return found


async def get(deployment: Deployment, event_id: str, *, body: bool = True) -> dict[str, Any]:
    """The event ``event_id``, with its raw body read from file storage if it is large
    (``body=False``: as stored, for what never shows the body)."""
    check_event_id(event_id)
    async with deployment.database.read(system=True) as reader:
        row = await reader.get(event_id)
    if row is None:
        raise LookupError(f"No webhook event {event_id}")
    return await with_body(deployment, row) if body else row


async def with_body(deployment: Deployment, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its raw body in ``body``, read from file storage if it is large."""
    if not row.get("body_file"):
        return row
    body = await stored_body(deployment.files, row)
    return {**row, "body": body if body is not None else b"[the body is gone from file storage]"}


def iso_time(seconds: float | None) -> str | None:
    """Epoch seconds as an ISO time in UTC, to the second (None stays None)."""
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
        "received_at": iso_time(row["received_at"]),
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
    return [(name, value) for name, value in json.loads(stored)]


def detail(row: dict[str, Any]) -> dict[str, Any]:
    """Everything, with the raw body as text (invalid UTF-8 replaced) for reading, and the
    values of secret-looking headers as ``[redacted]`` (the CLI, the admin API and the
    dashboard show events through this). A header sent twice is shown once, its values
    joined with ", " (as HTTP reads them). A large body must be in ``row`` already
    (:func:`with_body`)."""
    headers: dict[str, str] = {}
    for name, value in header_pairs(row):
        shown = REDACTED if is_secret_header(name) else value
        headers[name] = f"{headers[name]}, {shown}" if name in headers else shown
    return {
        **summary(row),
        "handler": row["handler"],
        "completed_at": iso_time(row.get("completed_at")),
        "headers": headers,
        "body": row["body"].decode("utf-8", errors="replace"),
    }


def check_event_id(event_id: str) -> None:
    """:class:`LookupError` unless ``event_id`` is the id of a ``_webhook_events`` row."""
    if not ids.is_id_of(event_id, WEBHOOK_EVENTS):
        raise LookupError(f"{event_id!r} is not a webhook event id")
