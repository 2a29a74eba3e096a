"""CORS in a real browser: headless Chromium fetches a pyconvex endpoint from another origin."""

from __future__ import annotations

from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import Served, static_server

CORS_APP = Path(__file__).parent / "apps" / "cors"

PAGE = """<!doctype html><html><body><pre id="out"></pre><script>
fetch("%(site)s/api/data?filter=recent", {
  method: "POST",
  headers: {"Content-Type": "application/json", "Authorization": "Bearer page-token"%(extra)s},
  body: JSON.stringify({hello: "from the page"}),
}).then(r => r.json()).then(
  data => { document.getElementById("out").textContent = JSON.stringify(data); },
  error => { document.getElementById("out").textContent = "blocked: " + error; },
);
</script></body></html>"""


def page_server(site: str, extra_header: str = "") -> ThreadingHTTPServer:
    extra = f', "{extra_header}": "1"' if extra_header else ""
    server: ThreadingHTTPServer = static_server(
        {"/": ((PAGE % {"site": site, "extra": extra}).encode(), "text/html")}
    )
    return server


def read_result(browser: object, url: str) -> str:
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        page.goto(url)
        page.wait_for_function("document.getElementById('out').textContent !== ''")
        return str(page.text_content("#out"))
    finally:
        page.close()


def test_an_allowed_origin_passes_the_preflight_and_reads_the_json(
    serve_app: Callable[..., Served], browser: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    served = serve_app(CORS_APP)
    allowed = page_server(served.site)
    blocked = page_server(served.site)
    too_much = page_server(served.site, extra_header="X-Not-Allowed")
    try:
        origin = f"http://127.0.0.1:{allowed.server_address[1]}"
        extra_origin = f"http://127.0.0.1:{too_much.server_address[1]}"
        monkeypatch.setenv("ALLOWED_ORIGIN", origin)
        result = read_result(browser, origin + "/")
        assert json.loads(result) == {
            "body": {"hello": "from the page"},
            "authorization": "Bearer page-token",
            "filter": "recent",
        }
        # A page from an origin that is not allowed cannot read the answer.
        refused = read_result(browser, f"http://127.0.0.1:{blocked.server_address[1]}/")
        assert refused.startswith("blocked: TypeError")
        # An allowed origin sending a header the preflight does not allow is stopped by the
        # preflight itself: the browser really asked OPTIONS and read its answer.
        monkeypatch.setenv("ALLOWED_ORIGIN", extra_origin)
        assert read_result(browser, extra_origin + "/").startswith("blocked: TypeError")
    finally:
        for server in (allowed, blocked, too_much):
            server.shutdown()
            server.server_close()
