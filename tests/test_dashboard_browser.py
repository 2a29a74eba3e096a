"""The dashboard in a real browser: headless Chromium (Playwright) against a real server.

One server (tests/apps/dashboard) and one signed-in browser context serve the whole module;
each test opens its own page, and makes the data it looks at (names carry a fresh suffix,
so the tests do not depend on one another's order). Nothing waits a fixed time: Playwright's
``expect`` polls, and a live region must show a change within ``LIVE`` ms (the pages poll
every second and promise 2 s).

PYCONVEX_SCREENSHOTS=1 makes ``test_screenshots`` write docs/images/dashboard-<page>.png.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Coroutine, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from conftest import APPS, Served, static_server, wait_until
from pyconvex.testing import sign_webhook

APP = APPS / "dashboard"
IMAGES = Path(__file__).parent.parent / "docs" / "images"
LIVE = 5000  # ms: a live region promises 2 s; this leaves room for a slow machine
NAV = ["Health", "Data", "Functions", "Logs", "Schedules", "Webhooks", "Files", "Environment"]
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
SECRET = "github-test-secret"

T = TypeVar("T")


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = Served(APP, tmp_path_factory.mktemp("dashboard"))
    with server:
        httpx.get(url(server, "/login"), timeout=30)  # answered once the deployment started
        on_loop(server, server.deployment.env.set("GITHUB_SECRET", SECRET))
        yield server


@pytest.fixture(scope="module")
def signed_in(browser: Browser, served: Served) -> Iterator[BrowserContext]:
    """A browser context signed in to the dashboard, at 1280x800."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in(page, served)
    expect(page).to_have_url(url(served, "/health"))
    page.close()
    yield context
    context.close()


@pytest.fixture
def page(signed_in: BrowserContext) -> Iterator[Page]:
    """A new page of the signed-in context; confirmation dialogs are accepted."""
    page = signed_in.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    page.close()


# -- helpers ---------------------------------------------------------------------------------


def url(served: Served, path: str) -> str:
    return f"{served.api}/dashboard{path}"


def on_loop(served: Served, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the server's event loop and return its result (or raise its error)."""
    return asyncio.run_coroutine_threadsafe(coro, served.loop).result(timeout=30)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sign_in(page: Page, served: Served, key: str | None = None) -> None:
    page.goto(url(served, "/login"))
    page.get_by_label("Admin key").fill(served.admin_key if key is None else key)
    page.get_by_role("button", name="Sign in").click()


def heading(page: Page, name: str) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text(name)


def insert_notes(served: Served, texts: list[str]) -> list[str]:
    async def write(w: Any) -> list[str]:
        return [await w.insert("notes", {"text": text}) for text in texts]

    return on_loop(served, served.deployment.database.transact(write))


def get_doc(served: Served, doc_id: str) -> dict[str, Any] | None:
    async def read() -> dict[str, Any] | None:
        async with served.deployment.database.read() as reader:
            doc: dict[str, Any] | None = await reader.get(doc_id)
            return doc

    return on_loop(served, read())


def env(served: Served) -> dict[str, str]:
    return on_loop(served, served.deployment.env.list())


def call(served: Served, kind: str, path: str, args: Any = None) -> Any:
    result = served.call(kind, path, args).json()
    assert result["status"] == "success", result
    return result["value"]


def deliver(served: Served, delivery: str, payload: dict[str, Any]) -> dict[str, str]:
    """A signed GitHub delivery to the app's webhook; the headers it was sent with."""
    signed = sign_webhook("github", SECRET, payload, event_id=delivery, event_type="push")
    response = httpx.post(
        served.site + "/hooks/github", content=signed.body, headers=signed.headers
    )
    assert response.status_code < 300, response.text
    return signed.headers


# -- signing in ------------------------------------------------------------------------------


def test_a_wrong_key_is_refused_and_the_right_one_opens_health(
    browser: Browser, served: Served
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url(served, "/"))
        expect(page).to_have_url(url(served, "/login"))  # not signed in: sent to sign in
        sign_in(page, served, key="not-the-key")
        expect(page.get_by_role("alert")).to_have_text("That is not this deployment's admin key")
        expect(page).to_have_url(url(served, "/login"))
        heading(page, "Sign in")
        assert context.cookies() == []

        page.get_by_label("Admin key").fill(served.admin_key)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(url(served, "/health"))
        heading(page, "Health")
        [cookie] = context.cookies()
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert served.admin_key not in cookie["value"]
    finally:
        context.close()


def test_the_sign_in_link_signs_in_at_once(browser: Browser, served: Served) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url(served, f"/login#key={served.admin_key}"))
        expect(page).to_have_url(url(served, "/health"))
        heading(page, "Health")
    finally:
        context.close()


# -- Health ----------------------------------------------------------------------------------


def test_health_draws_charts_and_shows_a_function_once_called(page: Page, served: Served) -> None:
    page.goto(url(served, "/health"))
    expect(page.locator(".chart canvas")).to_have_count(5)
    table = page.locator("#function-health")
    expect(table).not_to_contain_text("notes:list")
    call(served, "query", "notes:list")
    expect(table).to_contain_text("notes:list", timeout=LIVE)  # live, without a reload


def test_health_draws_its_charts_when_reached_from_the_navigation(
    page: Page, served: Served
) -> None:
    page.goto(url(served, "/data"))
    page.get_by_role("link", name="Health", exact=True).click()
    heading(page, "Health")
    expect(page.locator(".chart canvas")).to_have_count(5)


# -- Data ------------------------------------------------------------------------------------


def test_data_lists_tables_and_pages_through_a_table(page: Page, served: Served) -> None:
    tag = unique("page")
    insert_notes(served, [f"{tag}-{i}" for i in range(30)])
    page.goto(url(served, "/data"))
    heading(page, "Data")
    row = page.locator("tr", has=page.get_by_role("link", name="notes", exact=True))
    expect(row).to_have_count(1)
    count = int(row.locator("td.num").inner_text())
    assert count >= 30

    row.get_by_role("link", name="notes").click()
    expect(page).to_have_url(url(served, "/data/notes"))
    docs = page.locator("table.docs tbody tr")
    expect(docs).to_have_count(25)
    expect(docs.first).to_contain_text(f"{tag}-29")  # newest first
    page.get_by_text("Schema and indexes").click()
    declared = served.deployment.database.schema
    assert declared is not None
    schema = page.locator("details.schema")
    expect(schema).to_contain_text(str(declared.tables["notes"].document))
    expect(schema).to_contain_text("by_text")
    page.get_by_role("link", name="Next page").click()
    expect(page.get_by_role("link", name="First page")).to_be_visible()
    expect(docs.first).to_contain_text(f"{tag}-4")
    assert docs.count() == min(25, count - 25)

    # Filter by a field: typed without quotes, the value is a string.
    page.get_by_label("Field").fill("text")
    page.get_by_label("Equals").fill(f"{tag}-7")
    page.get_by_role("button", name="Filter").click()
    expect(docs).to_have_count(1)
    expect(docs.first).to_contain_text(f'"{tag}-7"')


def test_a_rejected_edit_shows_the_validators_message_and_stores_nothing(
    page: Page, served: Served
) -> None:
    [doc_id] = insert_notes(served, ["before the edit"])
    with pytest.raises(Exception) as refused:  # the same write, straight to the database
        on_loop(
            served, served.deployment.database.transact(lambda w: w.replace(doc_id, {"text": 5}))
        )
    message = str(refused.value)
    assert message

    page.goto(url(served, f"/data/notes/{doc_id}"))
    editor = page.get_by_label("Document (JSON)")
    assert json.loads(editor.input_value()) == {"text": "before the edit"}
    editor.fill('{"text": 5}')
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_have_text(message)
    assert page.get_by_role("alert").text_content() == message  # to the character
    expect(page.get_by_label("Document (JSON)")).to_have_value('{"text": 5}')  # kept to fix
    stored = get_doc(served, doc_id)
    assert stored is not None and stored["text"] == "before the edit" and "stars" not in stored

    page.get_by_label("Document (JSON)").fill('{"text": "after the edit", "stars": 3}')
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    stored = get_doc(served, doc_id)
    assert stored is not None and (stored["text"], stored.get("stars")) == ("after the edit", 3)

    page.get_by_role("button", name="Delete").click()  # the confirmation is accepted
    expect(page.get_by_role("status")).to_have_text("Deleted.")
    expect(page).to_have_url(re.compile(r"/dashboard/data/notes\?"))
    assert get_doc(served, doc_id) is None


def test_a_stored_script_is_shown_as_text_and_never_runs(page: Page, served: Served) -> None:
    script = "<script>window.pwned=1</script>"
    page.goto(url(served, "/data/notes"))
    page.get_by_label("New document (JSON)").fill(json.dumps({"text": script}))
    page.get_by_role("button", name="Insert").click()
    expect(page.get_by_role("status")).to_have_text("Inserted.")
    expect(page.get_by_label("Document (JSON)")).to_have_value(
        json.dumps({"text": script}, indent=2)
    )
    assert page.evaluate("typeof window.pwned") == "undefined"

    page.goto(url(served, "/data/notes"))
    expect(page.locator("table.docs td", has_text=script).first).to_have_text(f'"{script}"')
    assert page.locator("table.docs script").count() == 0
    assert page.evaluate("typeof window.pwned") == "undefined"


# -- Functions -------------------------------------------------------------------------------


def test_functions_lists_every_function_with_its_validators(page: Page, served: Served) -> None:
    page.goto(url(served, "/functions"))
    heading(page, "Functions")
    functions = served.deployment.app.functions
    assert "notes:add" in functions and "hooks:on_push" in functions
    for name, fn in functions.items():
        row = page.locator("tr", has=page.get_by_role("link", name=name, exact=True))
        expect(row).to_have_count(1)
        expect(row).to_contain_text(str(fn.args) if fn.args is not None else "any")
        expect(row).to_contain_text(str(fn.returns) if fn.returns is not None else "any")
    expect(page.locator("tr", has_text="/hooks/github")).to_contain_text("POST")


def test_run_a_function_with_args_and_see_its_result_and_log_line(
    page: Page, served: Served
) -> None:
    text = unique("from the dashboard")
    page.goto(url(served, "/functions"))
    page.get_by_role("link", name="notes:add", exact=True).click()
    page.get_by_label("Arguments (JSON)").fill(json.dumps({"text": text}))
    page.get_by_role("button", name="Run").click()
    result = page.locator("pre.result")
    expect(result).to_be_visible()
    doc_id = json.loads(result.inner_text())
    stored = get_doc(served, doc_id)
    assert stored is not None and stored["text"] == text
    expect(page.locator("pre.loglines")).to_contain_text(f"adding a note: {text}")


def test_run_a_function_as_an_identity(page: Page, served: Served) -> None:
    page.goto(url(served, "/functions/notes:whoami"))
    page.get_by_role("button", name="Run").click()
    expect(page.locator("pre.result")).to_have_text("null")  # as admin: no identity
    page.get_by_label("Act as identity").fill('{"name": "Ada"}')
    page.get_by_role("button", name="Run").click()
    expect(page.locator("pre.result")).to_have_text('"Ada"')


def test_a_failing_function_shows_its_error(page: Page, served: Served) -> None:
    page.goto(url(served, "/functions/notes:broken"))
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_role("heading", name="Failed")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("this query always breaks")


# -- Logs ------------------------------------------------------------------------------------


def test_logs_show_a_new_line_live_and_filter_by_text(page: Page, served: Served) -> None:
    tag = unique("live")
    page.goto(url(served, "/logs"))
    heading(page, "Logs")
    page.evaluate("window.sameDocument = true")
    call(served, "mutation", "notes:add", {"text": tag})
    lines = page.locator("table.logs tbody tr")
    expect(lines.filter(has_text=f"adding a note: {tag}")).to_have_count(1, timeout=LIVE)
    expect(lines.filter(has_text=tag).first).to_contain_text("notes:add")
    assert page.evaluate("window.sameDocument") is True  # no reload

    page.get_by_label("Text", exact=True).fill(tag)
    page.get_by_role("button", name="Filter").click()
    expect(lines).to_have_count(1)
    # The filtered tail stays live, and keeps to its filter.
    call(served, "mutation", "notes:add", {"text": "not matching " + tag[::-1]})
    call(served, "mutation", "notes:add", {"text": tag + " again"})
    expect(lines).to_have_count(2, timeout=LIVE)
    expect(lines.first).to_contain_text(f"adding a note: {tag} again")
    expect(page.locator("table.logs")).not_to_contain_text("not matching")

    # A line's request id opens the lines of that request alone.
    lines.first.get_by_role("link").click()
    expect(page.get_by_label("Request id")).not_to_have_value("")
    expect(lines).to_have_count(1)
    expect(lines.first).to_contain_text(f"{tag} again")


# -- Schedules -------------------------------------------------------------------------------


def test_a_scheduled_job_is_listed_live_and_can_be_canceled(page: Page, served: Served) -> None:
    page.goto(url(served, "/schedules"))
    heading(page, "Schedules")
    job_id = call(served, "mutation", "notes:remind", {"text": unique("reminder")})
    row = page.locator("tr", has_text=job_id)
    expect(row).to_contain_text("pending", timeout=LIVE)  # appears without a reload
    expect(row).to_contain_text("notes:add_later")
    row.get_by_role("button", name=re.compile("Cancel")).click()
    expect(page.get_by_role("status")).to_have_text("Canceled.")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("canceled")
    expect(row.get_by_role("button")).to_have_count(0)


# -- Webhooks --------------------------------------------------------------------------------


def break_hooks(served: Served) -> None:
    """The app's webhook handler fails until notes:fix_hooks runs again."""

    async def unfix(w: Any) -> None:
        for row in await w.query("fixes").collect():
            await w.delete(row["_id"])

    on_loop(served, served.deployment.database.transact(unfix))


def status_cell(page: Page, delivery: str) -> Any:
    return page.locator("tr", has_text=delivery).locator("td").nth(4)


def stored_event(served: Served, delivery: str) -> dict[str, Any] | None:
    from pyconvex.webhooks import events

    rows = on_loop(served, events.recent(served.deployment, 1000))
    return next((row for row in rows if row["event_id"] == delivery), None)


def test_a_failed_delivery_is_listed_live_and_shown_with_its_headers_redacted(
    page: Page, served: Served
) -> None:
    break_hooks(served)
    delivery = unique("delivery")
    page.goto(url(served, "/webhooks"))
    heading(page, "Webhooks")
    headers = deliver(served, delivery, {"ref": "refs/heads/main"})
    expect(status_cell(page, delivery)).to_have_text("failed", timeout=LIVE)  # live
    row = page.locator("tr", has_text=delivery)
    cells = [cell.strip() for cell in row.locator("td").all_inner_texts()]
    assert cells[1:6] == ["github", delivery, "push", "failed", "1"], cells

    row.get_by_role("link").click()
    expect(page.locator("dd[data-status]")).to_have_text("failed")
    expect(page.locator(".facts")).to_contain_text("the handler is broken until fix_hooks runs")
    table = page.locator("table", has=page.get_by_role("columnheader", name="Value"))
    signature = headers["x-hub-signature-256"]
    for name, value in headers.items():
        shown = table.locator("tr", has=page.get_by_role("cell", name=name, exact=True))
        expect(shown).to_have_count(1)
        redacted = "[redacted]" if name == "x-hub-signature-256" else value
        expect(shown.locator("td").nth(1)).to_have_text(redacted)
    assert signature not in page.content()


def test_replay_on_an_event_page_shows_it_succeed_live(
    page: Page, signed_in: BrowserContext, served: Served
) -> None:
    break_hooks(served)
    delivery = unique("delivery")
    deliver(served, delivery, {"ref": "refs/heads/main"})
    page.goto(url(served, "/webhooks"))
    expect(status_cell(page, delivery)).to_have_text("failed", timeout=LIVE)
    page.locator("tr", has_text=delivery).get_by_role("link").click()
    expect(page.locator("dd[data-status]")).to_have_text("failed")
    watcher = signed_in.new_page()  # another tab, left open on the same event
    try:
        watcher.goto(page.url)
        expect(watcher.locator("dd[data-status]")).to_have_text("failed")

        call(served, "mutation", "notes:fix_hooks")
        page.get_by_role("button", name="Replay").click()
        wait_until(lambda: (stored_event(served, delivery) or {}).get("status") == "succeeded", 5)
        # Both tabs follow the event's status live (the one that pressed Replay may have
        # been shown "pending" by the redirect).
        expect(watcher.locator("dd[data-status]")).to_have_text("succeeded", timeout=LIVE)
        expect(page.locator("dd[data-status]")).to_have_text("succeeded", timeout=LIVE)
    finally:
        watcher.close()


def test_replay_failed_replays_every_failed_event_since_a_time(page: Page, served: Served) -> None:
    break_hooks(served)
    since = datetime.now().replace(microsecond=0)
    deliveries = [unique("delivery"), unique("delivery")]
    for delivery in deliveries:
        deliver(served, delivery, {"ref": "refs/heads/main"})
    page.goto(url(served, "/webhooks"))
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    for delivery in deliveries:
        expect(status_cell(page, delivery)).to_have_text("failed", timeout=LIVE)
    expect(page.locator("tbody tr", has_not_text="failed")).to_have_count(0)

    call(served, "mutation", "notes:fix_hooks")
    from pyconvex.webhooks import events

    rows = on_loop(served, events.recent(served.deployment, 1000))
    due = [r for r in rows if r["status"] == "failed" and r["received_at"] >= since.timestamp()]
    page.get_by_label("Failed since").fill(since.isoformat())
    page.get_by_role("button", name="Replay failed").click()
    expect(page.get_by_role("status")).to_have_text(
        f"{len(due)} failed events will be processed again."
    )
    for delivery in deliveries:  # the list shows them succeed, live
        expect(status_cell(page, delivery)).to_have_text("succeeded", timeout=LIVE)


# -- Files -----------------------------------------------------------------------------------


def test_upload_download_and_delete_a_file(page: Page, served: Served) -> None:
    content = f"hello from {unique('the browser')}\n".encode()
    page.goto(url(served, "/files"))
    heading(page, "Files")
    page.get_by_label("File", exact=True).set_input_files(
        {"name": "hello.txt", "mimeType": "text/plain", "buffer": content}
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status")).to_have_text("Uploaded.")
    row = page.locator("tbody tr", has_text=str(len(content))).filter(has_text="text/plain")
    expect(row).to_have_count(1)

    download = row.get_by_role("link", name=re.compile("^Download"))
    href = download.get_attribute("href")
    assert href is not None
    fetched = page.request.get(href)
    assert fetched.status == 200 and fetched.body() == content

    storage_id = row.locator("td").first.inner_text().strip()
    row.get_by_role("button", name=f"Delete {storage_id}").click()
    expect(page.get_by_role("status")).to_have_text("Deleted.")
    expect(page.locator("tr", has_text=storage_id)).to_have_count(0)
    assert page.request.get(href).status == 404


def test_a_stored_html_file_cannot_act_as_the_signed_in_admin(page: Page, served: Served) -> None:
    # Stored files are served on the dashboard's origin: opened inline, this page's script
    # could read the Environment page and post changes with the admin's session.
    name = "PWNED_" + uuid.uuid4().hex[:8].upper()
    script = (
        "<script>fetch('/dashboard/environment').then(r => r.text()).then(html => {"
        ' const csrf = html.match(/name="csrf" value="([^"]+)"/)[1];'
        " const body = new URLSearchParams({csrf, name: 'NAME', value: 'x'});"
        " return fetch('/dashboard/environment', {method: 'POST', body}); })"
        ".then(() => { document.title = 'done'; });</script>"
    ).replace("NAME", name)
    stored = on_loop(served, served.deployment.files.store(script.encode(), "text/html"))
    file_url = served.deployment.files.url(stored)
    answer = page.request.get(file_url)
    assert answer.headers["content-security-policy"] == "sandbox"
    assert answer.headers["content-disposition"] == "attachment"
    assert answer.headers["x-content-type-options"] == "nosniff"
    with page.expect_download():  # a download, not a page of the dashboard's origin
        page.evaluate("url => { location.href = url; }", file_url)
    page.goto(url(served, "/environment"))  # and the admin's session still works as before
    heading(page, "Environment")
    assert name not in env(served)


# -- Environment -----------------------------------------------------------------------------


def set_variable(page: Page, name: str, value: str) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Value", exact=True).fill(value)
    page.get_by_role("button", name="Set", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Saved.")


def test_set_show_change_and_remove_a_variable(page: Page, served: Served) -> None:
    name, value = "DASH_" + uuid.uuid4().hex[:8].upper(), unique("s3cret")
    page.goto(url(served, "/environment"))
    heading(page, "Environment")
    set_variable(page, name, value)
    assert env(served)[name] == value
    expect(page.locator("tr", has_text=name)).to_have_count(1)
    assert value not in page.content()  # hidden until asked for

    page.get_by_role("link", name=f"Show {name}").click()
    expect(page.locator("tr", has_text=name)).to_contain_text(value)

    set_variable(page, name, value + "-changed")
    assert env(served)[name] == value + "-changed"
    assert value not in page.content()

    page.get_by_role("button", name=f"Remove {name}").click()
    expect(page.get_by_role("status")).to_have_text("Removed.")
    expect(page.locator("tr", has_text=name)).to_have_count(0)
    assert name not in env(served)


# -- CSRF ------------------------------------------------------------------------------------

ATTACK = """<!doctype html><html><body>
<form id="f" method="post" action="%(action)s">
<input name="name" value="%(name)s"><input name="value" value="pwned">
</form><script>document.getElementById("f").submit();</script></body></html>"""


def attack(page: Page, served: Served, host: str, name: str) -> int:
    """Load a page from another origin (on ``host``) that posts a form to the dashboard."""
    action = url(served, "/environment")
    server = static_server(
        {"/": ((ATTACK % {"action": action, "name": name}).encode(), "text/html")}
    )
    try:
        with page.expect_response(lambda r: r.url == action) as answer:
            page.goto(f"http://{host}:{server.server_address[1]}/")
        return answer.value.status
    finally:
        server.shutdown()
        server.server_close()


def test_a_change_from_another_origin_or_without_a_token_is_refused(
    page: Page, served: Served
) -> None:
    page.goto(url(served, "/environment"))  # signed in, in this browser context
    cross_site, same_site, no_token = (unique("CROSS").replace("-", "_") for _ in range(3))
    # localhost is another site: the SameSite=Strict cookie is not sent (no session: 403).
    assert attack(page, served, "localhost", cross_site) == 403
    # Another port of 127.0.0.1 is the same site (the cookie goes) but another origin, and
    # the form has no CSRF token.
    assert attack(page, served, "127.0.0.1", same_site) == 403
    # From the dashboard's own origin but without the CSRF token.
    page.goto(url(served, "/environment"))
    status = page.evaluate(
        """async (name) => {
            const body = new URLSearchParams({name, value: "pwned"});
            return (await fetch("/dashboard/environment", {method: "POST", body})).status;
        }""",
        no_token,
    )
    assert status == 403
    variables = env(served)
    assert not {cross_site, same_site, no_token} & set(variables)


# -- accessibility and layout ----------------------------------------------------------------


def seed(served: Served) -> dict[str, str]:
    """Something on every page (a pending job, an event, a file, a variable); page paths."""
    [doc_id] = insert_notes(served, ["a note to look at"])
    call(served, "mutation", "notes:add", {"text": "a logged note"})
    call(served, "mutation", "notes:remind", {"text": "later"})
    delivery = unique("seed")
    deliver(served, delivery, {"ref": "refs/heads/main"})
    on_loop(served, served.deployment.env.set("SEEDED", "hidden"))
    file_id = on_loop(served, served.deployment.files.store(_once(b"seed"), "text/plain"))
    assert file_id
    event = stored_event(served, delivery)
    assert event is not None, "the delivery was not recorded"
    return {
        "health": "/health",
        "data": "/data",
        "table": "/data/notes",
        "document": f"/data/notes/{doc_id}",
        "functions": "/functions",
        "function": "/functions/notes:add",
        "logs": "/logs",
        "schedules": "/schedules",
        "webhooks": "/webhooks",
        "event": f"/webhooks/{event['_id']}",
        "files": "/files",
        "environment": "/environment",
    }


async def _once(data: bytes) -> Any:
    yield data


def loaded(page: Page, served: Served, path: str) -> None:
    page.goto(url(served, path))
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    if path == "/health":
        expect(page.locator(".chart canvas")).to_have_count(5)


UNNAMED = """() => [...document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, [role=button]")]
  .filter((el) => {
    const label = el.getAttribute("aria-label") || (el.labels && [...el.labels]
      .map((l) => l.textContent).join(" ")) || "";
    const text = ["A", "BUTTON"].includes(el.tagName) ? el.textContent : "";
    return !(label.trim() || text.trim());
  })
  .map((el) => el.outerHTML.slice(0, 120))"""


def every_page(
    page: Page, browser: Browser, served: Served, probe: str, viewport: ViewportSize
) -> dict[str, Any]:
    """``probe`` (a JS function) on every page, and on the sign-in page signed out: what it
    returned where that is not empty."""
    found = {}
    page.set_viewport_size(viewport)
    for name, path in seed(served).items():
        loaded(page, served, path)
        if result := page.evaluate(probe):
            found[name] = result
    signed_out = browser.new_page(viewport=viewport)  # a context of its own
    try:
        loaded(signed_out, served, "/login")
        if result := signed_out.evaluate(probe):
            found["sign-in"] = result
    finally:
        signed_out.close()
    return found


def test_every_control_has_an_accessible_name(page: Page, browser: Browser, served: Served) -> None:
    assert every_page(page, browser, served, UNNAMED, DESKTOP) == {}


def test_tab_reaches_the_navigation_in_order_and_enter_follows_a_link(
    page: Page, served: Served
) -> None:
    page.goto(url(served, "/health"))
    focused = []
    for _ in range(len(NAV) + 3):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.textContent.trim()"))
        if focused[-1] == NAV[-1]:
            break
    assert focused[-len(NAV) :] == NAV, focused

    page.goto(url(served, "/health"))
    for _ in range(focused.index("Data") + 1):
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(url(served, "/data"))
    heading(page, "Data")


WIDER = """() => document.documentElement.scrollWidth > window.innerWidth + 1
    ? document.documentElement.scrollWidth : 0"""


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_no_page_scrolls_sideways(
    page: Page, browser: Browser, served: Served, viewport: ViewportSize
) -> None:
    wide = every_page(page, browser, served, WIDER, viewport)
    assert wide == {}, f"pages wider than {viewport['width']} px (their scroll widths)"


# -- screenshots -----------------------------------------------------------------------------

SHOTS = "health data document functions logs schedules webhooks event files environment"


def test_screenshots(page: Page, served: Served, tmp_path: Path) -> None:
    """One screenshot per page at 1280x800: into docs/images with PYCONVEX_SCREENSHOTS=1."""
    keep = os.environ.get("PYCONVEX_SCREENSHOTS") == "1"
    folder = IMAGES if keep else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    paths = seed(served)
    call(served, "query", "notes:list")
    page.set_viewport_size(DESKTOP)
    for name in SHOTS.split():
        loaded(page, served, paths[name])
        if name == "health":
            expect(page.locator("#function-health")).to_contain_text("notes:list", timeout=LIVE)
        shot = folder / f"dashboard-{name}.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 1000
