"""Operating webhook endpoints: replay, pause and resume, purge.

``pyconvex webhooks``, the admin API and the dashboard change recorded events only through
these. Each is one transaction, and wakes the background workers when it makes work.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..background.webhooks import in_status
from ..database.system import WEBHOOK_PAUSES
from .events import check_event_id

if TYPE_CHECKING:
    from ..database import DatabaseReader, DatabaseWriter
    from ..deployment import Deployment

_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_time(text: str, now: float | None = None) -> float:
    """Epoch seconds from ``text``: an ISO 8601 date or time (UTC unless it names a zone),
    epoch seconds, or a time ago (``30m``, ``2h``, ``7d``). :class:`ValueError` otherwise.

        parse_time("2026-12-05T09:00")   # 09:00 UTC
        parse_time("2h")                 # two hours ago
    """
    text = text.strip()
    ago = _AGO.fullmatch(text)
    if ago:
        return (time.time() if now is None else now) - float(ago.group(1)) * _UNITS[ago.group(2)]
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"{text!r} is not a time")
        return seconds
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give an ISO date or time (UTC unless it names a zone), "
            "epoch seconds, or a time ago such as 30m, 2h or 7d"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _fresh(now: float) -> dict[str, Any]:
    """An event's fields when it is to be processed again, with a fresh count of attempts."""
    return {
        "status": "pending",
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": now,
        "claimed_by": None,
    }


async def replay(deployment: Deployment, event_id: str) -> None:
    """Process an event again now (whatever its status), with a fresh count of attempts;
    :class:`LookupError` if there is no such event."""
    check_event_id(event_id)

    async def again(writer: DatabaseWriter) -> None:
        system = writer.system_writer()
        row = await system.get(event_id)
        if row is None:
            raise LookupError(f"No webhook event {event_id}")
        if row["status"] == "processing":  # two runs at once, one outcome lost
            raise ValueError(f"Webhook event {event_id} is being processed now: replay it after")
        await system.patch(row["_id"], _fresh(deployment.scheduler.clock()))
        deployment.scheduler.work_added(writer)

    await deployment.database.transact(again, system=True)


CHUNK = 500  # events changed per transaction by a bulk operation


async def _matching(
    deployment: Deployment, status: str, keep: Callable[[dict[str, Any]], bool]
) -> list[str]:
    """The ids of the events in ``status`` that ``keep`` chooses, read a page at a time (a
    bulk operation never holds every event, body and all, at once)."""
    ids: list[str] = []
    cursor = None
    async with deployment.database.read(system=True) as reader:
        while True:
            page = await in_status(reader, status).paginate({"num_items": CHUNK, "cursor": cursor})
            ids += [row["_id"] for row in page["page"] if keep(row)]
            if page["is_done"]:
                return ids
            cursor = page["continue_cursor"]


async def _in_chunks(
    deployment: Deployment,
    ids: list[str],
    status: str,
    change: Callable[[DatabaseWriter, dict[str, Any]], Awaitable[None]],
    *,
    wake: bool = False,
) -> int:
    """``change`` each event of ``ids`` still in ``status``, ``CHUNK`` per transaction;
    how many. ``wake``: the changes are work for the workers, woken once per chunk."""
    done = 0
    for start in range(0, len(ids), CHUNK):

        async def apply(
            writer: DatabaseWriter, chunk: list[str] = ids[start : start + CHUNK]
        ) -> int:
            system = writer.system_writer()
            changed = 0
            for event_id in chunk:
                row = await system.get(event_id)
                if row is not None and row["status"] == status:
                    await change(writer, row)
                    changed += 1
            if wake and changed:
                deployment.scheduler.work_added(writer)
            return changed

        done += await deployment.database.transact(apply, system=True)
    return done


async def replay_failed(deployment: Deployment, since: float, provider: str | None = None) -> int:
    """Process again every failed event received at or after ``since`` (epoch seconds), of
    ``provider`` if given; how many."""
    ids = await _matching(
        deployment,
        "failed",
        lambda row: row["received_at"] >= since and provider in (None, row["provider"]),
    )

    async def again(writer: DatabaseWriter, row: dict[str, Any]) -> None:
        await writer.system_writer().patch(row["_id"], _fresh(deployment.scheduler.clock()))

    return await _in_chunks(deployment, ids, "failed", again, wake=True)


async def pause(deployment: Deployment, provider: str) -> bool:
    """Run no handler for ``provider``'s events until :func:`resume` (deliveries are still
    verified, recorded and answered 200); whether it was running."""

    async def stop(writer: DatabaseWriter) -> bool:
        system = writer.system_writer()
        if await _pause_row(system, provider) is not None:
            return False
        await system.insert(WEBHOOK_PAUSES, {"provider": provider, "paused_at": time.time()})
        return True

    changed: bool = await deployment.database.transact(stop, system=True)
    return changed


async def resume(deployment: Deployment, provider: str) -> bool:
    """Run ``provider``'s handlers again, the events that waited first; whether it was
    paused."""

    async def go(writer: DatabaseWriter) -> bool:
        system = writer.system_writer()
        row = await _pause_row(system, provider)
        if row is None:
            return False
        await system.delete(row["_id"])
        deployment.scheduler.work_added(writer)
        return True

    changed: bool = await deployment.database.transact(go, system=True)
    return changed


async def paused(deployment: Deployment) -> list[dict[str, Any]]:
    """The paused providers, with when each was paused."""
    async with deployment.database.read(system=True) as reader:
        rows = await reader.query(WEBHOOK_PAUSES).collect()
    return [{"provider": row["provider"], "paused_at": row["paused_at"]} for row in rows]


async def _pause_row(reader: DatabaseReader, provider: str) -> dict[str, Any] | None:
    row: dict[str, Any] | None = await (
        reader.query(WEBHOOK_PAUSES)
        .with_index("by_provider", lambda q: q.eq("provider", provider))
        .first()
    )
    return row


async def purge(
    deployment: Deployment,
    status: str,
    *,
    before: float | None = None,
    provider: str | None = None,
) -> int:
    """Delete the events in ``status`` (``failed`` or ``succeeded``) received before
    ``before`` (all, if None), of ``provider`` if given, with their large bodies; how many."""
    if status not in ("failed", "succeeded"):
        raise ValueError(f"Only failed or succeeded events can be purged, not {status!r}")
    files = deployment.files
    ids = await _matching(
        deployment,
        status,
        lambda row: (
            (before is None or row["received_at"] < before) and provider in (None, row["provider"])
        ),
    )

    async def delete(writer: DatabaseWriter, row: dict[str, Any]) -> None:
        await writer.system_writer().delete(row["_id"])
        if row.get("body_file"):
            await files.delete_in(writer, row["body_file"])

    return await _in_chunks(deployment, ids, status, delete)
