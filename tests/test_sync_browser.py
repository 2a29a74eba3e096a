"""A live query in real Chromium: a static page loads Convex's own browser bundle
(``convex/dist/browser.bundle.js``), subscribes over the sync protocol, and shows what
another client writes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import APPS, Served, static_server
from convex_clients import browser_bundle

PAGE = Path(__file__).parent / "clients" / "page.html"


@pytest.fixture
def page_url() -> Iterator[str]:
    """The page and the bundle, served from an origin of their own."""
    server = static_server({
        "/": (PAGE.read_bytes(), "text/html"),
        "/convex.js": (browser_bundle().read_bytes(), "text/javascript"),
    })  # fmt: skip
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_page_shows_another_clients_write_within_200_ms(
    browser: Any,
    page_url: str,
    serve_app: Callable[..., Served],
) -> None:
    served = serve_app(APPS / "sync")
    page = browser.new_page()
    try:
        page.goto(f"{page_url}#{served.api}")
        page.wait_for_function("window.updates.length === 1")
        assert page.evaluate("window.updates[0].messages") == []

        before = time.time() * 1000
        response = served.call("mutation", "messages:send", {"channel": "browser", "body": "hi"})
        assert response.json()["status"] == "success"
        page.wait_for_function("document.querySelectorAll('#messages li').length === 1")
        assert page.text_content("#messages li") == "hi"
        shown = page.evaluate("window.updates.at(-1).at")
        assert shown - before < 200, f"shown {shown - before:.0f} ms after the write began"

        # The page writes too, and sees its own write.
        page.evaluate("window.send('from the page')")
        page.wait_for_function("document.querySelectorAll('#messages li').length === 2")
        listed = served.call("query", "messages:list", {"channel": "browser"}).json()["value"]
        assert listed == ["hi", "from the page"]
    finally:
        page.close()
