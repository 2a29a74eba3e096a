"""http.webhook: verify, deduplicate, record durably, answer 200, process with retries."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pyconvex.testing import ConvexTest, sign_webhook

SVIX_SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()
DISCORD_PRIVATE = "22" * 32
ENV = {
    "STRIPE_SECRET": "whsec_stripe",
    "GITHUB_SECRET": "gh",
    "SLACK_SECRET": "sl",
    "SVIX_SECRET": SVIX_SECRET,
    "ZOOM_SECRET": "zoom-token",
    "DISCORD_PUBLIC_KEY": Ed25519PrivateKey.from_private_bytes(bytes.fromhex(DISCORD_PRIVATE))
    .public_key()
    .public_bytes(Encoding.Raw, PublicFormat.Raw)
    .hex(),
}
STRIPE_EVENT = {
    "id": "evt_1",
    "type": "checkout.session.completed",
    "data": {"object": {"id": "cs_1"}},
}


@pytest.fixture
async def t(web_app: Path, database_url: str) -> AsyncIterator[ConvexTest]:
    async with ConvexTest(web_app, database_url=database_url) as harness:
        for name, value in ENV.items():
            await harness.deployment.env.set(name, value)
        yield harness


async def post(
    t: ConvexTest, path: str, provider: str, secret: str, body: object, **kwargs: object
):  # type: ignore[no-untyped-def]
    signed = sign_webhook(provider, secret, body, **kwargs)  # type: ignore[arg-type]
    return await t.fetch(path, method="POST", headers=signed.headers, body=signed.body)


async def test_a_delivery_is_recorded_before_the_200_then_processed(t: ConvexTest) -> None:
    response = await post(t, "/hooks/stripe", "stripe", "whsec_stripe", STRIPE_EVENT)
    assert response.status_code == 200 and response.json() == {"received": True}
    [row] = await t.query("webhooks:received")
    assert row["provider"] == "stripe" and row["event_id"] == "evt_1"
    assert row["type"] == "checkout.session.completed"
    assert row["status"] == "pending" and row["attempts"] == 0
    assert dict(json.loads(row["headers"]))["stripe-signature"] == "[redacted]"
    assert await t.query("webhooks:events") == []  # nothing ran before the answer
    await t.finish_scheduled_functions()
    assert await t.query("webhooks:events") == [
        {"provider": "stripe", "event_id": "evt_1", "type": "checkout.session.completed"}
    ]
    [row] = await t.query("webhooks:received")
    assert row["status"] == "succeeded" and row["attempts"] == 1


async def test_a_duplicate_delivery_is_processed_once(t: ConvexTest) -> None:
    first = await post(t, "/hooks/stripe", "stripe", "whsec_stripe", STRIPE_EVENT)
    second = await post(t, "/hooks/stripe", "stripe", "whsec_stripe", STRIPE_EVENT)
    assert first.json() == {"received": True}
    assert second.status_code == 200 and second.json() == {"received": True, "duplicate": True}
    await t.finish_scheduled_functions()
    assert len(await t.query("webhooks:events")) == 1
    assert len(await t.query("webhooks:received")) == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing_header"),
        ({"stripe-signature": "t=1,v1=00"}, "bad_signature"),
        ({"stripe-signature": "junk"}, "malformed_header"),
    ],
)
async def test_bad_deliveries_are_400_and_leave_nothing(
    t: ConvexTest, headers: dict[str, str], reason: str
) -> None:
    response = await t.fetch(
        "/hooks/stripe", method="POST", headers=headers, body=json.dumps(STRIPE_EVENT)
    )
    assert response.status_code == 400
    assert response.json() == {"error": reason}
    assert await t.query("webhooks:received") == []


async def test_a_missing_secret_is_a_400_not_a_500(t: ConvexTest) -> None:
    await t.deployment.env.remove("STRIPE_SECRET")
    response = await post(t, "/hooks/stripe", "stripe", "whsec_stripe", STRIPE_EVENT)
    assert response.status_code == 400 and response.json() == {"error": "no_secret"}


async def test_rotation_two_secrets_in_one_variable(t: ConvexTest) -> None:
    await t.deployment.env.set("STRIPE_SECRET", "whsec_old whsec_stripe")
    response = await post(t, "/hooks/stripe", "stripe", "whsec_stripe", STRIPE_EVENT)
    assert response.status_code == 200


async def test_failing_twice_then_succeeding_ends_succeeded_after_3_attempts(t: ConvexTest) -> None:
    response = await post(t, "/hooks/flaky", "github", "gh", {"zen": "x"}, event_id="delivery-7")
    assert response.status_code == 200
    assert await t.finish_scheduled_functions() == 1
    [row] = await t.query("webhooks:received")
    assert (row["status"], row["attempts"], row["last_error"]) == (
        "pending",
        1,
        "RuntimeError: flaky failure 1",
    )
    await t.finish_all_scheduled_functions()  # moves the clock through the backoff
    [row] = await t.query("webhooks:received")
    assert row["status"] == "succeeded" and row["attempts"] == 3
    # the failed attempts' writes were undone: one insert survives
    assert await t.query("webhooks:events") == [
        {"provider": "github", "event_id": "delivery-7", "type": None}
    ]


async def test_a_handler_that_never_works_ends_failed(t: ConvexTest) -> None:
    await post(t, "/hooks/dead", "github", "gh", {"zen": "x"})
    await t.finish_all_scheduled_functions()
    [row] = await t.query("webhooks:received")
    assert row["status"] == "failed" and row["attempts"] == 3
    assert row["last_error"] == "ValueError: never works"


async def test_slack_url_verification_handshake(t: ConvexTest) -> None:
    body = {
        "type": "url_verification",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
    }
    response = await post(t, "/hooks/slack", "slack", "sl", body)
    assert response.json() == {"challenge": body["challenge"]}
    assert await t.query("webhooks:received") == []


async def test_an_action_handler(t: ConvexTest) -> None:
    response = await post(
        t, "/hooks/svix", "svix", SVIX_SECRET, {"type": "user.created"}, event_id="msg_1"
    )
    assert response.status_code == 200
    await t.finish_scheduled_functions()
    assert await t.query("webhooks:events") == [
        {"provider": "svix", "event_id": "msg_1", "type": "user.created"}
    ]
    [row] = await t.query("webhooks:received")
    assert row["status"] == "succeeded" and row["attempts"] == 1


async def test_replay_of_an_unknown_or_malformed_id_is_a_lookup_error(t: ConvexTest) -> None:
    from pyconvex.webhooks.operations import replay

    with pytest.raises(LookupError, match="is not a webhook event id"):
        await replay(t.deployment, "nope")
    job = await t.mutation("jobs:schedule", {"delay": 60, "tag": "x"})  # another table's id
    with pytest.raises(LookupError, match="is not a webhook event id"):
        await replay(t.deployment, job)
    await post(t, "/hooks/stripe", "stripe", "whsec_stripe", STRIPE_EVENT)
    row = await t.run(lambda ctx: ctx.db.system.query("_webhook_events").first())
    deleted = row["_id"]
    await t.deployment.database.transact(lambda w: w.delete(deleted), system=True)
    with pytest.raises(LookupError, match="No webhook event"):
        await replay(t.deployment, deleted)


async def test_replay_runs_an_event_again(t: ConvexTest) -> None:
    from pyconvex.webhooks.operations import replay

    await post(t, "/hooks/stripe", "stripe", "whsec_stripe", STRIPE_EVENT)
    await t.finish_scheduled_functions()
    [row] = await t.run(lambda ctx: ctx.db.system.query("_webhook_events").collect())
    await replay(t.deployment, row["_id"])
    await t.finish_scheduled_functions()
    assert len(await t.query("webhooks:events")) == 2


async def test_zoom_url_validation_handshake(t: ConvexTest) -> None:
    import hashlib
    import hmac

    body = {"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}}
    response = await post(t, "/hooks/zoom", "zoom", "zoom-token", body)
    expected = hmac.new(b"zoom-token", b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert response.json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}
    assert await t.query("webhooks:received") == []


async def test_discord_ping_is_verified_then_answered(t: ConvexTest) -> None:
    response = await post(t, "/hooks/discord", "discord", DISCORD_PRIVATE, {"type": 1, "id": "i1"})
    assert response.status_code == 200 and response.json() == {"type": 1}
    forged = await post(t, "/hooks/discord", "discord", "33" * 32, {"type": 1, "id": "i2"})
    assert forged.status_code == 400 and forged.json() == {"error": "bad_signature"}
    assert await t.query("webhooks:received") == []


async def test_one_failing_handler_in_a_batch_does_not_hold_back_the_others(
    t: ConvexTest,
) -> None:
    await post(t, "/hooks/stripe", "stripe", "whsec_stripe", {**STRIPE_EVENT, "id": "evt_a"})
    await post(t, "/hooks/dead", "github", "gh", {"x": 1}, event_id="gh_1")
    await post(t, "/hooks/stripe", "stripe", "whsec_stripe", {**STRIPE_EVENT, "id": "evt_b"})
    # All three are due together: one batch, one transaction for their mutation handlers.
    assert await t.deployment.scheduler.run_queues(t.clock.now()) == 3
    assert [e["event_id"] for e in await t.query("webhooks:events")] == ["evt_a", "evt_b"]
    statuses = {
        r["event_id"]: (r["status"], r["attempts"]) for r in await t.query("webhooks:received")
    }
    assert statuses == {
        "evt_a": ("succeeded", 1),
        "gh_1": ("pending", 1),
        "evt_b": ("succeeded", 1),
    }


async def test_a_batch_takes_at_most_its_limit(t: ConvexTest) -> None:
    for n in range(5):
        await post(t, "/hooks/stripe", "stripe", "whsec_stripe", {**STRIPE_EVENT, "id": f"e{n}"})
    scheduler = t.deployment.scheduler
    assert await scheduler.run_queues(t.clock.now(), limit=3) == 3
    assert await scheduler.run_queues(t.clock.now(), limit=3) == 2
    assert await scheduler.run_queues(t.clock.now(), limit=3) == 0
    assert len(await t.query("webhooks:events")) == 5


async def test_an_action_handler_cut_off_by_a_crash_is_retried(t: ConvexTest) -> None:
    await post(t, "/hooks/svix", "svix", SVIX_SECRET, {"type": "user.created"}, event_id="msg_9")
    database = t.deployment.database

    async def claim_as_a_dying_process_would(writer):  # type: ignore[no-untyped-def]
        [row] = await writer.query("_webhook_events").collect()
        await writer.patch(row["_id"], {"status": "processing", "attempts": 1})

    await database.transact(claim_as_a_dying_process_would, system=True)
    assert await t.deployment.scheduler.recover() == 1
    [row] = await t.query("webhooks:received")
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "the server stopped while the handler was running" in row["last_error"]
    await t.finish_all_scheduled_functions()  # past the backoff
    [row] = await t.query("webhooks:received")
    assert (row["status"], row["attempts"]) == ("succeeded", 2)
    assert len(await t.query("webhooks:events")) == 1
