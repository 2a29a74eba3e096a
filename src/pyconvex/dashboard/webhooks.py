"""The Webhooks page: recorded events by provider, status and time (live); one event with
its headers (signatures and secrets redacted: the receiver never stores them), attempts
and last error; replay one, or every failed event received since a time; pause and resume
a provider's handlers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..database.system import WEBHOOK_EVENTS
from ..errors import PyConvexError
from ..webhooks import events, operations
from .web import Dashboard

SHOWN = 100
SCANNED = 1000
STATUSES = ("pending", "processing", "succeeded", "failed")


def routes() -> list[tuple[str, Any, list[str]]]:
    return [
        ("/webhooks", page, ["GET"]),
        ("/webhooks/events", rows, ["GET"]),
        ("/webhooks/replay-failed", replay_failed, ["POST"]),
        ("/webhooks/pause", pause, ["POST"]),
        ("/webhooks/resume", resume, ["POST"]),
        ("/webhooks/{event_id}", event_page, ["GET"]),
        ("/webhooks/{event_id}/state", event_state, ["GET"]),
        ("/webhooks/{event_id}/replay", replay, ["POST"]),
    ]


async def _events(d: Dashboard, request: Request) -> tuple[list[dict[str, Any]], str | None]:
    """A page of events, newest first, of the provider and status asked for, and the cursor
    of the next. A filtered page reads at most ``SCANNED`` events (the list polls every
    second), so it may hold fewer than ``SHOWN`` and still have a next one."""
    query = request.query_params
    wanted = {name: query[name] for name in ("provider", "status") if query.get(name)}
    cursor = query.get("cursor") or None
    found: list[dict[str, Any]] = []
    scanned = 0
    async with d.deployment.database.read(system=True) as reader:
        while True:
            batch = await (
                reader.query(WEBHOOK_EVENTS)
                .order("desc")
                .paginate({"num_items": SHOWN, "cursor": cursor})
            )
            scanned += len(batch["page"])
            found.extend(
                row
                for row in batch["page"]
                if all(row[name] == value for name, value in wanted.items())
            )
            cursor = None if batch["is_done"] else batch["continue_cursor"]
            if cursor is None or len(found) >= SHOWN or scanned >= SCANNED:
                break
    return [events.summary(row) for row in found], cursor


async def _listing(d: Dashboard, request: Request) -> dict[str, Any]:
    try:
        found, next_cursor = await _events(d, request)
    except PyConvexError as exc:  # a cursor that is not one of this list's
        return {"events": [], "next_cursor": None, "filters": {}, "error": str(exc)}
    query = request.query_params
    filters = {name: query[name] for name in ("provider", "status") if query.get(name)}
    return {"events": found, "next_cursor": next_cursor, "filters": filters}


async def page(
    d: Dashboard, request: Request, *, error: str | None = None, status: int = 200
) -> Response:
    query = request.query_params
    done = query.get("done", "")
    count = done.removeprefix("replayed-")
    notice = None
    if count.isdigit():  # only a number: the query string is not a place for messages
        noun = "event" if count == "1" else "events"
        notice = f"{count} failed {noun} will be processed again."
    elif done in ("paused", "resumed"):
        notice = f"The provider's handlers are {done}."
    return d.render(
        request,
        "webhooks.html",
        {
            "title": "Webhooks",
            **await _listing(d, request),
            "provider": query.get("provider", ""),
            "status": query.get("status", ""),
            "statuses": STATUSES,
            "query": request.url.query,
            "notice": notice,
            "error": error,
            "paused": await operations.paused(d.deployment),
        },
        status=status,
    )


async def rows(d: Dashboard, request: Request) -> Response:
    return d.render(request, "events.html", await _listing(d, request))


async def _event(d: Dashboard, request: Request, *, body: bool) -> dict[str, Any] | None:
    try:
        return await events.get(d.deployment, request.path_params["event_id"], body=body)
    except (LookupError, ValueError):
        return None


def _missing(d: Dashboard, request: Request) -> Response:
    return d.render(
        request, "missing.html", {"title": "Webhooks", "what": "webhook event"}, status=404
    )


async def event_state(d: Dashboard, request: Request) -> Response:
    """The part of an event's page that changes while it is processed (polled every
    second: a large body is not read for it)."""
    row = await _event(d, request, body=False)
    if row is None:
        return _missing(d, request)
    context = {"event": events.detail(row), "max_attempts": row["max_attempts"]}
    return d.render(request, "event_state.html", context)


async def event_page(d: Dashboard, request: Request) -> Response:
    row = await _event(d, request, body=True)
    if row is None:
        return _missing(d, request)
    detail = events.detail(row)
    headers = sorted(detail["headers"].items())
    return d.render(
        request,
        "event.html",
        {
            "title": "Webhooks",
            "event": detail,
            "max_attempts": row["max_attempts"],
            "headers": headers,
        },
    )


async def replay(d: Dashboard, request: Request) -> Response:
    event_id = request.path_params["event_id"]
    try:
        await operations.replay(d.deployment, event_id)
    except (LookupError, ValueError):
        return _missing(d, request)
    return d.redirect(f"/webhooks/{event_id}")


async def replay_failed(d: Dashboard, request: Request) -> Response:
    since_text = str((await request.form()).get("since", ""))
    try:
        when = datetime.fromisoformat(since_text) if since_text else None
    except ValueError:
        return await page(d, request, error=f"{since_text!r} is not a date and time", status=400)
    # In UTC unless it says otherwise, like every time on the Webhooks pages (a browser's
    # datetime-local has no zone of its own).
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    since = when.timestamp() if when is not None else 0.0
    count = await operations.replay_failed(d.deployment, since)
    return d.redirect(f"/webhooks?done=replayed-{count}")


async def _provider(d: Dashboard, request: Request) -> str | Response:
    provider = str((await request.form()).get("provider", "")).strip()
    if not provider or len(provider) > 100 or not provider.isprintable():
        return await page(d, request, error="Name a provider (stripe, github, ...)", status=400)
    return provider


async def pause(d: Dashboard, request: Request) -> Response:
    return await _switch(d, request, operations.pause, "paused")


async def resume(d: Dashboard, request: Request) -> Response:
    return await _switch(d, request, operations.resume, "resumed")


async def _switch(d: Dashboard, request: Request, change: Any, done: str) -> Response:
    provider = await _provider(d, request)
    if isinstance(provider, Response):
        return provider
    await change(d.deployment, provider)
    return d.redirect(f"/webhooks?done={done}")
