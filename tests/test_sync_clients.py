"""Convex's own npm clients against a real pyconvex server: ``ConvexHttpClient`` for every
call kind and value type, ``ConvexClient`` (WebSocket, the sync protocol) for live queries.

The clients run in node (``tests/clients/driver.mjs``), installed by the tests themselves
(``tests/convex_clients.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import APPS, Issuer, Served, wait_until
from convex_clients import Failed, Node, node_modules
from pyconvex import Int64

SYNC_APP = APPS / "sync"


@pytest.fixture(scope="session")
def modules() -> Path:
    return node_modules()


@pytest.fixture
def node(modules: Path) -> Iterator[Node]:
    driver = Node(modules)
    yield driver
    driver.close()


@pytest.fixture
def served(serve_issued: Callable[..., Served]) -> Served:
    return serve_issued(SYNC_APP)


def restart(serve_app: Callable[..., Served], first: Served) -> Served:
    """Stop ``first``, then serve its app again on the same ports and database."""
    ports = (first.listeners.api_port, first.listeners.site_port)
    first.__exit__()
    return serve_app(SYNC_APP, ports=ports, database_url=first.deployment.database_url)


# -- ConvexHttpClient ------------------------------------------------------------------


def test_http_client_gets_every_value_type_back_as_convex_sends_it(
    node: Node, served: Served
) -> None:
    client = node.client(served.api, http=True)
    got = node.call(client, "query", "values:samples")
    assert got["int64"] == Int64(2**62 + 1) and isinstance(got["int64"], Int64)
    assert got["negative"] == Int64(-5) and isinstance(got["negative"], Int64)
    assert got["float"] == 1.5 and got["whole"] == 3.0 and not isinstance(got["whole"], Int64)
    assert math.isnan(got["nan"]) and got["inf"] == -math.inf
    assert got["negative_zero"] == 0.0 and math.copysign(1, got["negative_zero"]) == -1
    assert got["bytes"] == b"\x00\xffbytes" and got["text"] == "héllo"
    assert got["list"] == [1.0, "two", None, True]
    assert got["nested"] == {"a": {"b": [Int64(1)]}} and got["null"] is None


def test_http_client_sends_every_value_type_as_convex_reads_it(node: Node, served: Served) -> None:
    client = node.client(served.api, http=True)
    value = {
        "int64": Int64(-(2**63)),
        "float": 2.0,
        "nan": math.nan,
        "negative_zero": -0.0,
        "bytes": b"\x01\x02",
        "list": [Int64(3), 4.5, None, False, "s"],
    }
    kinds = node.call(client, "query", "values:kinds", {"value": value})
    assert kinds == {
        "int64": "Int64",
        "float": "float",
        "nan": "float",
        "negative_zero": "float",
        "bytes": "bytes",
        "list": "list",
    }
    back = node.call(client, "query", "values:echo", {"value": value})
    assert back["int64"] == Int64(-(2**63)) and math.isnan(back["nan"])
    assert math.copysign(1, back["negative_zero"]) == -1 and back["bytes"] == b"\x01\x02"
    assert back["list"] == [Int64(3), 4.5, None, False, "s"]


def test_http_client_int64_arguments_are_checked_as_on_convex(node: Node, served: Served) -> None:
    client = node.client(served.api, http=True)
    ok = node.call(client, "query", "values:numbers", {"n": Int64(2**53 + 1), "x": 1.5})
    assert ok == {"n": Int64(2**53 + 1), "x": 1.5, "n_type": "Int64"}
    with pytest.raises(Failed) as refused:  # a float where v.int64() is declared
        node.call(client, "query", "values:numbers", {"n": 5.0, "x": 1.5})
    assert "ArgumentValidationError" in refused.value.message and "n" in refused.value.message
    with pytest.raises(Failed):  # and an Int64 where v.number() is
        node.call(client, "query", "values:numbers", {"n": Int64(1), "x": Int64(1)})


def test_http_client_every_call_kind(node: Node, served: Served) -> None:
    client = node.client(served.api, http=True)
    assert node.call(client, "query", "messages:list", {"channel": "h"}) == []
    inserted = node.call(client, "mutation", "messages:send", {"channel": "h", "body": "one"})
    assert isinstance(inserted, str)
    assert node.call(client, "query", "messages:list", {"channel": "h"}) == ["one"]
    assert node.call(client, "consistentQuery", "messages:count", {"channel": "h"}) == 1.0
    assert node.call(client, "action", "values:shout", {"text": "hey"}) == "HEY"
    assert node.call(client, "mutation", "counters:increment", {"name": "a"}) == Int64(1)
    assert node.call(client, "query", "counters:get", {"name": "a"}) == Int64(1)


def test_http_client_errors_carry_convex_error_data(node: Node, served: Served) -> None:
    client = node.client(served.api, http=True)
    with pytest.raises(Failed) as query_failure:
        node.call(client, "query", "values:fails")
    assert query_failure.value.convex_error
    assert query_failure.value.data == {"code": "NOPE", "n": Int64(7)}
    with pytest.raises(Failed) as mutation_failure:
        node.call(client, "mutation", "messages:send", {"channel": "h", "body": ""})
    assert mutation_failure.value.data == {"code": "EMPTY", "channel": "h"}
    with pytest.raises(Failed) as action_failure:
        node.call(client, "action", "values:explodes")
    assert action_failure.value.convex_error and action_failure.value.data == "boom"
    with pytest.raises(Failed) as plain:
        node.call(client, "query", "values:breaks")
    assert not plain.value.convex_error and "Server Error" in plain.value.message
    with pytest.raises(Failed) as missing:
        node.call(client, "query", "values:nothing_here")
    assert "Could not find public function for 'values:nothing_here'" in missing.value.message


# -- ConvexClient: live queries -----------------------------------------------------------


def test_subscription_shows_another_clients_write(node: Node, served: Served) -> None:
    watcher, writer = node.client(served.api), node.client(served.api)
    sub = node.subscribe(watcher, "messages:list", {"channel": "live"})
    assert node.update(sub) == []
    node.call(writer, "mutation", "messages:send", {"channel": "live", "body": "hello"})
    assert node.update(sub, lambda value: value == ["hello"]) == ["hello"]


def test_a_mutation_resolves_after_its_write_shows_in_the_clients_subscriptions(
    node: Node, served: Served
) -> None:
    client = node.client(served.api)
    sub = node.subscribe(client, "messages:list", {"channel": "ryw"})
    assert node.update(sub) == []
    for body in ("a", "b", "c"):
        call = node.start_call(
            client, "mutation", "messages:send", {"channel": "ryw", "body": body}
        )
        event = node.outcome(call)
        assert event["event"] == "result"
        seen = event["seen"][sub]
        assert body in [item for item in seen]  # read your writes: no older value left


def test_mutations_of_one_client_run_in_the_order_sent(node: Node, served: Served) -> None:
    client = node.client(served.api)
    slow = node.start_call(client, "mutation", "messages:send_slowly",
                           {"channel": "order", "body": "first", "delay": 0.3})  # fmt: skip
    fast = node.start_call(client, "mutation", "messages:send_slowly",
                           {"channel": "order", "body": "second", "delay": 0.0})  # fmt: skip
    assert node.outcome(slow)["value"] == 0.0  # it saw no message
    assert node.outcome(fast)["value"] == 1.0  # it ran after the slow one committed
    events = [e for e in node.events if e.get("id") in (slow, fast)]
    assert [e["id"] for e in events] == [slow, fast]
    assert node.call(client, "query", "messages:list", {"channel": "order"}) == ["first", "second"]


def test_errors_reach_the_client_with_their_convex_error_data(node: Node, served: Served) -> None:
    client = node.client(served.api)
    sub = node.subscribe(client, "values:fails")
    error = node.wait(lambda e: e.get("sub") == sub and e["event"] == "error")
    assert error["convexError"] and Failed(error).data == {"code": "NOPE", "n": Int64(7)}
    with pytest.raises(Failed) as refused:
        node.call(client, "mutation", "values:refuses")
    assert refused.value.convex_error and refused.value.data == {"code": "REFUSED"}
    with pytest.raises(Failed) as exploded:
        node.call(client, "action", "values:explodes")
    assert exploded.value.data == "boom"
    with pytest.raises(Failed) as broke:
        node.call(client, "query", "values:breaks")
    assert not broke.value.convex_error and "Server Error" in broke.value.message
    # The session survives its failures.
    assert node.call(client, "action", "values:shout", {"text": "still here"}) == "STILL HERE"


def test_values_of_every_type_over_the_websocket(node: Node, served: Served) -> None:
    client = node.client(served.api)
    got = node.call(client, "query", "values:samples")
    assert isinstance(got["int64"], Int64) and got["int64"] == 2**62 + 1
    assert math.isnan(got["nan"]) and got["bytes"] == b"\x00\xffbytes"
    assert node.call(client, "mutation", "counters:increment", {"name": "w"}) == Int64(1)
    sub = node.subscribe(client, "counters:get", {"name": "w"})
    assert node.update(sub) == Int64(1)
    node.call(client, "mutation", "counters:increment", {"name": "w"})
    assert node.update(sub, lambda value: value == 2) == Int64(2)


def test_identical_subscriptions_share_one_run(node: Node, served: Served) -> None:
    clients = [node.client(served.api) for _ in range(5)]
    subs = [node.subscribe(c, "messages:list", {"channel": "shared"}) for c in clients]
    for sub in subs:
        assert node.update(sub) == []
    queries = served.backend.sync_queries()
    before = queries.runs
    writer = node.client(served.api, http=True)
    node.call(writer, "mutation", "messages:send", {"channel": "shared", "body": "x"})
    for sub in subs:
        assert node.update(sub, lambda value: value == ["x"]) == ["x"]
    assert queries.runs - before == 1


def test_many_subscriptions_only_the_touched_ones_run_again(node: Node, served: Served) -> None:
    client = node.client(served.api)
    subs = {
        (channel, copy): node.subscribe(client, "messages:list", {"channel": f"ch{channel}"})
        for channel in range(50)
        for copy in range(4)
    }
    for sub in subs.values():
        assert node.update(sub) == []
    queries = served.backend.sync_queries()
    before, mark = queries.runs, len(node.events)
    writer = node.client(served.api, http=True)
    node.call(writer, "mutation", "messages:send", {"channel": "ch7", "body": "seven"})
    for copy in range(4):
        assert node.update(subs[7, copy], lambda value: value == ["seven"]) == ["seven"]
    assert queries.runs - before == 1
    updated = {e["sub"] for e in node.events[mark:] if e["event"] == "update"}
    assert updated == {subs[7, copy] for copy in range(4)}


def test_unsubscribed_queries_are_forgotten(node: Node, served: Served) -> None:
    client = node.client(served.api)
    sub = node.subscribe(client, "messages:list", {"channel": "gone"})
    assert node.update(sub) == []
    queries = served.backend.sync_queries()
    assert queries.watched() == 1
    node.unsubscribe(sub)
    node.call(client, "action", "values:shout", {"text": "x"})  # a round trip after it
    assert queries.watched() == 0


def test_queries_run_again_for_a_new_identity(node: Node, served: Served, issuer: Issuer) -> None:
    client = node.client(served.api, token=issuer.token(sub="ada"))
    sub = node.subscribe(client, "values:whoami")
    assert node.update(sub, lambda value: value == "ada") == "ada"
    node.send(op="auth", client=client, token=issuer.token(sub="grace"))
    assert node.update(sub, lambda value: value == "grace") == "grace"


def test_a_refused_token_is_reported_to_the_client(
    node: Node, served: Served, issuer: Issuer
) -> None:
    client = node.client(served.api, token=issuer.token(aud="someone-else"))
    event = node.wait(lambda e: e["event"] == "auth" and e["client"] == client)
    assert event["authenticated"] is False


def test_admin_key_reaches_internal_functions_and_only_it(
    node: Node, served: Served, tmp_path: Path
) -> None:
    admin = node.client(served.api, admin=served.admin_key)
    anonymous = node.client(served.api)
    assert node.call(admin, "mutation", "messages:send", {"channel": "a", "body": "b"})
    with pytest.raises(Failed) as hidden:
        node.call(anonymous, "query", "values:echo_internal", {"value": 1.0})
    assert "Could not find public function" in hidden.value.message
    assert node.call(admin, "query", "values:echo_internal", {"value": 1.0}) == 1.0


def test_client_reconnects_after_the_server_restarts(
    node: Node, serve_app: Callable[..., Served], tmp_path: Path
) -> None:
    first = serve_app(SYNC_APP)
    client = node.client(first.api)
    sub = node.subscribe(client, "messages:list", {"channel": "restart"})
    assert node.update(sub) == []
    second = restart(serve_app, first)
    writer = node.client(second.api, http=True)
    node.call(writer, "mutation", "messages:send", {"channel": "restart", "body": "back"})
    assert node.update(sub, lambda value: value == ["back"]) == ["back"]
    # The same client goes on writing through its new socket.
    node.call(client, "mutation", "messages:send", {"channel": "restart", "body": "again"})
    assert node.call(writer, "query", "messages:list", {"channel": "restart"}) == ["back", "again"]


def test_a_mutation_in_flight_when_the_server_stops_is_applied_once(
    node: Node, serve_app: Callable[..., Served], tmp_path: Path
) -> None:
    first = serve_app(SYNC_APP)
    client = node.client(first.api)
    sub = node.subscribe(client, "messages:list", {"channel": "once"})
    assert node.update(sub) == []
    started = tmp_path / "started"
    call = node.start_call(client, "mutation", "messages:send_slowly",
                           {"channel": "once", "body": "x", "delay": 0.9,
                            "mark": str(started)})  # fmt: skip
    wait_until(started.exists)  # it runs: the server stops in the middle of it
    restart(serve_app, first)
    assert node.outcome(call)["event"] == "result", node.outcome(call)  # sent again
    assert node.call(client, "query", "messages:list", {"channel": "once"}) == ["x"]
