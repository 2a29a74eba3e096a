"""The dashboard over HTTP: sign-in, its cookie, CSRF, throttling, secrets kept hidden.
(What a user does in it, in real Chromium: test_dashboard_browser.py.)"""

import asyncio
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Served, wait_until
from pyconvex.webhooks import operations

APP = Path(__file__).parent / "apps" / "dashboard"


@pytest.fixture
def served(serve_app: Callable[..., Served]) -> Served:
    return serve_app(APP)


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.api) as client:
        yield client


def sign_in(client: httpx.Client, served: Served) -> str:
    """Signs in; the CSRF token of the session."""
    answer = client.post("/dashboard/login", data={"key": served.admin_key})
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/health"
    return csrf_of(client.get("/dashboard/environment").text)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def run(served: Served, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, served.loop).result(timeout=30)


def test_pages_need_a_session(client: httpx.Client):
    for path in ("/dashboard/", "/dashboard/health", "/dashboard/data/notes", "/dashboard/logs"):
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/login"
    refused = client.post("/dashboard/environment", data={"name": "A", "value": "b"})
    assert refused.status_code == 403


def test_the_session_cookie_is_http_only_and_same_site_strict(client: httpx.Client, served: Served):
    answer = client.post("/dashboard/login", data={"key": served.admin_key})
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
    assert "secure" not in cookie  # plain HTTP on loopback: a Secure cookie would never return
    page = client.get("/dashboard/health")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


def test_behind_https_the_cookie_is_secure(client: httpx.Client, served: Served):
    # A proxy on loopback (trusted by default) terminates TLS and says so.
    answer = client.post(
        "/dashboard/login",
        data={"key": served.admin_key},
        headers={
            "x-forwarded-proto": "https",
            "origin": f"https://{httpx.URL(served.api).netloc.decode()}",
        },
    )
    assert answer.status_code == 303
    assert "; secure" in answer.headers["set-cookie"].lower()


def test_a_wrong_key_is_refused_and_five_in_a_minute_make_it_wait(
    client: httpx.Client, served: Served
):
    for _ in range(5):
        wrong = client.post("/dashboard/login", data={"key": "not-the-key"})
        assert wrong.status_code == 401 and "That is not this deployment" in wrong.text
        assert "set-cookie" not in wrong.headers
    held = client.post("/dashboard/login", data={"key": served.admin_key})
    assert held.status_code == 429 and int(held.headers["retry-after"]) > 0
    assert "set-cookie" not in held.headers  # not even the right key, until the minute is over


def test_a_change_needs_the_csrf_token_and_changes_nothing_without_it(
    client: httpx.Client, served: Served
):
    csrf = sign_in(client, served)
    missing = client.post("/dashboard/environment", data={"name": "A", "value": "1"})
    assert missing.status_code == 403
    forged = client.post(
        "/dashboard/environment", data={"name": "A", "value": "1", "csrf": "x" * 64}
    )
    assert forged.status_code == 403
    other_site = client.post(
        "/dashboard/environment",
        data={"name": "A", "value": "1", "csrf": csrf},
        headers={"origin": "http://evil.example"},
    )
    assert other_site.status_code == 403
    assert "A" not in run(served, served.deployment.env.list())
    done = client.post("/dashboard/environment", data={"name": "A", "value": "1", "csrf": csrf})
    assert done.status_code == 303
    assert run(served, served.deployment.env.list())["A"] == "1"


def test_a_session_of_another_key_is_not_accepted(client: httpx.Client, served: Served):
    from pyconvex.dashboard.signin import COOKIE_NAME, Signer

    client.cookies.set(COOKIE_NAME, Signer("some other key").new_session(), path="/dashboard")
    assert client.get("/dashboard/health").status_code == 303


def test_env_values_stay_hidden_until_shown(client: httpx.Client, served: Served):
    csrf = sign_in(client, served)
    client.post(
        "/dashboard/environment", data={"name": "STRIPE_KEY", "value": "sk_live_42", "csrf": csrf}
    )
    page = client.get("/dashboard/environment").text
    assert "STRIPE_KEY" in page and "sk_live_42" not in page
    assert "sk_live_42" in client.get("/dashboard/environment?show=STRIPE_KEY").text


def test_webhook_signatures_are_redacted(client: httpx.Client, served: Served):
    from pyconvex.webhooks.signing import sign_webhook

    sign_in(client, served)
    run(served, served.deployment.env.set("GITHUB_SECRET", "s3cret"))
    delivery = sign_webhook("github", "s3cret", {"zen": "hi"}, event_type="push")
    answer = httpx.post(
        f"{served.site}/hooks/github", content=delivery.body, headers=delivery.headers
    )
    assert answer.status_code == 200
    listing = client.get("/dashboard/webhooks/events").text
    event_id = re.search(r'/dashboard/webhooks/([0-9a-z]+)"', listing).group(1)
    page = client.get(f"/dashboard/webhooks/{event_id}").text
    signature = delivery.headers["x-hub-signature-256"]
    assert "X-Hub-Signature-256".lower() in page.lower() and "[redacted]" in page
    assert signature not in page
    assert "push" in page  # the type; the other headers are listed as they came


def test_stored_markup_is_text(client: httpx.Client, served: Served):
    csrf = sign_in(client, served)
    script = "<script>alert(1)</script>"
    inserted = client.post(
        "/dashboard/data/notes", data={"document": f'{{"text": "{script}"}}', "csrf": csrf}
    )
    assert inserted.status_code == 303
    for path in ("/dashboard/data/notes", inserted.headers["location"]):
        page = client.get(path).text
        assert script not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_rejected_edit_stores_nothing(client: httpx.Client, served: Served):
    csrf = sign_in(client, served)
    note = served.call("mutation", "notes:add", {"text": "kept"}).json()["value"]
    page = client.get(f"/dashboard/data/notes/{note}").text
    version = re.search(r'name="version" value="([^"]+)"', page).group(1)
    refused = client.post(
        f"/dashboard/data/notes/{note}",
        data={"document": '{"text": 5}', "version": version, "csrf": csrf},
    )
    assert refused.status_code == 400
    assert "Path: .text" in refused.text and "Validator: v.string()" in refused.text
    assert served.call("query", "notes:list").json()["value"][0]["text"] == "kept"


def test_limits_on_posts(client: httpx.Client, served: Served):
    csrf = sign_in(client, served)
    too_big = client.post(
        "/dashboard/data/notes",
        content=b"x" * (served.backend.max_body + 1),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert too_big.status_code == 413
    assert csrf


def test_no_dashboard(serve_app: Callable[..., Served]):
    served = serve_app(APP, dashboard=False)
    assert httpx.get(f"{served.api}/dashboard/login").status_code == 404


def test_page_views_are_not_traffic_but_changes_are(client: httpx.Client, served: Served):
    # The pages poll every second: their views would bury the dev console's access lines.
    seen: list[tuple[str, str]] = []
    served.backend.request_observers.append(lambda h: seen.append((h.method, h.path)))
    csrf = sign_in(client, served)
    client.get("/dashboard/logs/lines")
    client.post("/dashboard/environment", data={"name": "SEEN", "value": "1", "csrf": csrf})
    served.call("query", "notes:list")
    wait_until(lambda: ("POST", "/api/query") in seen)
    assert ("POST", "/dashboard/login") in seen and ("POST", "/dashboard/environment") in seen
    assert not [path for method, path in seen if method == "GET"]


def test_wrong_keys_sent_at_once_are_still_counted(served: Served):
    # Every request's headers first; a "100 Continue" says its handler waits for the body.
    # Only then the bodies: counting must leave no gap in which all twenty check the key.
    url = httpx.URL(served.api)

    async def guess_all() -> list[int]:
        connections = [await asyncio.open_connection(url.host, url.port) for _ in range(20)]
        for i, (_, writer) in enumerate(connections):
            body = f"key=guess-{i:02d}".encode()
            writer.write(
                b"POST /dashboard/login HTTP/1.1\r\nHost: %b\r\n" % url.netloc
                + b"Content-Type: application/x-www-form-urlencoded\r\n"
                + b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)
            )
            await writer.drain()
        for reader, _ in connections:
            assert b" 100 " in await reader.readuntil(b"\r\n\r\n")
        for i, (_, writer) in enumerate(connections):
            writer.write(f"key=guess-{i:02d}".encode())
            await writer.drain()
        statuses = []
        for reader, writer in connections:
            statuses.append(int((await reader.readline()).split()[1]))
            writer.close()
        return statuses

    statuses = asyncio.run(guess_all())
    assert statuses.count(401) == 5 and statuses.count(429) == 15


def test_hostile_input_is_a_clear_4xx_never_a_500(client: httpx.Client, served: Served):
    from pyconvex.dashboard.signin import COOKIE_NAME

    odd_cookie = {"cookie": f"{COOKIE_NAME}=1.a.\u00e9".encode("latin-1")}
    assert httpx.get(f"{served.api}/dashboard/login", headers=odd_cookie).status_code == 200
    csrf = sign_in(client, served)
    assert client.post("/dashboard/environment", data={"csrf": "\u00e9" * 64}).status_code == 403
    deep = "[" * 5000 + "]" * 5000
    inserted = client.post("/dashboard/data/notes", data={"document": deep, "csrf": csrf})
    assert inserted.status_code == 400 and "not valid JSON" in inserted.text
    assert (
        client.get("/dashboard/data/notes", params={"field": "text", "value": deep}).status_code
        == 200
    )
    removed = client.post("/dashboard/environment/remove", data={"name": "no such", "csrf": csrf})
    assert removed.status_code == 400
    assert client.get("/dashboard/data/no_such_table").status_code == 404
    note = served.call("mutation", "notes:add", {"text": "twice"}).json()["value"]
    for _ in range(2):  # a double click
        gone = client.post(f"/dashboard/data/notes/{note}/delete", data={"csrf": csrf})
        assert gone.status_code == 303
    phishing = client.get(
        "/dashboard/webhooks", params={"done": "replayed-Sign in at evil.example"}
    )
    assert phishing.status_code == 200 and 'role="status"' not in phishing.text
    bad_time = client.post(
        "/dashboard/webhooks/replay-failed", data={"since": "soon", "csrf": csrf}
    )
    assert bad_time.status_code == 400 and "is not a date and time" in bad_time.text


def test_a_save_never_undoes_a_change_made_meanwhile(client: httpx.Client, served: Served):
    csrf = sign_in(client, served)
    note = served.call("mutation", "notes:add", {"text": "first"}).json()["value"]
    page = client.get(f"/dashboard/data/notes/{note}").text
    version = re.search(r'name="version" value="([^"]+)"', page).group(1)
    run(served, served.deployment.executor.run_in_mutation(
        lambda ctx: ctx.db.patch(note, {"text": "changed meanwhile"})
    ))  # fmt: skip
    stale = {"document": '{"text": "mine"}', "version": version, "csrf": csrf}
    refused = client.post(f"/dashboard/data/notes/{note}", data=stale)
    assert refused.status_code == 400 and "changed since you opened it" in refused.text
    again = client.post(f"/dashboard/data/notes/{note}", data=stale)  # the same text, again
    assert again.status_code == 400
    assert served.call("query", "notes:list").json()["value"][0]["text"] == "changed meanwhile"
    fresh = re.search(
        r'name="version" value="([^"]+)"', client.get(f"/dashboard/data/notes/{note}").text
    )
    saved = client.post(
        f"/dashboard/data/notes/{note}",
        data={"document": '{"text": "mine"}', "version": fresh.group(1), "csrf": csrf},
    )
    assert saved.status_code == 303


def test_files_come_a_page_at_a_time(client: httpx.Client, served: Served):
    sign_in(client, served)
    stored = [
        run(served, served.deployment.files.store(b"%d" % i, "text/plain")) for i in range(52)
    ]
    first = client.get("/dashboard/files").text
    assert stored[-1] in first and stored[1] not in first
    older = re.search(r'href="(/dashboard/files\?cursor=[^"]+)">Older files', first)
    second = client.get(older.group(1).replace("&amp;", "&")).text
    assert stored[1] in second and stored[0] in second and stored[-1] not in second
    assert "Older files" not in second
    assert client.get("/dashboard/files?cursor=garbage").status_code == 200  # the error, shown


def test_webhook_events_filter_by_status_and_provider(client: httpx.Client, served: Served):
    from pyconvex.webhooks.signing import sign_webhook

    sign_in(client, served)
    run(served, served.deployment.env.set("GITHUB_SECRET", "s3cret"))
    for i in range(3):
        delivery = sign_webhook(
            "github", "s3cret", {"n": i}, event_id=f"evt-{i}", event_type="push"
        )
        sent = httpx.post(
            f"{served.site}/hooks/github", content=delivery.body, headers=delivery.headers
        )
        assert sent.status_code == 200
    wait_until(
        lambda: client.get("/dashboard/webhooks/events?status=failed").text.count("evt-") == 3
    )
    assert "evt-" not in client.get("/dashboard/webhooks/events?status=succeeded").text
    assert "evt-" not in client.get("/dashboard/webhooks/events?provider=stripe").text
    assert (
        client.get("/dashboard/webhooks/events?provider=github&status=failed").text.count("evt-")
        == 3
    )


def test_a_filtered_event_list_reads_a_bounded_number_of_events(
    client: httpx.Client, served: Served, monkeypatch: pytest.MonkeyPatch
):
    from pyconvex.dashboard import webhooks
    from pyconvex.webhooks.signing import sign_webhook

    monkeypatch.setattr(webhooks, "SHOWN", 2)
    monkeypatch.setattr(webhooks, "SCANNED", 4)
    sign_in(client, served)
    run(served, served.deployment.env.set("GITHUB_SECRET", "s3cret"))
    for i in range(7):
        delivery = sign_webhook("github", "s3cret", {"n": i}, event_id=f"evt-{i}")
        httpx.post(f"{served.site}/hooks/github", content=delivery.body, headers=delivery.headers)
    wait_until(
        lambda: client.get("/dashboard/webhooks/events?status=failed").text.count("evt-") == 2
    )
    seen: list[str] = []
    path = "/dashboard/webhooks/events?provider=stripe"  # matches nothing: pages of 4 read
    for _ in range(3):
        page = client.get(path).text
        assert "evt-" not in page
        older = re.search(r'href="/dashboard(/webhooks\?[^"]+)">Older events', page)
        seen.append(older.group(1) if older else "")
        if not older:
            break
        path = "/dashboard" + older.group(1).replace("/webhooks?", "/webhooks/events?").replace(
            "&amp;", "&"
        )
    assert seen[0] and seen[-1] == ""  # a next page after the first 4, none after all 7
    bad = client.get("/dashboard/webhooks/events?cursor=garbage")
    assert bad.status_code == 200 and 'role="alert"' in bad.text


def test_a_malformed_origin_is_refused_not_a_500(client: httpx.Client, served: Served):
    for header in ("origin", "referer"):
        answer = client.post(
            "/dashboard/login", data={"key": served.admin_key}, headers={header: "http://[::1"}
        )
        assert answer.status_code == 403
    listing = httpx.get(f"{served.api}/api/webhooks", params={"limit": "²"}, headers=served.admin)
    assert listing.status_code == 200  # "²".isdigit(), but not a number


def test_secret_looking_headers_are_redacted_everywhere() -> None:
    from pyconvex.webhooks.events import is_secret_header

    for name in ("paypal-transmission-sig", "x-webhook-auth", "x-api-key", "x-jwt", "cookie"):
        assert is_secret_header(name), name
    for name in ("content-type", "x-github-event", "user-agent", "x-github-delivery"):
        assert not is_secret_header(name), name


def test_a_provider_is_paused_and_resumed_from_the_webhooks_page(
    client: httpx.Client, served: Served
):
    csrf = sign_in(client, served)
    assert "None: every provider" in client.get("/dashboard/webhooks").text
    refused = client.post("/dashboard/webhooks/pause", data={"provider": "stripe"})
    assert refused.status_code == 403  # no CSRF token: nothing paused
    assert run(served, operations.paused(served.deployment)) == []
    paused = client.post("/dashboard/webhooks/pause", data={"provider": "stripe", "csrf": csrf})
    assert paused.status_code == 303
    page = client.get(paused.headers["location"]).text
    assert "are paused" in page and 'aria-label="Resume stripe"' in page
    assert [p["provider"] for p in run(served, operations.paused(served.deployment))] == ["stripe"]
    blank = client.post("/dashboard/webhooks/pause", data={"provider": " ", "csrf": csrf})
    assert blank.status_code == 400 and "Name a provider" in blank.text
    resumed = client.post("/dashboard/webhooks/resume", data={"provider": "stripe", "csrf": csrf})
    assert resumed.status_code == 303
    assert run(served, operations.paused(served.deployment)) == []
