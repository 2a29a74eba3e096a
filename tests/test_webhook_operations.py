"""Every correctly signed webhook is recorded (API.md section 20), on a real server."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Served, eventually, wait_until
from pyconvex.testing import ConvexTest, sign_webhook
from pyconvex.webhooks import admin, events
from test_workpool import most_at_once

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


# -- webhook operations (API.md section 21), on tests/apps/hooks --------------------------------

HOOKS = Path(__file__).parent / "apps" / "hooks"
GITHUB = "gh-secret"


@pytest.fixture
async def t() -> AsyncIterator[ConvexTest]:
    async with ConvexTest(HOOKS) as harness:
        await harness.deployment.env.set("STRIPE_SECRET", SECRET)
        await harness.deployment.env.set("GITHUB_SECRET", GITHUB)
        yield harness


async def hook(t: ConvexTest, path: str, event_id: str, provider: str = "github") -> None:
    secret = GITHUB if provider == "github" else SECRET
    body = {"id": event_id, "type": path, "n": event_id}
    signed = sign_webhook(provider, secret, body, event_id=event_id, event_type=path)
    answer = await t.fetch(path, method="POST", headers=signed.headers, body=signed.body)
    assert answer.status_code == 200, answer.text


async def run_op(t: ConvexTest, **request: Any) -> dict[str, Any]:
    return await admin.run(t.deployment, request)


async def test_a_paused_provider_records_and_answers_but_runs_nothing_until_resumed(
    t: ConvexTest,
) -> None:
    assert await run_op(t, action="pause", id="github") == {"provider": "github", "changed": True}
    await hook(t, "/hooks/rated", "g1")
    await hook(t, "/hooks/stripe", "s1", provider="stripe")  # another provider runs
    await t.finish_all_scheduled_functions()
    assert await t.query("hooks:handled") == ["s1"]
    [waiting] = (await run_op(t, action="list", provider="github"))["events"]
    assert waiting["status"] == "pending" and waiting["attempts"] == 0
    assert [p["provider"] for p in (await run_op(t, action="paused"))["paused"]] == ["github"]
    assert await run_op(t, action="resume", id="github") == {"provider": "github", "changed": True}
    await t.finish_all_scheduled_functions()
    assert await t.query("hooks:handled") == ["g1", "s1"]


async def test_rate_holds_runs_back_until_the_bucket_refills(t: ConvexTest) -> None:
    for n in range(5):
        await hook(t, "/hooks/rated", f"r{n}")
    await t.finish_scheduled_functions()
    assert len(await t.query("hooks:handled")) == 3  # rate=(3, 60): the others wait
    assert await t.deployment.scheduler.next_due() == pytest.approx(t.clock.now() + 20, abs=1)
    await t.advance(40)  # a token every 20 s
    assert len(await t.query("hooks:handled")) == 5
    statuses = {e["status"] for e in (await run_op(t, action="list"))["events"]}
    assert statuses == {"succeeded"}  # none was dropped


async def test_max_parallelism_bounds_an_endpoints_handlers(tmp_path: Path) -> None:
    from pyconvex.deployment import Deployment

    async with Deployment(HOOKS, database_url=f"sqlite:///{tmp_path}/db.sqlite3") as deployment:
        await deployment.env.set("GITHUB_SECRET", GITHUB)
        test = ConvexTest(HOOKS)
        test.deployment = deployment  # deliver through this deployment's site app
        for n in range(8):
            await hook(test, "/hooks/slow", f"p{n}")
        deployment.scheduler.start()

        async def all_ran() -> bool:
            return len(await deployment.executor.run("hooks:handled")) == 8

        await eventually(all_ran, "the slow handlers never all ran")
        runs = await deployment.executor.run("hooks:runs")
    assert most_at_once(runs) == 2


async def test_a_handler_may_raise_non_retryable_error(t: ConvexTest) -> None:
    await hook(t, "/hooks/refuse", "x1")
    await t.finish_all_scheduled_functions()
    [event] = (await run_op(t, action="list"))["events"]
    assert event["status"] == "failed" and event["attempts"] == 1
    assert event["last_error"] == "NonRetryableError: event x1 cannot be handled"


async def test_every_failed_attempt_is_logged_with_the_event_and_traceback(t: ConvexTest) -> None:
    await hook(t, "/hooks/broken", "b1")
    await t.finish_all_scheduled_functions()
    failures = [line.message for line in t.logs if line.level == "ERROR"]
    assert len(failures) == 2  # max_attempts=2: both attempts
    for message in failures:
        assert "github b1" in message and "Traceback" in message
        assert "RuntimeError: the handler broke" in message


async def test_succeeded_events_are_purged_after_their_retention(t: ConvexTest) -> None:
    await hook(t, "/hooks/stripe", "old", provider="stripe")
    await hook(t, "/hooks/broken", "dead")
    await t.finish_all_scheduled_functions()
    t.clock.advance(86400 + 1)  # retention_days=1
    await t.deployment.scheduler.recover()
    remaining = (await run_op(t, action="list"))["events"]
    assert [e["event_id"] for e in remaining] == ["dead"]  # failed ones are kept
    assert (await run_op(t, action="purge", status="failed"))["purged"] == 1
    assert (await run_op(t, action="list"))["events"] == []


async def test_bulk_replay_and_list_filters(t: ConvexTest) -> None:
    await hook(t, "/hooks/broken", "f1")
    t.clock.advance(100)
    await hook(t, "/hooks/broken", "f2")
    await hook(t, "/hooks/stripe", "s1", provider="stripe")
    await t.finish_all_scheduled_functions()
    failed = (await run_op(t, action="list", status="failed"))["events"]
    assert [e["event_id"] for e in failed] == ["f2", "f1"]
    found = (await run_op(t, action="list", text='"n": "f2"'))["events"]
    assert [e["event_id"] for e in found] == ["f2"]
    by_type = (await run_op(t, action="list", type="/hooks/stripe"))["events"]
    assert [e["event_id"] for e in by_type] == ["s1"]
    assert [
        e["event_id"] for e in (await run_op(t, action="list", provider="stripe"))["events"]
    ] == ["s1"]
    received = {e["event_id"]: e for e in failed}
    since = datetime.fromisoformat(received["f2"]["received_at"]).timestamp()
    assert (await run_op(t, action="replay", failed=True, since=since))["replayed"] == 1
    pending = (await run_op(t, action="list", status="pending"))["events"]
    assert [e["event_id"] for e in pending] == ["f2"] and pending[0]["attempts"] == 0
    with pytest.raises(ValueError, match="needs --since"):
        await run_op(t, action="replay", failed=True)


def test_the_command_line_pauses_lists_and_replays_on_a_running_server(
    serve_app: Callable[..., Served],
) -> None:
    served = serve_app(HOOKS)
    wait_until(lambda: served.deployment.started)
    on_loop(served, served.deployment.env.set("GITHUB_SECRET", GITHUB))
    remote = ["--url", served.api, "--admin-key", served.admin_key]

    def cli(*words: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pyconvex", "webhooks", *words, *remote, "--app", str(HOOKS)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    assert "github's handlers are paused" in cli("pause", "github").stderr
    signed = sign_webhook("github", GITHUB, {"a": 1}, event_id="c1", event_type="push")
    answer = httpx.post(f"{served.site}/hooks/rated", content=signed.body, headers=signed.headers)
    assert answer.status_code == 200
    listed = json.loads(cli("list", "--status", "pending", "--format", "json").stdout)
    assert [e["event_id"] for e in listed] == ["c1"]
    assert "resumed" in cli("resume", "github").stderr
    wait_until(lambda: served.call("query", "hooks:handled").json()["value"] == ["c1"])
    refused = cli("replay", "--failed")
    assert refused.returncode != 0 and "needs --since" in refused.stderr
    assert (
        "0 failed event(s) will be processed again"
        in cli("replay", "--failed", "--since", "1h").stderr
    )


# -- found in review --------------------------------------------------------------------------


async def test_a_throttled_or_paused_endpoint_holds_up_no_other(t: ConvexTest) -> None:
    for n in range(5):
        await hook(t, "/hooks/rated", f"r{n}")
    await t.finish_scheduled_functions()  # three run; two wait for the bucket
    await run_op(t, action="pause", id="github")
    for n in range(30):
        await hook(t, "/hooks/refuse", f"p{n}")  # paused
    await hook(t, "/hooks/stripe", "s1", provider="stripe")
    assert await t.deployment.scheduler.next_due() == pytest.approx(t.clock.now())
    await t.finish_scheduled_functions()
    assert "s1" in await t.query("hooks:handled")


async def test_a_large_body_gone_from_storage_fails_its_event_alone(
    t: ConvexTest,
) -> None:
    big = {"id": "evt_big", "type": "t", "blob": "z" * 70_000}
    signed = sign_webhook("stripe", SECRET, big)
    await t.fetch("/hooks/stripe", method="POST", headers=signed.headers, body=signed.body)
    [row] = await events.recent(t.deployment)
    await t.deployment.files.delete(row["body_file"])  # by hand, on the Files page say
    await hook(t, "/hooks/stripe", "small", provider="stripe")
    await t.finish_all_scheduled_functions()
    assert await t.query("hooks:handled") == ["small"]
    failed = (await run_op(t, action="list", status="failed"))["events"]
    assert [e["event_id"] for e in failed] == ["evt_big"] and failed[0]["attempts"] == 1
    assert "gone from file storage" in failed[0]["last_error"]


async def test_absurd_ids_and_types_are_recorded_and_large_duplicates_store_nothing(
    t: ConvexTest,
) -> None:
    body = {"id": "evt_" + "i" * 3000, "type": "t" * 2_000_000, "blob": "b" * 70_000}
    signed = sign_webhook("stripe", SECRET, body)
    for _ in range(3):
        answer = await t.fetch(
            "/hooks/stripe", method="POST", headers=signed.headers, body=signed.body
        )
        assert answer.status_code == 200
    [row] = await events.recent(t.deployment)
    assert row["event_id"].startswith("sha256:") and len(row["type"]) == 1000
    async with t.deployment.database.read(system=True) as reader:
        assert len(await reader.query("_storage").collect()) == 1  # one copy of the body


def test_a_rate_below_one_is_refused() -> None:
    from pyconvex.webhooks.receiver import WebhookReceiver

    with pytest.raises(ValueError, match="a count of at least 1"):
        WebhookReceiver(provider="stripe", secret_env="S", handler="hooks:record", rate=(0.5, 60))


async def test_the_admin_operation_refuses_absurd_times(t: ConvexTest) -> None:
    with pytest.raises(ValueError, match="finite"):
        await run_op(t, action="list", since=10**400)
    from pyconvex.webhooks.operations import parse_time

    for text in ("nan", "inf", "soon"):
        with pytest.raises(ValueError):
            parse_time(text)


async def test_bulk_operations_go_a_chunk_at_a_time(
    t: ConvexTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyconvex.webhooks import operations

    monkeypatch.setattr(operations, "CHUNK", 2)  # five events: three transactions, pages
    for n in range(5):
        await hook(t, "/hooks/broken", f"c{n}")
    await t.finish_all_scheduled_functions()
    assert (await run_op(t, action="replay", failed=True, since=0.0))["replayed"] == 5
    assert len((await run_op(t, action="list", status="pending"))["events"]) == 5
    await t.finish_all_scheduled_functions()
    assert (await run_op(t, action="purge", status="failed"))["purged"] == 5
    assert (await run_op(t, action="list"))["events"] == []


async def test_one_event_sent_to_two_endpoints_is_handled_by_each_once(t: ConvexTest) -> None:
    signed = sign_webhook("stripe", SECRET, {"id": "evt_both", "type": "t"})
    for path in ("/hooks/stripe", "/hooks/stripe-connect", "/hooks/stripe"):
        answer = await t.fetch(path, method="POST", headers=signed.headers, body=signed.body)
        assert answer.status_code == 200
    assert answer.json() == {"received": True, "duplicate": True}  # the third: a redelivery
    await t.finish_scheduled_functions()
    assert await t.query("hooks:handled") == ["evt_both", "evt_both"]
