"""``pyconvex webhooks``: list, show, replay and purge recorded events; pause and resume a
provider's handlers. Locally or, with ``--url``, on a running deployment: both through
:func:`pyconvex.webhooks.admin.run`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.markup import escape

from ..deployment import Deployment
from ..webhooks import admin, events
from ..webhooks.operations import parse_time
from . import output
from .commands import err, out
from .remote import Remote


def _request(ns: argparse.Namespace) -> dict[str, Any]:
    """The operation the command line asks for, its times read here (this machine's clock)."""
    request: dict[str, Any] = {"action": ns.action}
    for name in ("id", "provider", "status", "type"):
        if getattr(ns, name) is not None:
            request[name] = getattr(ns, name)
    for name in ("since", "until", "before"):
        if getattr(ns, name) is not None:
            request[name] = parse_time(getattr(ns, name))
    if ns.grep is not None:
        request["text"] = ns.grep
    if ns.failed:
        request["failed"] = True
    if ns.action == "list":
        request["limit"] = ns.limit
    return request


async def webhooks(ns: argparse.Namespace) -> int:
    try:
        request = _request(ns)
        if ns.url:
            answer = Remote(ns.url, ns.app, ns.admin_key).webhooks_op(request)
        else:
            async with Deployment(
                ns.app, database_url=ns.database_url, sync_crons=False
            ) as deployment:
                answer = await admin.run(deployment, request)
    except ValueError as exc:
        err.print(f"[red]✖ {escape(str(exc))}[/]")
        return 2
    except LookupError as exc:
        err.print(f"[red]✖ {escape(str(exc))}[/]")
        return 1
    return _show(ns, answer)


def _show(ns: argparse.Namespace, answer: dict[str, Any]) -> int:
    action = ns.action
    if ns.format == "json" or action == "show":
        shown = answer.get("event", answer.get("events", answer))
        print(json.dumps(shown, indent=2, ensure_ascii=False))
        return 0
    if action == "list":
        return _print_events(answer["events"])
    if action == "replay":
        what = ns.id if not ns.failed else f"{answer['replayed']} failed event(s)"
        err.print(f"[green]✔ {escape(str(what))} will be processed again[/]")
    elif action in ("pause", "resume"):
        name = escape(answer["provider"])
        done = "paused" if action == "pause" else "resumed"
        if answer["changed"]:
            err.print(f"[green]✔ {name}'s handlers are {done}[/]")
        else:
            err.print(f"{name}'s handlers were {done} already")
    elif action == "paused":
        rows = [[p["provider"], events.iso_time(p["paused_at"])] for p in answer["paused"]]
        if not rows:
            err.print("No provider is paused.")
        else:
            output.print_table(out, ["provider", "paused at"], rows)
    else:
        err.print(f"[green]✔ {answer['purged']} event(s) purged[/]")
    return 0


def _print_events(found: list[dict[str, Any]]) -> int:
    if not found:
        err.print("No webhook events yet.")
        return 0
    fields = ["id", "provider", "event_id", "type", "status", "attempts", "received_at"]
    rows = [
        ["" if e[f] is None else str(e[f]) for f in fields] + [e["last_error"] or ""] for e in found
    ]
    headers = ["id", "provider", "event id", "type", "status", "attempts", "received", "last error"]
    output.print_table(out, headers, rows, widest={"last error": 60})
    return 0
