"""``pyconvex webhooks`` as one JSON operation, run here or by a server (``POST
/api/webhooks/op`` with the admin key), so the command line has one code path for both.

    await run(deployment, {"action": "replay", "failed": True, "since": 1764900000.0})
    # {"replayed": 3}
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from . import events, operations

if TYPE_CHECKING:
    from ..deployment import Deployment

ACTIONS = ("list", "show", "replay", "pause", "resume", "paused", "purge")


def _text(request: dict[str, Any], name: str) -> str | None:
    value = request.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _time(request: dict[str, Any], name: str) -> float | None:
    value = request.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be epoch seconds")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be a finite number of epoch seconds")
    return seconds


def _required(request: dict[str, Any], name: str, what: str) -> str:
    value = _text(request, name)
    if not value:
        raise ValueError(f"pyconvex webhooks {request['action']} needs {what}")
    return value


async def run(deployment: Deployment, request: dict[str, Any]) -> dict[str, Any]:
    """Carry out one operation; its JSON answer. :class:`ValueError` for a request that
    makes no sense (a 400), :class:`LookupError` for an event that is not there (a 404)."""
    action = request.get("action")
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    provider = _text(request, "provider")
    if action == "list":
        limit = request.get("limit", 50)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValueError("limit must be a whole number from 1 to 1000")
        found = await events.find(
            deployment,
            provider=provider,
            status=_text(request, "status"),
            type=_text(request, "type"),
            since=_time(request, "since"),
            until=_time(request, "until"),
            text=_text(request, "text"),
            limit=limit,
        )
        return {"events": [events.summary(row) for row in found]}
    if action == "show":
        event_id = _required(request, "id", "an event ID (see webhooks list)")
        return {"event": events.detail(await events.get(deployment, event_id))}
    if action == "replay":
        if request.get("failed"):
            since = _time(request, "since")
            if since is None:
                raise ValueError("pyconvex webhooks replay --failed needs --since TIME")
            return {"replayed": await operations.replay_failed(deployment, since, provider)}
        await operations.replay(deployment, _required(request, "id", "an event ID or --failed"))
        return {"replayed": 1}
    if action in ("pause", "resume"):
        name = _required(request, "id", "a PROVIDER (stripe, github, ...)")
        change = operations.pause if action == "pause" else operations.resume
        return {"provider": name, "changed": await change(deployment, name)}
    if action == "paused":
        return {"paused": await operations.paused(deployment)}
    status = _text(request, "status")
    if status not in ("failed", "succeeded"):
        raise ValueError("pyconvex webhooks purge needs --status failed or --status succeeded")
    before = _time(request, "before")
    return {"purged": await operations.purge(deployment, status, before=before, provider=provider)}
