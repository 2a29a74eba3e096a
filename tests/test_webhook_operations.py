"""Every correctly signed webhook is recorded (API.md section 20), on a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from conftest import Served, wait_until
from pyconvex.testing import sign_webhook
from pyconvex.webhooks import events

SECRET = "whsec_stripe"


def served_web(serve_app: Callable[..., Served], web_app: Path) -> Served:
    served = serve_app(web_app)
    wait_until(lambda: served.deployment.started)
    on_loop(served, served.deployment.env.set("STRIPE_SECRET", SECRET))
    return served


def on_loop(served: Served, coroutine: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coroutine, served.loop).result(timeout=30)


def deliver(served: Served, event: dict[str, Any], headers: Any = ()) -> httpx.Response:
    signed = sign_webhook("stripe", SECRET, event)
    return httpx.post(
        f"{served.site}/hooks/stripe",
        content=signed.body,
        headers=[*signed.headers.items(), *headers],
        timeout=60,
    )


def handled(served: Served) -> list[str]:
    return [e["event_id"] for e in served.call("query", "webhooks:events").json()["value"]]


def test_a_10_mib_delivery_is_recorded_in_file_storage_and_processed(
    serve_app: Callable[..., Served], web_app: Path
) -> None:
    served = served_web(serve_app, web_app)
    blob = "x" * (10 * 1024 * 1024)
    event = {"id": "evt_big", "type": "invoice.created", "data": {"blob": blob}}
    response = deliver(served, event)
    assert response.status_code == 200 and response.json() == {"received": True}
    wait_until(lambda: handled(served) == ["evt_big"])
    [row] = on_loop(served, events.recent(served.deployment))
    assert row["status"] == "succeeded" and row["body"] == b"" and row["body_file"]
    shown = events.detail(on_loop(served, events.get(served.deployment, row["_id"])))
    assert json.loads(shown["body"])["data"]["blob"] == blob
    # the same delivery again is a duplicate, and leaves no second copy of the body
    again = deliver(served, event)
    assert again.json() == {"received": True, "duplicate": True}
    files = on_loop(served, _file_count(served))
    assert files == 1


async def _file_count(served: Served) -> int:
    async with served.deployment.database.read(system=True) as reader:
        return len(await reader.query("_storage").collect())


def test_any_header_names_are_recorded(serve_app: Callable[..., Served], web_app: Path) -> None:
    served = served_web(serve_app, web_app)
    odd = [("$dollar", "1"), ("x-" + "n" * 2000, "long"), ("x-twice", "a"), ("x-twice", "b")]
    many = [(f"x-h{n}", str(n)) for n in range(80)]
    response = deliver(served, {"id": "evt_odd", "type": "t"}, headers=odd + many)
    assert response.status_code == 200, response.text
    wait_until(lambda: handled(served) == ["evt_odd"])
    [row] = on_loop(served, events.recent(served.deployment))
    shown = events.detail(row)["headers"]
    assert shown["$dollar"] == "1" and shown["x-" + "n" * 2000] == "long"
    assert shown["x-twice"] == "a, b" and shown["x-h79"] == "79"
    assert shown["stripe-signature"] == "[redacted]"


def test_a_body_over_the_limit_is_413_and_nothing_is_recorded(
    serve_app: Callable[..., Served], web_app: Path
) -> None:
    served = served_web(serve_app, web_app)
    event = {"id": "evt_huge", "type": "t", "data": "y" * (21 * 1024 * 1024)}
    assert deliver(served, event).status_code == 413
    assert on_loop(served, events.recent(served.deployment)) == []
