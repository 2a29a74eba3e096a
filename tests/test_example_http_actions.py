"""examples/http_actions, end to end: every endpoint of the guide over real HTTP against
`pyconvex dev`, webhooks signed by the providers' own libraries, stored records checked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Issuer, api_call, wait_until
from pyconvex.values import from_convex_json
from test_cli_serving import Process

EXAMPLE = Path(__file__).parent.parent / "examples" / "http_actions"
ADMIN_KEY = "example-admin-key"
STRIPE_SECRET = "whsec_example_stripe"
CLERK_SECRET = "whsec_" + base64.b64encode(b"example clerk secret 32 bytes!!!").decode()
GITHUB_SECRET = "example-github-secret"


class App:
    def __init__(self, process: Process, issuer: Issuer) -> None:
        self.process = process
        self.site = process.site
        self.api = process.api
        self.issuer = issuer

    def call(self, kind: str, path: str, args: dict[str, Any] | None = None) -> Any:
        return api_call(
            self.api, kind, path, args, headers={"Authorization": f"Convex {ADMIN_KEY}"}
        )

    def table(self, name: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.api}/api/data/{name}", headers={"Authorization": f"Convex {ADMIN_KEY}"}
        )
        assert response.status_code == 200, response.text
        rows = [from_convex_json(doc) for doc in response.json()["documents"]]
        return sorted(rows, key=lambda row: row["_creationTime"])  # type: ignore[index]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    folder = tmp_path_factory.mktemp("example") / "http_actions"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns(".pyconvex", "__pycache__"))
    issuer = Issuer()
    settings = {
        "PYCONVEX_ADMIN_KEY": ADMIN_KEY,
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "CLERK_WEBHOOK_SECRET": CLERK_SECRET,
        "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
        "AUTH_ISSUER_URL": issuer.url,
        "AUTH_APPLICATION_ID": issuer.audience,
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        process = Process("dev", str(folder))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    yield App(process, issuer)
    process.stop()
    issuer.close()


def test_health(app: App) -> None:
    response = httpx.get(f"{app.site}/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_data_echoes_body_authorization_and_filter_with_cors(app: App) -> None:
    origin = "https://app.example.com"
    preflight = httpx.options(
        f"{app.site}/api/data",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    response = httpx.post(
        f"{app.site}/api/data?filter=recent",
        json={"hello": "world", "n": [1, 2]},
        headers={"Authorization": "Bearer test-token", "Origin": origin},
    )
    assert response.status_code == 200
    assert response.json() == {
        "received": {"hello": "world", "n": [1, 2]},
        "authorization": "Bearer test-token",
        "filter": "recent",
    }
    assert response.headers["access-control-allow-origin"] == origin


def test_form_urlencoded_and_multipart(app: App) -> None:
    fields = {"name": "Ada", "email": "ada@example.com"}
    urlencoded = httpx.post(f"{app.site}/api/form", data=fields)
    multipart = httpx.post(f"{app.site}/api/form", data=fields, files={"note": b"attached"})
    assert "multipart/form-data" in multipart.request.headers["content-type"]
    assert urlencoded.json() == multipart.json() == fields
    assert httpx.post(f"{app.site}/api/form", data={"name": "Ada"}).status_code == 400


def test_upload_then_file_redirect(app: App) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    response = httpx.post(
        f"{app.site}/api/upload", content=png, headers={"Content-Type": "image/png"}
    )
    storage_id = response.json()["storageId"]
    redirect = httpx.get(f"{app.site}/files/{storage_id}")
    assert redirect.status_code == 302
    served = httpx.get(redirect.headers["location"])
    assert served.content == png and served.headers["content-type"] == "image/png"
    assert httpx.get(f"{app.site}/files/not-a-storage-id").status_code == 404


def test_items_create_and_list(app: App) -> None:
    created = httpx.post(f"{app.site}/api/items", json={"name": "lamp", "price": 12.5})
    assert created.status_code == 201
    item = created.json()
    assert item["name"] == "lamp" and item["price"] == 12.5 and "_id" in item
    httpx.post(f"{app.site}/api/items", json={"name": "desk"})
    listed = httpx.get(f"{app.site}/api/items?limit=1").json()["items"]
    assert [i["name"] for i in listed] == ["desk"]  # newest first
    assert len(httpx.get(f"{app.site}/api/items?limit=50").json()["items"]) >= 2
    assert httpx.get(f"{app.site}/api/items?limit=0").status_code == 400
    assert httpx.get(f"{app.site}/api/items?limit=x").status_code == 400
    assert httpx.post(f"{app.site}/api/items", json={"price": 1}).status_code == 400
    assert any(row["name"] == "lamp" for row in app.table("items"))


def test_process_statuses(app: App) -> None:
    url = f"{app.site}/api/process"
    assert (
        httpx.post(url, content="data", headers={"Content-Type": "text/plain"}).status_code == 415
    )
    bad = httpx.post(url, content="{nope", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json() == {"error": "Invalid JSON"}
    missing = httpx.post(url, json={"other": 1})
    assert missing.status_code == 400 and "data" in missing.json()["error"]
    ok = httpx.post(url, json={"data": "hello"})
    assert ok.status_code == 200 and ok.json() == {
        "success": True,
        "result": {"kind": "str", "size": 5},
    }
    failed = httpx.post(url, json={"data": "fail"})
    assert failed.status_code == 500 and failed.json() == {"error": "Internal server error"}
    assert "internal detail" not in failed.text
    app.process.wait_for("Processing failed")  # the details went to the logs instead


def _stripe(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    import stripe

    body = json.dumps(payload)
    header = stripe.WebhookSignature.generate_signature_header(
        body, STRIPE_SECRET, timestamp=int(time.time())
    )
    return body.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


def _clerk(payload: dict[str, Any], message_id: str) -> tuple[bytes, dict[str, str]]:
    from svix.webhooks import Webhook

    body = json.dumps(payload)
    now = datetime.now(tz=UTC)
    signature = Webhook(CLERK_SECRET).sign(message_id, now, body)
    headers = {
        "svix-id": message_id,
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": signature,
        "Content-Type": "application/json",
    }
    return body.encode(), headers


def _events(app: App, source: str) -> list[dict[str, Any]]:
    return [row for row in app.table("webhookEvents") if row["source"] == source]


def test_stripe_webhooks(app: App) -> None:
    url = f"{app.site}/webhooks/stripe"
    checkout = {
        "id": "evt_checkout_1",
        "type": "checkout.session.completed",
        "data": {"object": {"id": "cs_1", "customer": "cus_1", "amount_total": 4200}},
    }
    body, headers = _stripe(checkout)
    assert httpx.post(url, content=body, headers=headers).json() == {"received": True}
    # The same delivery again: recorded once, processed once.
    assert httpx.post(url, content=body, headers=headers).json()["duplicate"] is True
    # Missing and bad signatures: 400, nothing recorded.
    assert httpx.post(url, content=body).status_code == 400
    forged = {**headers, "Stripe-Signature": headers["Stripe-Signature"][:-2] + "00"}
    assert httpx.post(url, content=body, headers=forged).status_code == 400
    tampered = body.replace(b"4200", b"1")
    assert httpx.post(url, content=tampered, headers=headers).status_code == 400

    payments = wait_until(lambda: app.table("payments"))
    assert [(p["session_id"], p["customer"], p["amount"]) for p in payments] == [
        ("cs_1", "cus_1", 4200)
    ]
    logged = wait_until(lambda: _events(app, "stripe"))
    assert [(e["event_type"], e["event_id"], e["status"]) for e in logged] == [
        ("checkout.session.completed", "evt_checkout_1", "processed")
    ]


def test_clerk_webhooks_sync_users_and_subscription_updates(app: App) -> None:
    url = f"{app.site}/webhooks/clerk"
    user = {
        "id": "user_clerk_1",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email_addresses": [{"email_address": "ada@example.com"}],
    }
    body, headers = _clerk({"type": "user.created", "data": user}, "msg_1")
    assert httpx.post(url, content=body, headers=headers).status_code == 200
    assert httpx.post(url, content=body).status_code == 400  # no signature
    synced = wait_until(lambda: app.table("users"))
    assert [(u["clerk_id"], u["name"], u["email"]) for u in synced] == [
        ("user_clerk_1", "Ada Lovelace", "ada@example.com")
    ]
    # GET /api/users/<id> through the path prefix.
    found = httpx.get(f"{app.site}/api/users/{synced[0]['_id']}")
    assert found.status_code == 200 and found.json()["clerk_id"] == "user_clerk_1"
    assert httpx.get(f"{app.site}/api/users/nobody").status_code == 404

    renamed = {**user, "first_name": "Augusta"}
    body, headers = _clerk({"type": "user.updated", "data": renamed}, "msg_2")
    httpx.post(url, content=body, headers=headers)
    wait_until(lambda: app.table("users")[0]["name"] == "Augusta Lovelace")

    subscription = {
        "id": "evt_sub_1",
        "type": "customer.subscription.updated",
        "data": {
            "object": {"id": "sub_1", "status": "active", "metadata": {"clerk_id": "user_clerk_1"}}
        },
    }
    body, headers = _stripe(subscription)
    httpx.post(f"{app.site}/webhooks/stripe", content=body, headers=headers)
    wait_until(lambda: app.table("users")[0].get("subscription_status") == "active")

    body, headers = _clerk({"type": "user.deleted", "data": {"id": "user_clerk_1"}}, "msg_3")
    httpx.post(url, content=body, headers=headers)
    wait_until(lambda: app.table("users") == [])
    logged = wait_until(lambda: len(_events(app, "clerk")) == 3 and _events(app, "clerk"))
    assert [(e["event_type"], e["status"]) for e in logged] == [
        ("user.created", "processed"),
        ("user.updated", "processed"),
        ("user.deleted", "processed"),
    ]


def test_github_webhook_by_hand(app: App) -> None:
    # GitHub publishes no Python library; this is its documented scheme (HMAC-SHA256, hex).
    body = json.dumps({"zen": "Design for failure.", "hook_id": 1}).encode()
    signature = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": signature,
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": "delivery-1",
        "Content-Type": "application/json",
    }
    url = f"{app.site}/webhooks/github"
    assert httpx.post(url, content=body, headers=headers).json() == {"received": True}
    bad = httpx.post(url, content=body, headers={**headers, "X-Hub-Signature-256": "sha256=00"})
    assert bad.status_code == 400 and bad.json()["error"] == "Invalid signature"
    assert httpx.post(url, content=body).status_code == 400
    [logged] = _events(app, "github")
    assert (logged["event_type"], logged["event_id"], logged["status"]) == (
        "ping",
        "delivery-1",
        "processed",
    )
    assert logged["payload"]["zen"] == "Design for failure."


def test_api_key_protected_endpoint(app: App) -> None:
    key = app.call("mutation", "keys:create", {"user_id": "user_42", "name": "CI"})
    url = f"{app.site}/api/protected"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"X-API-Key": "sk_wrong"}).status_code == 403
    granted = httpx.get(url, headers={"X-API-Key": key})
    assert granted.status_code == 200 and granted.json()["user_id"] == "user_42"
    [record] = [r for r in app.table("apiKeys") if r["user_id"] == "user_42"]
    assert key not in json.dumps(record) and record["last_used"] is not None
    for _ in range(9):  # ten at once, with the one above
        assert httpx.get(url, headers={"X-API-Key": key}).status_code == 200
    limited = httpx.get(url, headers={"X-API-Key": key})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    other = app.call("mutation", "keys:create", {"user_id": "user_42", "name": "laptop"})
    assert httpx.get(url, headers={"X-API-Key": other}).status_code == 200  # its own limit
    app.call("mutation", "keys:revoke_all", {"user_id": "user_42"})
    assert httpx.get(url, headers={"X-API-Key": key}).status_code == 403


def test_bearer_token_user_endpoint(app: App) -> None:
    url = f"{app.site}/api/user"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer not.a.token"}).status_code == 403
    expired = app.issuer.token(exp=int(time.time()) - 600)
    assert httpx.get(url, headers={"Authorization": f"Bearer {expired}"}).status_code == 403
    token = app.issuer.token(sub="user_clerk_9", email="grace@example.com", name="Grace")
    response = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {
        "identity": {
            "subject": "user_clerk_9",
            "token_identifier": f"{app.issuer.url}|user_clerk_9",
            "email": "grace@example.com",
            "name": "Grace",
        },
        "user": None,  # Clerk has not told us about this user yet
    }
    grace = {"id": "user_clerk_9", "first_name": "Grace", "email_addresses": []}
    body, headers = _clerk({"type": "user.created", "data": grace}, "msg_grace")
    httpx.post(f"{app.site}/webhooks/clerk", content=body, headers=headers)
    wait_until(lambda: any(u["clerk_id"] == "user_clerk_9" for u in app.table("users")))
    response = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert response.json()["user"]["name"] == "Grace"


def test_the_readme_demo_command_serves_this_app() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert first_block[0] == "pip install -e . && pyconvex dev examples/http_actions"
    assert (EXAMPLE / "convex" / "http.py").is_file()
