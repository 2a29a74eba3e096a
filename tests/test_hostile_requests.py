"""Requests a hostile client sends, against a real server on loopback (API.md section 20,
issue 18): nothing a client sends is a 500 or a hang.

Deep JSON is a 400 naming the path (function API, HTTP actions, sync messages); an absurd
``Range`` is a 416; ``POST /api/*`` takes only ``application/json``; ``dev`` answers the
API port only for names of this machine (DNS rebinding); a ``Content-Length`` over the
limit is a 413 before the body. Then hypothesis sends request lines, headers and bodies to
the API port and to the site port of examples/http_actions.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import string
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from conftest import APPS, Served
from test_sync_protocol import Client

HOSTILE = APPS / "hostile"
EXAMPLE = Path(__file__).parent.parent / "examples" / "http_actions"
JSON = {"Content-Type": "application/json"}
FUNCTION_ROUTES = [
    ("/api/query", "probe:echo"),
    ("/api/mutation", "probe:keep"),
    ("/api/action", "probe:act"),
    ("/api/query_at_ts", "probe:echo"),
]


def nested(depth: int, leaf: Any = 1) -> Any:
    """``leaf`` inside ``depth`` lists."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def deep_text(depth: int) -> str:
    """The same as JSON text, without building it (a million levels is no Python value)."""
    return "[" * depth + "1" + "]" * depth


def function_body(route: str, name: str, value_json: str, *, listed: bool = False) -> bytes:
    """A function call's body with ``value_json`` as ``args.value`` (``listed``: args in a
    one-element array, as Convex's clients send them)."""
    args = '{"value": ' + value_json + "}"
    if listed:
        args = "[" + args + "]"
    if route.startswith("/api/run/"):
        return ('{"args": ' + args + "}").encode()
    return ('{"path": "' + name + '", "args": ' + args + "}").encode()


@pytest.fixture
def hostile(serve_app: Callable[..., Served]) -> Served:
    return serve_app(HOSTILE)


def port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def raw_exchange(url: str, request: bytes, *, timeout: float = 10.0) -> tuple[int | None, bytes]:
    """Send ``request`` as bytes on a new connection; the status and the head of the
    response (None and b"" if the server closed without answering). A server that neither
    answers nor closes within ``timeout`` fails the test: that is a hang."""
    with socket.create_connection(("127.0.0.1", port(url)), timeout=timeout) as sock:
        # It may answer (and close) before taking everything: then read what it said.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        received = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in received:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"no answer in {timeout} s to {request[:200]!r}") from None
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    if not received:
        return None, b""
    status_line = received.split(b"\r\n", 1)[0].split(b" ")
    return int(status_line[1]), received


# -- 1. JSON nested deeper than 64 levels ----------------------------------------------------


@pytest.mark.parametrize(("route", "name"), [*FUNCTION_ROUTES, ("/api/run/probe/echo", "")])
def test_arguments_as_deep_as_a_convex_value_are_accepted(
    hostile: Served, route: str, name: str
) -> None:
    # {"value": [[...1...]]}: the object and 63 lists, 64 levels
    value = nested(63)
    for listed in (False, True):
        body = function_body(route, name, json.dumps(value), listed=listed)
        if route == "/api/query_at_ts":
            ts = httpx.post(f"{hostile.api}/api/query_ts", headers=JSON).json()["ts"]
            body = body[:-1] + f', "ts": "{ts}"}}'.encode()
        response = httpx.post(f"{hostile.api}{route}", content=body, headers=JSON)
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "success", "value": value}


@pytest.mark.parametrize("depth", [64, 65, 1_000, 100_000])
@pytest.mark.parametrize(("route", "name"), [*FUNCTION_ROUTES, ("/api/run/probe/keep", "")])
def test_deeper_arguments_are_a_400_naming_the_path(
    hostile: Served, route: str, name: str, depth: int
) -> None:
    for listed in (False, True):
        body = function_body(route, name, deep_text(depth), listed=listed)
        response = httpx.post(f"{hostile.api}{route}", content=body, headers=JSON, timeout=30)
        assert response.status_code == 400, response.text
        message = response.json()["message"]
        assert response.json()["code"] == "BadRequest"
        assert "levels deep at path " in message, message
        assert ".value[0][0][0]" in message, message
        if depth == 64 and not listed:  # within the body's limit: the arguments' own check
            assert message.startswith("Invalid arguments: nested more than 64 levels deep")
        else:
            assert "(arguments may nest 64)" in message, message
    # the server is fine: the same call, shallower, works
    assert hostile.call("query", "probe:echo", {"value": nested(3)}).json()["value"] == nested(3)


def test_other_json_bodies_of_the_api_port_are_limited_too(hostile: Served) -> None:
    deep = '{"value": ' + deep_text(5_000) + "}"
    response = httpx.put(
        f"{hostile.api}/api/env/DEEP", content=deep, headers={**JSON, **hostile.admin}
    )
    assert response.status_code == 400
    assert "nested more than 64 levels deep at path .value[0]" in response.json()["message"]


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
def test_deep_json_in_an_http_action_is_a_400_or_the_handlers_value_error(
    hostile: Served, depth: int
) -> None:
    body = '{"a": [0, ' + deep_text(depth) + "]}"
    # Left uncaught, a 400 with the reason (as for invalid JSON), never a 500.
    response = httpx.post(f"{hostile.site}/json", content=body, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "BadRequest"
    message = response.json()["message"]
    assert "nested more than 64 levels deep at path .a[1][0][0]" in message, message
    # Caught: a ValueError the handler turns into its own answer.
    handled = httpx.post(f"{hostile.site}/json-or-422", content=body, timeout=30)
    assert handled.status_code == 422
    assert "nested more than 64 levels deep" in handled.json()["error"]


def test_json_as_deep_as_a_convex_value_reaches_an_http_action(hostile: Served) -> None:
    value = nested(63)  # the list around it makes 64 levels
    response = httpx.post(f"{hostile.site}/json", content=json.dumps([value]))
    assert response.status_code == 200
    assert response.json() == {"value": [value]}


@pytest.mark.parametrize("kind", ["ModifyQuerySet", "Mutation", "Action"])
@pytest.mark.parametrize("depth", [100, 100_000])
def test_a_sync_message_too_deep_ends_its_session_only(
    hostile: Served, kind: str, depth: int
) -> None:
    client = Client(hostile.api)
    args = '[{"value": ' + deep_text(depth) + "}]"
    if kind == "ModifyQuerySet":
        message = (
            '{"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": '
            '[{"type": "Add", "queryId": 0, "udfPath": "probe:echo", "args": ' + args + "}]}"
        )
    else:
        message = f'{{"type": "{kind}", "requestId": 0, "udfPath": "probe:act", "args": {args}}}'
    client.send(message)
    fatal = client.until(lambda m: m["type"] == "FatalError")
    assert "levels deep at path " in fatal["error"], fatal
    assert "[0].value[0][0]" in fatal["error"], fatal
    with pytest.raises(ConnectionClosed):
        client.recv(10)
    other = Client(hostile.api)  # the server serves other sessions as before
    other.add(0, "probe:echo", {"value": "still here"})
    assert other.value(0) == "still here"
    other.close()


def test_sync_arguments_past_the_value_limit_fail_the_call_not_the_session(
    hostile: Served,
) -> None:
    # 65 levels of arguments: within a Mutation message's limit (sized for the deeper
    # ModifyQuerySet), so the call fails as a call with arguments no value can hold.
    client = Client(hostile.api)
    response = client.response(client.mutation("probe:keep", {"value": nested(64)}))
    assert response["success"] is False
    assert "nested more than 64 levels deep" in response["result"]
    assert client.response(client.mutation("probe:keep", {"value": 1}))["success"] is True
    client.close()


# -- 2. an absurd Range ----------------------------------------------------------------------


def test_an_absurd_range_is_a_416(hostile: Served) -> None:
    stored = hostile.call("action", "probe:store", {"data": {"$bytes": "aGVsbG8gd29ybGQ="}})
    url = f"{hostile.api}/api/storage/{stored.json()['value']}"
    huge = "9" * 4_301  # past Python's int-from-text limit
    for value in (f"bytes=0-{huge}", f"bytes={huge}-", f"bytes=-{huge}", f"bytes={huge}-{huge}"):
        response = httpx.get(url, headers={"Range": value})
        assert response.status_code == 416, (value[:20], response.text)
        assert response.headers["content-range"] == "bytes */11"
        assert response.headers.get_list("content-type") == ["text/plain;charset=UTF-8"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert httpx.head(url, headers={"Range": value}).status_code == 416
    # ordinary ranges, leading zeros included, still work
    ranged = httpx.get(url, headers={"Range": "bytes=0000000000000000000000006-"})
    assert ranged.status_code == 206 and ranged.content == b"world"
    assert httpx.get(url, headers={"Range": "bytes=0-99999999999"}).content == b"hello world"
    assert httpx.get(url, headers={"Range": "bytes=-5"}).content == b"world"
    # thousands of leading zeros: a small number all the same, and never int()'s limit
    zeros = "0" * 5_000
    assert httpx.get(url, headers={"Range": f"bytes={zeros}6-"}).content == b"world"
    assert httpx.get(url, headers={"Range": f"bytes=-{zeros}5"}).content == b"world"
    assert httpx.get(url, headers={"Range": f"bytes=0-{zeros}4"}).content == b"hello"


def test_counts_in_query_strings_are_plain_digits(hostile: Served) -> None:
    # int() takes "²" and "٣", and gives up past 4,300 digits: neither may reach it.
    for limit in ("²", "٣", "9" * 5_000, "-1"):
        data = httpx.get(
            f"{hostile.api}/api/data/_storage", params={"limit": limit}, headers=hostile.admin
        )
        assert data.status_code == 400, (limit[:10], data.text)
        events = httpx.get(
            f"{hostile.api}/api/webhooks", params={"limit": limit}, headers=hostile.admin
        )
        assert events.status_code == 200, (limit[:10], events.text)


# -- 3. application/json only, and Host in dev -----------------------------------------------

REFUSED_TYPES = [
    None,
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json, text/plain",
    "text/plain; application/json",
    "application/jsonx",
]


@pytest.mark.parametrize("content_type", REFUSED_TYPES)
def test_the_function_api_takes_only_application_json(
    hostile: Served, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    calls = [
        ("/api/query", b'{"path": "probe:echo", "args": {"value": 1}}'),
        ("/api/mutation", b'{"path": "probe:keep", "args": {"value": 1}}'),
        ("/api/action", b'{"path": "probe:act", "args": {"value": 1}}'),
        ("/api/run/probe/keep", b""),  # what a no-cors fetch() without a body sends
        ("/api/query_ts", b""),
        ("/api/query_at_ts", b'{"path": "probe:echo", "args": {}, "ts": "1"}'),
    ]
    for route, body in calls:
        response = httpx.post(f"{hostile.api}{route}", content=body, headers=headers)
        assert response.status_code == 415, (route, response.text)
        assert response.json()["code"] == "UnsupportedMediaType"
        assert "application/json" in response.json()["message"]
    admin_put = httpx.put(
        f"{hostile.api}/api/env/NAME",
        content=b'{"value": "x"}',
        headers={**headers, **hostile.admin},
    )
    assert admin_put.status_code == 415


def test_json_with_parameters_and_upload_urls_are_accepted(hostile: Served) -> None:
    for content_type in ("application/json", "Application/JSON; charset=utf-8"):
        response = httpx.post(
            f"{hostile.api}/api/query",
            content=b'{"path": "probe:echo", "args": {"value": 1}}',
            headers={"Content-Type": content_type},
        )
        assert response.json() == {"status": "success", "value": 1}
    upload = hostile.call("mutation", "probe:upload_url").json()["value"]
    stored = httpx.post(upload, content=b"\x89PNG", headers={"Content-Type": "image/png"})
    assert stored.status_code == 200 and "storageId" in stored.json()


def test_the_cli_sends_json_to_the_api_port(hostile: Served) -> None:
    from pyconvex.cli.remote import Remote, RemoteError

    remote = Remote(hostile.api, ".", hostile.admin_key)
    assert remote.run("probe:echo", {"value": 1}) == {"status": "success", "value": 1.0}
    remote.env_set("NAME", "value")
    assert remote.webhooks_op({"action": "list"})["events"] == []
    with pytest.raises(RemoteError, match="answered 404"):  # got past the type check
        remote.webhooks_op({"action": "show", "id": "no-such-event"})


def test_the_example_answers_data_no_value_can_hold_with_a_400(
    fuzzed_example: Served,
) -> None:
    # Found by the fuzzer below: the example called the client's bad data its own failure.
    for data in ({"\u001f": 1}, {"$bad": 1}, 2**70):
        response = httpx.post(f"{fuzzed_example.site}/api/process", json={"data": data})
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith("Invalid data: ")


def hosts_of_this_machine(served: Served) -> list[str]:
    api_port = port(served.api)
    return [
        f"127.0.0.1:{api_port}",
        "127.0.0.1",
        f"localhost:{api_port}",
        "LOCALHOST",
        f"[::1]:{api_port}",
        f"app.localhost:{api_port}",
        f"192.168.1.20:{api_port}",  # an address, as on a LAN: no rebinding through one
        socket.gethostname(),
        f"{socket.gethostname()}:{api_port}",
    ]


def websocket_handshake(url: str, host: str, origin: str | None = None) -> int | None:
    """The status a sync socket's opening handshake gets with this ``Host`` (and
    ``Origin``: a browser sends the page's)."""
    request = (
        f"GET /api/sync HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
    )
    if origin is not None:
        request += f"Origin: {origin}\r\n"
    return raw_exchange(url, (request + "\r\n").encode())[0]


FOREIGN_HOSTS = ["evil.example", "evil.example:3210", "127.0.0.1.nip.io", "localhost.evil.example"]


def test_dev_answers_the_api_port_only_for_names_of_this_machine(hostile: Served) -> None:
    body = {"path": "probe:echo", "args": {"value": 1}}
    for host in hosts_of_this_machine(hostile):
        response = httpx.post(f"{hostile.api}/api/query", json=body, headers={"Host": host})
        assert response.status_code == 200, (host, response.text)
    for host in FOREIGN_HOSTS:
        for method, path in (("POST", "/api/query"), ("GET", "/dashboard/"), ("GET", "/api/data")):
            response = httpx.request(
                method, f"{hostile.api}{path}", json=body, headers={"Host": host}
            )
            assert response.status_code == 421, (host, path, response.text)
            assert response.json()["code"] == "MisdirectedRequest"
            assert "DNS rebinding" in response.json()["message"]
        assert websocket_handshake(hostile.api, host) == 403
    local = f"localhost:{port(hostile.api)}"
    assert websocket_handshake(hostile.api, local) == 101
    # Browsers let any page open a socket anywhere: in dev, only pages of this machine may.
    for page in ("http://localhost:5173", "http://127.0.0.1:3000", "https://app.localhost"):
        assert websocket_handshake(hostile.api, local, page) == 101, page
    for page in ("https://evil.example", "null", "http://evil.example:5173", "file://"):
        assert websocket_handshake(hostile.api, local, page) == 403, page
    # The site port is the app's own: its HTTP actions answer any Host.
    assert httpx.get(f"{hostile.site}/health", headers={"Host": "evil.example"}).status_code == 200


def test_serve_answers_any_host_unless_names_are_configured(
    serve_app: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"path": "probe:echo", "args": {"value": 1}}
    served = serve_app(HOSTILE, production=True)
    for host in ["evil.example", "api.example.com", *hosts_of_this_machine(served)]:
        response = httpx.post(f"{served.api}/api/query", json=body, headers={"Host": host})
        assert response.status_code == 200, host
    monkeypatch.setenv("PYCONVEX_ALLOWED_HOSTS", "api.example.com, .example.org")
    configured = serve_app(HOSTILE, production=True)
    for host, status in [
        ("api.example.com", 200),
        ("api.example.com:443", 200),
        ("eu.example.org", 200),
        ("example.org", 421),
        ("evil.example", 421),
        (f"127.0.0.1:{port(configured.api)}", 200),
    ]:
        response = httpx.post(f"{configured.api}/api/query", json=body, headers={"Host": host})
        assert response.status_code == status, host
    # and in dev the configured names come on top of this machine's
    dev = serve_app(HOSTILE)
    response = httpx.post(f"{dev.api}/api/query", json=body, headers={"Host": "api.example.com"})
    assert response.status_code == 200
    local = f"127.0.0.1:{port(dev.api)}"
    assert websocket_handshake(dev.api, local, "https://eu.example.org") == 101
    # serve checks no Origin: a production app's pages are wherever it is deployed
    assert websocket_handshake(served.api, local, "https://evil.example") == 101
    assert websocket_handshake(configured.api, local, "https://app.example.net") == 101


# -- 4. Content-Length over the limit: 413 before the body -----------------------------------


def test_a_content_length_over_the_limit_is_a_413_at_once(
    serve_app: Callable[..., Served],
) -> None:
    served = serve_app(HOSTILE, max_body=1000, max_upload=2000)
    upload = served.call("mutation", "probe:upload_url").json()["value"].removeprefix(served.api)
    cases = [
        (served.api, "/api/query", 1001, "application/json"),
        (served.api, "/api/run/probe/keep", 10**12, "application/json"),
        (served.api, upload, 2001, "image/png"),
        (served.site, "/json", 1001, "application/json"),
    ]
    for url, path, length, content_type in cases:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n"
        ).encode()
        started = time.monotonic()
        status, response = raw_exchange(url, head + b"x" * 10, timeout=5)  # the rest never comes
        assert status == 413, (path, response)
        assert time.monotonic() - started < 2
        assert b"content-type: application/json" in response
    # at the limit, it is read and run
    start, end = b'{"path": "probe:echo", "args": {"value": "', b'"}}'
    exact = start + b"x" * (1000 - len(start) - len(end)) + end
    assert httpx.post(f"{served.api}/api/query", content=exact, headers=JSON).status_code == 200


# -- hypothesis: request lines, headers and bodies -------------------------------------------

_TOKEN = string.ascii_letters + string.digits + "-"
_SKIPPED_HEADERS = {"content-length", "transfer-encoding", "expect", "upgrade", "connection"}
header_names = st.sampled_from([
    "content-type", "range", "authorization", "host", "origin", "cookie", "accept", "x-api-key",
    "if-none-match", "x-forwarded-proto", "x-forwarded-for", "stripe-signature", "svix-id",
    "svix-timestamp", "svix-signature", "x-hub-signature-256", "x-github-event", "referer",
]) | st.text(_TOKEN, min_size=1, max_size=20).filter(lambda name: name.lower() not in _SKIPPED_HEADERS)  # fmt: skip
_FIELD_BYTES = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])  # what a field may hold
header_values = st.integers(0, 9).flatmap(
    lambda pick: st.text(string.printable.strip() + " ", max_size=80).map(str.encode)
    if pick < 6
    else st.sampled_from([
        b"application/json", b"text/plain", b"multipart/form-data; boundary=b",
        b"application/x-www-form-urlencoded", b"bytes=0-", b"bytes=" + b"9" * 5000 + b"-",
        b"Bearer x.y.z", b"Convex nope", b'"etag"', b"t=1,v1=ab", b"sha256=00",
    ])
    if pick < 9
    else st.lists(st.sampled_from(_FIELD_BYTES), max_size=40).map(bytes)
)  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


@st.composite
def bodies(draw: st.DrawFn, function_names: list[str]) -> tuple[bytes, bytes]:
    """A body and the ``Content-Type`` that says what it is."""
    kind = draw(st.sampled_from(["empty", "call", "call", "json", "deep", "deep", "form", "multipart", "bytes"]))  # fmt: skip
    if kind == "empty":
        return b"", b"application/json"
    if kind == "call":
        call: dict[str, Any] = {
            "path": draw(st.sampled_from(function_names) | st.text(max_size=20)),
            "args": draw(json_values | st.builds(lambda v: [v], json_values)),
        }
        if draw(st.booleans()):
            call["format"] = draw(st.sampled_from(["json", "convex_encoded_json"]) | json_values)
        if draw(st.booleans()):
            call["ts"] = draw(json_values)
        if draw(st.booleans()):
            call["data"] = call["args"]  # what /api/process and /api/items look for
            call["name"] = draw(json_values)
        return json.dumps(call).encode(), b"application/json"
    if kind == "json":
        return json.dumps(draw(json_values)).encode(), b"application/json"
    if kind == "deep":
        depth = draw(st.sampled_from([64, 65, 1_000, 20_000]) | st.integers(60, 20_000))
        opener = draw(st.sampled_from(["[", '{"a":', '{"path": "x", "args": ', '{"data": ']))
        closer = "]" if opener == "[" else "}"
        return (opener * depth + "1" + closer * depth).encode(), b"application/json"
    if kind == "form":
        value = draw(st.binary(max_size=30)).replace(b"&", b"")
        return b"name=" + value + b"&email=x", b"application/x-www-form-urlencoded"
    if kind == "multipart":
        part = draw(st.binary(max_size=60))
        name = draw(st.sampled_from([b"name", b"email", b"note", b'x"; filename="a.txt']))
        body = (
            b'--b\r\nContent-Disposition: form-data; name="' + name + b'"\r\n\r\n' + part
            + draw(st.sampled_from([b"\r\n--b--\r\n", b"\r\n--b", b""]))
        )  # fmt: skip
        return body, b"multipart/form-data; boundary=b"
    return draw(st.binary(max_size=300)), draw(header_values)


@st.composite
def requests(
    draw: st.DrawFn, routes: list[tuple[str, str]], function_names: list[str], host: str
) -> bytes:
    """One HTTP/1.1 request as bytes: mostly a route's own method and path, now and then
    another method or a request line that is no such thing; headers of the kinds the
    server and the apps read, with hostile values; a body, its length always right (a
    wrong one is the client waiting for itself)."""
    method, path = draw(st.sampled_from(routes))
    if not draw(st.integers(0, 4)):
        method = draw(
            st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
            | st.text(string.ascii_uppercase, min_size=1, max_size=10)
        )
    tail = draw(
        st.sampled_from(["", "", "", "", "?", "/"])
        | st.text(string.ascii_letters + string.digits + "%&=-+$", max_size=30).map("?".__add__)
        | st.text(string.ascii_letters + string.digits + "/._~%?&=-+$", max_size=30)
    )
    target = (path + tail).encode()
    if not draw(st.integers(0, 19)):
        target = draw(st.binary(min_size=1, max_size=60)).replace(b"\r", b"").replace(b"\n", b"")
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=6))
    if not any(name.lower() == "host" for name, _ in headers):
        headers.append(("Host", host.encode()))
    body, content_type = draw(bodies(function_names))
    if draw(st.integers(0, 3)):  # mostly a type that says what the body is
        headers.insert(0, ("Content-Type", content_type))
    lines = [method.encode() + b" " + target + b" HTTP/1.1"]
    lines += [name.encode() + b": " + value for name, value in headers]
    lines += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def check_never_500(url: str, request: bytes) -> None:
    status, response = raw_exchange(url, request)
    assert status is None or status < 500, (status, request[:300], response[:500])


# Bounded, so the suite stays quick; PYCONVEX_FUZZ_EXAMPLES=10000 for a long hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("PYCONVEX_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def fuzzed_api(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Served, list[tuple[str, str]]]]:
    with Served(HOSTILE, tmp_path_factory.mktemp("fuzzed_api")) as served:
        stored = served.call("action", "probe:store", {"data": {"$bytes": "aGVsbG8="}})
        file = f"/api/storage/{stored.json()['value']}"
        upload = served.call("mutation", "probe:upload_url").json()["value"]
        routes = [
            *(("POST", path) for path in ("/api/query", "/api/mutation", "/api/action")) ,
            *(("POST", path) for path in ("/api/query", "/api/mutation", "/api/action")),
            ("POST", "/api/run/probe/echo"), ("POST", "/api/run/probe/keep"),
            ("POST", "/api/query_ts"), ("POST", "/api/query_at_ts"),
            ("GET", file), ("HEAD", file), ("GET", "/api/storage/"),
            ("POST", upload.removeprefix(served.api)), ("POST", "/api/storage/upload?token="),
            ("GET", "/api/env"), ("PUT", "/api/env/NAME"), ("DELETE", "/api/env/NAME"),
            ("GET", "/api/data"), ("GET", "/api/data/_storage"), ("GET", "/api/webhooks"),
            ("GET", "/api/webhooks/x"), ("POST", "/api/webhooks/x/replay"), ("GET", "/api/crons"),
            ("GET", "/api/sync_stats"), ("GET", "/api/logs"), ("GET", "/dashboard/"),
            ("POST", "/dashboard/login"), ("GET", "/"),
        ]  # fmt: skip
        yield served, routes


FUNCTIONS = ["probe:echo", "probe:keep", "probe:act", "probe:store", "probe:upload_url"]


@FUZZ
@given(data=st.data())
def test_fuzz_the_api_port(
    fuzzed_api: tuple[Served, list[tuple[str, str]]], data: st.DataObject
) -> None:
    served, routes = fuzzed_api
    request = data.draw(requests(routes, FUNCTIONS, f"127.0.0.1:{port(served.api)}"))
    if data.draw(st.booleans()):  # the admin endpoints too
        admin = f"\r\nAuthorization: Convex {served.admin_key}\r\n".encode()
        request = request.replace(b"\r\n", admin, 1)
    check_never_500(served.api, request)


@pytest.fixture(scope="module")
def fuzzed_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("fuzzed_example") / "http_actions"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns(".pyconvex", "__pycache__"))
    patch = pytest.MonkeyPatch()
    for name in ("STRIPE_WEBHOOK_SECRET", "CLERK_WEBHOOK_SECRET", "GITHUB_WEBHOOK_SECRET"):
        patch.setenv(name, "whsec_" + "a2V5IGZvciB0aGUgZnV6emVyIQ==")
    try:
        with Served(folder, folder.parent) as served:
            yield served
    finally:
        patch.undo()


EXAMPLE_ROUTES = [
    ("GET", "/health"), ("POST", "/api/data"), ("OPTIONS", "/api/data"), ("POST", "/api/form"),
    ("POST", "/api/upload"), ("GET", "/files/"), ("GET", "/api/users/"), ("POST", "/api/items"),
    ("GET", "/api/items?limit="), ("POST", "/api/process"), ("GET", "/api/protected"),
    ("GET", "/api/user"), ("POST", "/webhooks/stripe"), ("POST", "/webhooks/clerk"),
    ("POST", "/webhooks/github"), ("GET", "/.files/"),
]  # fmt: skip


@FUZZ
@given(data=st.data())
def test_fuzz_the_site_port_of_the_example_app(fuzzed_example: Served, data: st.DataObject) -> None:
    host = f"127.0.0.1:{port(fuzzed_example.site)}"
    request = data.draw(requests(EXAMPLE_ROUTES, ["items:list", "users:get"], host))
    if b'"data": "fail"' in request and request.startswith(b"POST /api/process "):
        return  # the example's stand-in for a processor that breaks: its 500 is the point
    check_never_500(fuzzed_example.site, request)


# -- found in review --------------------------------------------------------------------------


def test_a_request_without_a_host_is_answered_not_a_500(hostile: Served) -> None:
    for request in (b"GET /health HTTP/1.0\r\n\r\n", b"GET /api/data HTTP/1.0\r\n\r\n"):
        status, _ = raw_exchange(hostile.api, request)
        assert status is not None and status < 500, (request, status)
    handshake = (
        b"GET /api/sync HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    status, _ = raw_exchange(hostile.api, handshake)
    assert status is not None and status < 500


def test_pages_served_from_other_addresses_may_not_open_the_dev_sync_socket(
    hostile: Served,
) -> None:
    local = f"localhost:{port(hostile.api)}"
    for page in ("http://203.0.113.5", "http://10.0.0.5:8080", "http://[2001:db8::1]"):
        assert websocket_handshake(hostile.api, local, page) == 403, page
    for page in ("http://127.0.0.1:5173", "http://[::1]:3000"):
        assert websocket_handshake(hostile.api, local, page) == 101, page


def test_a_content_length_of_leading_zeros_on_a_dashboard_post_is_no_500(hostile: Served) -> None:
    zeros = "0" * 5_000
    request = (
        f"POST /dashboard/login HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {zeros}5\r\n"
        "Connection: close\r\n\r\nkey=x"
    ).encode()
    status, _ = raw_exchange(hostile.api, request)
    assert status is not None and status < 500
