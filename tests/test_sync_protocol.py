"""The sync protocol message by message, from a plain WebSocket client: what Convex's
clients rely on (versions, the order of responses and transitions, chunks, pings) and
what a hostile or broken client must not be able to do (stall, wedge or fill a session)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from conftest import APPS, Issuer, Served, wait_until
from pyconvex.sync import protocol, session
from pyconvex.sync.protocol import decode_ts

SYNC_APP = APPS / "sync"
ZERO = {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}


class Client:
    """One socket speaking the protocol by hand; it checks the version chain as Convex's
    clients do (each transition starts where the last ended)."""

    def __init__(self, api: str, *, session_id: str | None = None, path: str = "/api/sync",
                 **options: Any) -> None:  # fmt: skip
        self.ws: ClientConnection = connect(
            api.replace("http", "ws", 1) + path, open_timeout=10, max_size=None, **options
        ).__enter__()  # closed by close()
        self.session_id = session_id or str(uuid.uuid4())
        self.version = dict(ZERO)
        self.query_set = 0
        self.request_id = 0
        self.received: list[dict[str, Any]] = []
        self.send({"type": "Connect", "sessionId": self.session_id, "connectionCount": 0,
                   "lastCloseReason": "InitialConnect", "clientTs": time.time() * 1000})  # fmt: skip

    def send(self, message: dict[str, Any] | str) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def recv(self, timeout: float = 30) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        self.received.append(message)
        if message["type"] == "Transition":
            assert message["startVersion"] == self.version, "the version chain broke"
            self.version = message["endVersion"]
        return message

    def until(self, match: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.0, deadline - time.monotonic()))
            if match(message):
                return message

    def transition(self, timeout: float = 30) -> dict[str, Any]:
        return self.until(lambda m: m["type"] == "Transition", timeout)

    def add(self, query_id: int, path: str, args: dict[str, Any] | None = None,
            journal: str | None = None) -> None:  # fmt: skip
        self.modify([{"type": "Add", "queryId": query_id, "udfPath": path,
                      "args": [args or {}], "journal": journal}])  # fmt: skip

    def modify(self, modifications: list[dict[str, Any]]) -> None:
        self.send({"type": "ModifyQuerySet", "baseVersion": self.query_set,
                   "newVersion": self.query_set + 1, "modifications": modifications})  # fmt: skip
        self.query_set += 1

    def mutation(self, path: str, args: dict[str, Any] | None = None,
                 request_id: int | None = None) -> int:  # fmt: skip
        if request_id is None:
            request_id, self.request_id = self.request_id, self.request_id + 1
        self.send({"type": "Mutation", "requestId": request_id, "udfPath": path,
                   "args": [args or {}]})  # fmt: skip
        return request_id

    def response(self, request_id: int) -> dict[str, Any]:
        return self.until(lambda m: m.get("requestId") == request_id)

    def value(self, query_id: int, timeout: float = 30) -> Any:
        """The next result of ``query_id`` a transition brings."""
        while True:
            for change in self.transition(timeout)["modifications"]:
                if change.get("queryId") == query_id and change["type"] == "QueryUpdated":
                    return change["value"]

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def served(serve_issued: Callable[..., Served]) -> Served:
    return serve_issued(SYNC_APP)


@pytest.fixture
def client(served: Served) -> Iterator[Client]:
    opened = Client(served.api)
    yield opened
    opened.close()


def mutate(served: Served, path: str, args: dict[str, Any]) -> Any:
    response = served.call("mutation", path, args)
    assert response.json()["status"] == "success", response.text
    return response.json()["value"]


# -- versions and order ---------------------------------------------------------------------


def test_first_transition_starts_at_zero_and_versions_chain(client: Client, served: Served) -> None:
    client.add(0, "messages:list", {"channel": "v"})
    first = client.transition()
    assert first["startVersion"] == ZERO
    assert first["endVersion"]["querySet"] == 1 and first["endVersion"]["identity"] == 0
    assert first["modifications"] == [
        {"type": "QueryUpdated", "queryId": 0, "value": [], "logLines": [], "journal": None}
    ]
    mutate(served, "messages:send", {"channel": "v", "body": "a"})
    assert client.value(0) == ["a"]
    assert decode_ts(client.version["ts"]) > decode_ts(first["endVersion"]["ts"])
    client.modify([{"type": "Remove", "queryId": 0}])
    removed = client.transition()
    assert removed["modifications"] == [{"type": "QueryRemoved", "queryId": 0}]
    assert removed["endVersion"]["querySet"] == 2


def test_a_mutation_response_comes_after_the_transition_showing_its_write(
    client: Client,
) -> None:
    client.add(0, "messages:list", {"channel": "m"})
    assert client.value(0) == []
    request = client.mutation("messages:send", {"channel": "m", "body": "hi"})
    response = client.response(request)
    assert response["success"] is True and isinstance(response["result"], str)
    before = [m for m in client.received if m["type"] == "Transition"]
    shown = before[-1]
    assert decode_ts(shown["endVersion"]["ts"]) >= decode_ts(response["ts"])
    assert [change["value"] for t in before[1:] for change in t["modifications"]] == [["hi"]]
    # And one more: Convex's clients resolve on a transition after the response.
    assert client.transition()["modifications"] == []


def test_a_transition_follows_every_response_even_with_nothing_changed(client: Client) -> None:
    """Convex's Rust client resolves a mutation that failed with a ConvexError only on the
    next transition."""
    client.add(0, "messages:list", {"channel": "f"})
    client.transition()
    request = client.mutation("values:refuses")
    response = client.response(request)
    assert response["success"] is False and response["errorData"] == {"code": "REFUSED"}
    assert response["ts"] is None
    after = client.transition()
    assert after["modifications"] == []


def test_a_mutation_sent_again_with_the_same_session_and_request_runs_once(
    served: Served,
) -> None:
    first = Client(served.api)
    request = first.mutation("counters:increment", {"name": "once"})
    original = first.response(request)
    first.close()
    again = Client(served.api, session_id=first.session_id)  # a reconnect
    again.add(0, "counters:get", {"name": "once"})
    again.transition()
    replayed = again.response(again.mutation("counters:increment", {"name": "once"}, request))
    assert replayed["result"] == original["result"] == {"$integer": "AQAAAAAAAAA="}
    assert replayed["ts"] == original["ts"]
    after = again.transition()  # its promise resolves on this one
    assert decode_ts(after["endVersion"]["ts"]) >= decode_ts(replayed["ts"])
    assert served.call("query", "counters:get", {"name": "once"}).json()["value"] == 1  # once
    other = Client(served.api)  # another session's request 0 is another request
    assert other.response(other.mutation("counters:increment", {"name": "once"}))["success"]
    assert served.call("query", "counters:get", {"name": "once"}).json()["value"] == 2
    again.close()
    other.close()


def test_a_large_result_is_still_answered_once(client: Client, served: Served) -> None:
    request = client.mutation("values:large_result", {"size": 600_000})
    response = client.response(request)
    assert response["success"] and len(response["result"]) == 600_000
    again = Client(served.api, session_id=client.session_id)
    replayed = again.response(again.mutation("values:large_result", {"size": 600_000}, request))
    assert replayed["success"] and replayed["result"] is None  # too large to have kept
    assert "too large to keep" in replayed["logLines"][0]
    listed = served.call("query", "messages:list", {"channel": "large"}).json()["value"]
    assert listed == ["600000"]
    again.close()


def test_mutations_and_actions_run_one_at_a_time_in_the_order_sent(client: Client) -> None:
    slow = client.mutation("messages:send_slowly", {"channel": "o", "body": "1", "delay": 0.3})
    client.send({"type": "Action", "requestId": 99, "udfPath": "values:shout",
                 "args": [{"text": "quick"}]})  # fmt: skip
    fast = client.mutation("messages:send_slowly", {"channel": "o", "body": "2", "delay": 0.0})
    responses = []
    while len(responses) < 3:
        message = client.recv()
        if message["type"] in ("MutationResponse", "ActionResponse"):
            responses.append(message)
    assert [response["requestId"] for response in responses] == [slow, 99, fast]
    assert [response["result"] for response in responses] == [0.0, "QUICK", 1.0]


# -- subscriptions ------------------------------------------------------------------------


def test_only_changed_results_are_sent(client: Client, served: Served) -> None:
    client.modify([
        {"type": "Add", "queryId": 0, "udfPath": "messages:list", "args": [{"channel": "a"}]},
        {"type": "Add", "queryId": 1, "udfPath": "messages:list", "args": [{"channel": "b"}]},
    ])  # fmt: skip
    assert len(client.transition()["modifications"]) == 2
    mutate(served, "messages:send", {"channel": "a", "body": "x"})
    changes = client.transition()["modifications"]
    assert [change["queryId"] for change in changes] == [0]


def test_identical_subscriptions_of_many_sessions_share_one_run(served: Served) -> None:
    clients = [Client(served.api) for _ in range(10)]
    for c in clients:
        c.add(0, "messages:count", {"channel": "s"})
        assert c.value(0) == 0.0
    queries = served.backend.sync_queries()
    runs = queries.runs
    mutate(served, "messages:send", {"channel": "s", "body": "x"})
    for c in clients:
        assert c.value(0) == 1.0
        c.close()
    assert queries.runs == runs + 1


def test_a_session_going_away_mid_run_does_not_stall_one_sharing_the_run(served: Served) -> None:
    leaving, staying = Client(served.api), Client(served.api)
    leaving.add(0, "values:slow", {"delay": 1.0, "tag": "shared"})
    staying.add(0, "values:slow", {"delay": 1.0, "tag": "shared"})
    sessions = served.backend.sync_sessions
    # Both subscribed while the one run (a second long) goes on: both wait for it.
    wait_until(lambda: sum(s.subscriptions for s in sessions) == 2)
    assert served.backend.sync_queries().runs == 1
    leaving.close()
    assert staying.value(0) == "shared"
    assert served.backend.sync_queries().runs == 1  # the run it shared, not one of its own
    assert staying.response(staying.mutation("messages:send", {"channel": "z", "body": "x"}))
    staying.transition()  # and the session goes on
    staying.close()


def test_queries_run_again_for_a_new_identity(client: Client, issuer: Issuer) -> None:
    client.add(0, "values:whoami")
    assert client.value(0) is None
    client.send({"type": "Authenticate", "baseVersion": 0, "tokenType": "User",
                 "value": issuer.token(sub="ada")})  # fmt: skip
    after = client.transition()
    assert after["endVersion"]["identity"] == 1
    assert after["modifications"][0]["value"] == "ada"
    client.send({"type": "Authenticate", "baseVersion": 1, "tokenType": "None"})
    assert client.value(0) is None


def test_an_admin_session_reaches_internal_functions(client: Client, served: Served) -> None:
    client.add(0, "values:echo_internal", {"value": 1.5})
    failed = client.transition()["modifications"][0]
    assert failed["type"] == "QueryFailed"
    assert "Could not find public function" in failed["errorMessage"]
    client.send({"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin",
                 "value": served.admin_key})  # fmt: skip
    assert client.value(0) == 1.5


def test_a_bad_admin_key_is_an_auth_error(client: Client) -> None:
    client.send({"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin", "value": "nope"})
    error = client.until(lambda m: m["type"] == "AuthError")
    assert error["authUpdateAttempted"] is True and "admin key" in error["error"]
    with pytest.raises(ConnectionClosed):
        client.recv(10)


def test_an_expiring_token_ends_the_session_with_an_auth_error(
    client: Client, served: Served, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No leeway past exp here (30 s by default, both to verify a token and to end a session).
    monkeypatch.setattr(served.deployment.authenticator, "leeway", 0)
    token = issuer.token(exp=int(time.time()) + 2)
    client.send({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": token})
    client.transition()
    error = client.until(lambda m: m["type"] == "AuthError", timeout=15)
    assert error == {"type": "AuthError", "error": "Token expired", "baseVersion": 1,
                     "authUpdateAttempted": False}  # fmt: skip


def test_a_write_during_a_run_is_shown_too(client: Client, served: Served) -> None:
    """A commit that lands while a subscribed query runs makes the result old before it is
    sent: the session runs it again, though no invalidation will come for it."""
    client.add(0, "messages:list_slowly", {"channel": "during", "delay": 0.3})
    assert client.value(0) == []
    queries = served.backend.sync_queries()
    runs = queries.runs
    mutate(served, "messages:send", {"channel": "during", "body": "a"})
    wait_until(lambda: queries.runs > runs)  # the re-run for "a" has begun (it reads first)
    mutate(served, "messages:send", {"channel": "during", "body": "b"})
    seen = [client.value(0)]
    while seen[-1] != ["a", "b"]:
        seen.append(client.value(0))
    assert seen[0] in (["a"], ["a", "b"])


async def test_a_page_moved_to_its_journal_replaces_an_old_result_left_there(
    tmp_path: Path,
) -> None:
    """A subscription moves to the key of its page's end (its journal). A stalled session
    may have left that key's result invalid: the moved one's fresh result replaces it, so
    commits keep waking its subscribers."""
    from pyconvex.deployment import Deployment
    from pyconvex.functions import Auth
    from pyconvex.sync.queries import Queries, QueryKey

    url = f"sqlite:///{tmp_path / 'data.sqlite3'}"
    async with Deployment(SYNC_APP, database_url=url, storage_url=tmp_path.as_uri()) as d:
        queries = Queries(d)
        await queries.start()
        args = {"channel": "x", "paginationOpts": {"numItems": 100.0, "cursor": None}}
        first = QueryKey("messages:page", json.dumps(args).encode(), "anonymous", None)
        send = {"channel": "x", "body": "m"}
        woken: list[str] = []

        def subscribe(name: str) -> QueryKey:
            queries.watch(first, hash(name), lambda: woken.append(name))
            return first

        async def move(name: str) -> QueryKey:
            result = await queries.at(first, queries.head, Auth())
            moved = queries.rekey(
                first, result.journal, hash(name), lambda: woken.append(name), result
            )
            queries.unwatch(first, hash(name))
            return moved

        subscribe("stalled")
        journal_key = await move("stalled")
        await d.executor.run("messages:send", send)
        assert woken == ["stalled"]  # and it never runs again: its result there stays old

        subscribe("fresh")
        assert await move("fresh") == journal_key
        woken.clear()
        await d.executor.run("messages:send", send)
        assert "fresh" in woken
        await queries.stop()


def test_a_paginated_subscription_keeps_its_page_boundaries(client: Client, served: Served) -> None:
    for body in ("b", "d", "f"):
        mutate(served, "messages:send", {"channel": "p", "body": body})
    page = {"numItems": 2, "cursor": None}
    client.add(0, "messages:page_by_body", {"channel": "p", "paginationOpts": page})
    first = client.transition()["modifications"][0]
    assert [doc["body"] for doc in first["value"]["page"]] == ["b", "d"]
    assert first["journal"] is not None
    cursor = first["value"]["continueCursor"]
    client.add(1, "messages:page_by_body",
               {"channel": "p", "paginationOpts": {"numItems": 2, "cursor": cursor}})  # fmt: skip
    second = client.transition()["modifications"][0]
    assert [doc["body"] for doc in second["value"]["page"]] == ["f"]

    mutate(served, "messages:send", {"channel": "p", "body": "c"})  # inside page one
    changes = client.transition()["modifications"]
    assert [change["queryId"] for change in changes] == [0]
    grown = changes[0]["value"]
    assert [doc["body"] for doc in grown["page"]] == ["b", "c", "d"]  # it grew, not shifted
    assert grown["continueCursor"] == cursor

    mutate(served, "messages:send", {"channel": "p", "body": "e"})  # inside page two
    changes = client.transition()["modifications"]
    assert [change["queryId"] for change in changes] == [1]
    assert [doc["body"] for doc in changes[0]["value"]["page"]] == ["e", "f"]


def test_a_paginated_subscription_shared_while_another_session_waits_still_updates(
    served: Served,
) -> None:
    args = {"channel": "q", "paginationOpts": {"numItems": 5, "cursor": None}}
    quick, waiting = Client(served.api), Client(served.api)
    waiting.modify([
        {"type": "Add", "queryId": 0, "udfPath": "messages:page_by_body", "args": [args]},
        {"type": "Add", "queryId": 1, "udfPath": "values:slow",
         "args": [{"delay": 0.5, "tag": "t"}]},
    ])  # fmt: skip
    quick.add(0, "messages:page_by_body", args)
    assert quick.value(0)["page"] == []
    mutate(served, "messages:send", {"channel": "q", "body": "new"})
    assert [doc["body"] for doc in quick.value(0)["page"]] == ["new"]
    quick.close()
    waiting.close()


def test_a_function_edit_runs_the_queries_again(
    serve_app: Callable[..., Served], tmp_path: Path
) -> None:
    app = tmp_path / "app"
    shutil.copytree(SYNC_APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    served = serve_app(app)
    client = Client(served.api)
    client.add(0, "values:slow", {"delay": 0.0, "tag": "before"})
    assert client.value(0) == "before"
    module = app / "convex" / "values.py"
    module.write_text(module.read_text().replace('return args["tag"]', 'return args["tag"] + "!"'))
    asyncio.run_coroutine_threadsafe(served.deployment.reload(), served.loop).result(30)
    assert client.value(0) == "before!"
    client.close()


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("not json", "not JSON"),
        ('{"type": "Launch"}', "Unknown message type"),
        ('{"type": "ModifyQuerySet", "baseVersion": 5, "newVersion": 6, "modifications": []}',
         "Base version 5 passed up doesn't match the current version 0"),
        ('{"type": "Mutation", "requestId": -1, "udfPath": "a:b", "args": [{}]}',
         "requestId must be a whole number"),
        ('{"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": '
         '[{"type": "Remove", "queryId": 3}]}', "Query 3 was removed but never added"),
    ],
)  # fmt: skip
def test_a_broken_message_is_a_fatal_error(client: Client, message: str, error: str) -> None:
    client.send(message)
    fatal = client.until(lambda m: m["type"] == "FatalError")
    assert error in fatal["error"]
    with pytest.raises(ConnectionClosed):
        client.recv(10)


def test_arguments_that_are_no_convex_value_fail_the_call_not_the_session(client: Client) -> None:
    bad = {"n": {"$integer": "not base64"}}
    client.modify([
        {"type": "Add", "queryId": 0, "udfPath": "values:echo", "args": [{"value": bad}]},
        {"type": "Add", "queryId": 1, "udfPath": "messages:list", "args": [{"channel": "ok"}]},
    ])  # fmt: skip
    changes = client.transition()["modifications"]
    assert changes[0]["type"] == "QueryFailed" and changes[1]["value"] == []
    request = client.mutation("messages:send", {"channel": "x", "body": bad})  # type: ignore[dict-item]
    response = client.response(request)
    assert response["success"] is False
    assert client.response(client.mutation("messages:send", {"channel": "x", "body": "ok"}))[
        "success"
    ]


def test_too_many_queued_mutations_close_the_socket_to_try_again(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "MAX_QUEUED_REQUESTS", 2)
    with pytest.raises(ConnectionClosed) as closed:
        # The server may close the socket while the last of these is still being sent.
        for n in range(5):
            client.mutation("messages:send_slowly", {"channel": "t", "body": str(n), "delay": 0.2})
        client.until(lambda m: False)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert closed.value.rcvd.reason == "TooManyConcurrentMutations"


# -- the wire -------------------------------------------------------------------------------------


def test_an_idle_session_is_pinged(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "PING_SECONDS", 0.2)
    client = Client(served.api)
    client.add(0, "messages:list", {"channel": "idle"})
    client.transition()
    assert client.recv(timeout=10) == {"type": "Ping"}  # nothing else to say meanwhile
    client.close()


def test_a_large_transition_goes_in_chunks_to_clients_that_join_them(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "MAX_MESSAGE", 10_000)
    chunked = Client(served.api, path="/api/1.48.0/sync")
    chunked.add(0, "values:large", {"size": 25_000})
    parts = [chunked.until(lambda m: m["type"] == "TransitionChunk") for _ in range(3)]
    assert [part["partNumber"] for part in parts] == [0, 1, 2]
    assert {part["totalParts"] for part in parts} == {3}
    assert len({part["transitionId"] for part in parts}) == 1
    whole = json.loads("".join(part["chunk"] for part in parts))
    assert whole["type"] == "Transition" and whole["modifications"][0]["value"] == "x" * 25_000
    old = Client(served.api, path="/api/1.20.0/sync")  # before chunks: one message
    old.add(0, "values:large", {"size": 25_000})
    assert old.value(0) == "x" * 25_000
    chunked.close()
    old.close()


def test_deployment_url_with_a_trailing_slash(served: Served) -> None:
    client = Client(served.api, path="//api/1.48.0/sync")
    client.add(0, "messages:list", {"channel": "slash"})
    assert client.value(0) == []
    client.close()


def test_a_client_that_stops_reading_holds_up_no_one_and_fills_nothing(served: Served) -> None:
    small = socket.socket()
    # A fixed receive buffer (set before connecting, so not autotuned to megabytes)
    small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    small.connect(("127.0.0.1", httpx.URL(served.api).port))
    # It reads nothing for now (nor pings: its pongs would wait behind the data).
    stalled = Client(served.api, sock=small, compression=None, ping_interval=None, max_queue=1)
    stalled.add(0, "messages:latest", {"channel": "flood"})
    stalled.transition()
    watcher = Client(served.api)
    watcher.add(0, "messages:latest", {"channel": "flood"})
    assert watcher.value(0) is None
    # 24 MB in all, six times what the socket buffers may hold here
    sent, high = 60, (0, 0)
    for n in range(sent):
        body = f"{n}:" + base64.b64encode(os.urandom(300_000)).decode()  # 400 KB, incompressible
        mutate(served, "messages:send", {"channel": "flood", "body": body})
        assert watcher.value(0) == body  # each write shows at once for the watcher
        high = max(high, *(s.queued for s in served.backend.sync_sessions))
    queued_messages, queued_transitions = high
    assert queued_transitions <= session.MAX_QUEUED_TRANSITIONS and queued_messages <= 4
    # Reading again, the stalled client gets what the buffers held, then the newest state.
    count = 1
    while not stalled.value(0).startswith(f"{sent - 1}:"):
        count += 1
    assert count < sent / 2
    stalled.close()
    watcher.close()


async def test_the_record_of_session_requests_is_forgotten_after_a_while(tmp_path: Path) -> None:
    from pyconvex.deployment import Deployment
    from pyconvex.functions import Auth
    from pyconvex.sync.requests import forget_old_requests

    url = f"sqlite:///{tmp_path / 'data.sqlite3'}"
    async with Deployment(SYNC_APP, database_url=url, storage_url=tmp_path.as_uri()) as deployment:
        executor = deployment.executor
        for request in range(3):
            run = await executor.run_mutation_once(
                "counters:increment", {"name": "r"}, auth=Auth(), request=("s", request)
            )
            assert run.error is None
        assert await forget_old_requests(deployment.database, time.time() - 60) == 0
        assert await forget_old_requests(deployment.database, time.time() + 1) == 3
        again = await executor.run_mutation_once(
            "counters:increment", {"name": "r"}, auth=Auth(), request=("s", 0)
        )
        assert again.value == {"$integer": "BAAAAAAAAAA="}  # forgotten: it ran again


def test_sync_stats_for_the_admin(client: Client, served: Served) -> None:
    client.add(0, "messages:list", {"channel": "stats"})
    client.add(1, "messages:list", {"channel": "stats"})
    client.transition()
    assert httpx.get(f"{served.api}/api/sync_stats").status_code == 403
    stats = httpx.get(f"{served.api}/api/sync_stats", headers=served.admin).json()
    assert stats["sessions"] == 1 and stats["subscriptions"] == 2 and stats["queries"] == 1
    assert stats["query_runs"] >= 1 and stats["unchanged_runs"] == 0


def test_a_socket_that_never_says_connect_is_closed(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyconvex.sync import session

    monkeypatch.setattr(session, "CONNECT_SECONDS", 0.5)
    url = served.api.replace("http", "ws", 1) + "/api/sync"
    with connect(url, open_timeout=10) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=20)  # a Ping may come first only after 15 s: this is the close
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    # a client that connects is unaffected
    talking = Client(served.api)
    try:
        talking.send({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
                      "modifications": []})  # fmt: skip
        assert talking.recv()["type"] == "Transition"
    finally:
        talking.close()
