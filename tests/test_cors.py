"""cors_router and cors_headers, with convex-helpers' semantics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pyconvex import HttpRouter, Response, cors_router
from pyconvex.http.cors import origin_allowed
from pyconvex.testing import ConvexTest

CORS_APP = Path(__file__).parent / "apps" / "cors"
APP = "https://app.example.com"


@pytest.fixture
async def t() -> AsyncIterator[ConvexTest]:
    async with ConvexTest(CORS_APP) as harness:
        yield harness


async def test_preflight_lists_only_the_cors_methods(t: ConvexTest) -> None:
    response = await t.fetch(
        "/api/data",
        method="OPTIONS",
        headers={"Origin": APP, "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-methods"] == "GET, POST"
    assert response.headers["access-control-allow-headers"] == "Content-Type, Authorization"
    assert response.headers["access-control-max-age"] == "86400"
    assert response.headers["vary"] == "Origin"
    assert response.headers["access-control-expose-headers"] == "Content-Range, Accept-Ranges"
    assert "access-control-allow-credentials" not in response.headers


async def test_responses_carry_the_echoed_origin(t: ConvexTest) -> None:
    response = await t.fetch(
        "/api/data?filter=x",
        method="POST",
        headers={"Origin": APP, "Authorization": "Bearer t"},
        json={"a": 1},
    )
    assert response.json() == {"body": {"a": 1}, "authorization": "Bearer t", "filter": "x"}
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["vary"] == "Origin"


async def test_a_disallowed_origin_gets_no_cors_headers(t: ConvexTest) -> None:
    response = await t.fetch("/api/data", headers={"Origin": "https://evil.example.org"})
    assert response.status_code == 200  # not enforced: the browser does the blocking
    assert "access-control-allow-origin" not in response.headers
    preflight = await t.fetch(
        "/api/data", method="OPTIONS", headers={"Origin": "https://evil.example.org"}
    )
    assert preflight.status_code == 204 and "access-control-allow-origin" not in preflight.headers


async def test_enforced_origins_get_403(t: ConvexTest) -> None:
    assert (
        await t.fetch("/strict", headers={"Origin": "https://evil.example.org"})
    ).status_code == 403
    assert (
        await t.fetch("/strict", method="OPTIONS", headers={"Origin": "https://evil.example.org"})
    ).status_code == 403
    assert (await t.fetch("/strict")).status_code == 403  # no Origin at all: not an allowed origin
    ok = await t.fetch("/strict", headers={"Origin": APP})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == APP


async def test_prefix_routes_get_a_prefix_preflight(t: ConvexTest) -> None:
    preflight = await t.fetch("/api/users/42", method="OPTIONS", headers={"Origin": APP})
    assert (
        preflight.status_code == 204 and preflight.headers["access-control-allow-methods"] == "GET"
    )
    response = await t.fetch("/api/users/42", headers={"Origin": APP})
    assert (
        response.json() == {"user": "42"} and response.headers["access-control-allow-origin"] == APP
    )


async def test_wildcard_subdomains_credentials_and_a_sync_handler(t: ConvexTest) -> None:
    response = await t.fetch("/sub", method="PUT", headers={"Origin": "https://shop.example.com"})
    assert response.json() == {"sync": True}
    assert response.headers["access-control-allow-origin"] == "https://shop.example.com"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-expose-headers"] == "X-Total"
    assert response.headers["x-total"] == "3"
    preflight = await t.fetch("/sub", method="OPTIONS", headers={"Origin": "https://example.com"})
    assert preflight.headers["access-control-max-age"] == "60"
    assert preflight.headers["access-control-allow-methods"] == "PUT"
    plain_http = await t.fetch("/sub", method="PUT", headers={"Origin": "http://shop.example.com"})
    assert "access-control-allow-origin" not in plain_http.headers


async def test_the_callable_origin_list_reads_the_environment(
    t: ConvexTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_ORIGIN", "http://127.0.0.1:9999")
    response = await t.fetch("/api/data", headers={"Origin": "http://127.0.0.1:9999"})
    assert response.headers["access-control-allow-origin"] == "http://127.0.0.1:9999"


async def test_cors_headers_helper(t: ConvexTest) -> None:
    response = await t.fetch("/manual", headers={"Origin": APP})
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["vary"] == "Origin"


@pytest.mark.parametrize(
    ("origin", "allowed", "expected"),
    [
        ("https://a.example.com", ["*.example.com"], True),
        ("https://a.b.example.com", ["*.example.com"], True),
        ("https://example.com", ["*.example.com"], True),
        ("https://evilexample.com", ["*.example.com"], False),
        ("http://a.example.com", ["*.example.com"], False),
        ("https://app.example.com", ["https://app.example.com"], True),
        ("https://app.example.com:8443", ["https://app.example.com"], False),
        ("null", ["*"], True),
        ("not a url", ["*.example.com"], False),
    ],
)
def test_origin_patterns(origin: str, allowed: list[str], expected: bool) -> None:
    assert origin_allowed(origin, allowed) is expected


def test_cors_router_refuses_to_clash_with_a_hand_written_options_route() -> None:
    http = HttpRouter()

    async def handler(ctx, request):  # type: ignore[no-untyped-def]
        return Response()

    http.route(path="/x", method="OPTIONS", handler=handler)
    cors = cors_router(http)
    with pytest.raises(ValueError, match="already has an OPTIONS route"):
        cors.route(path="/x", method="GET", handler=handler)
    with pytest.raises(ValueError, match="answers OPTIONS itself"):
        cors.route(path="/y", method="OPTIONS", handler=handler)
    cors.route(path="/z/{id}", method="GET", handler=handler)
    cors.route(path="/z/{id}", method="POST", handler=handler)
    assert [(r, m) for r, m, _ in http.get_routes() if r.startswith("/z")] == [
        ("/z/{id}", "GET"),
        ("/z/{id}", "OPTIONS"),
        ("/z/{id}", "POST"),
    ]
