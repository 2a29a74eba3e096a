"""Hostile clients at the connection level (issue 18, API.md section 20), on both ports.

Real servers on loopback and raw sockets: stalled and half-sent requests, huge and
numerous headers, idle keep-alive connections, stalled bodies, floods past the connection
cap, for the in-process server and for ``pyconvex dev`` and ``serve --workers 2``.
Timeouts are lowered through :mod:`pyconvex.server.connections`' constants.
"""

from __future__ import annotations

import contextlib
import logging
import re
import resource
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.sync.client import connect as websocket_connect

from conftest import Served, wait_until
from pyconvex.server import connections
from test_cli_serving import WEB, Process

FLOOD = 2000
HEAD = b"GET /health HTTP/1.1\r\nHost: localhost\r\n"


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


class Client:
    """A raw connection, read through a buffer (pipelined responses may come in one read)."""

    def __init__(self, url: str, data: bytes = b"") -> None:
        self.sock = socket.create_connection(_address(url), timeout=10)
        self.buffer = b""
        if data:
            self.sock.sendall(data)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self) -> bytes:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            return b""
        self.buffer += chunk
        return chunk

    def until_closed(self, timeout: float = 10) -> bytes:
        """Everything the server sends until it closes (fails if it does not in ``timeout``)."""
        self.sock.settimeout(timeout)
        while self._read():
            pass
        received, self.buffer = self.buffer, b""
        return received

    def response(self) -> tuple[int, bytes]:
        """The next response: its status and body (by Content-Length)."""
        while b"\r\n\r\n" not in self.buffer:
            assert self._read(), f"closed after {self.buffer!r}"
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        found = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
        length = int(found.group(1)) if found else 0
        while len(rest) < length:
            assert self._read()
            rest = self.buffer.partition(b"\r\n\r\n")[2]
        self.buffer = rest[length:]
        return _status(head), rest[:length]

    def close(self) -> None:
        self.sock.close()


def _status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def _flood(url: str, count: int) -> list[socket.socket]:
    """``count`` connections that each send half a request and then nothing."""
    stalled = []
    for _ in range(count):
        sock = socket.create_connection(_address(url), timeout=10)
        stalled.append(sock)
        with contextlib.suppress(OSError):  # already closed to make room: allowed
            sock.sendall(HEAD + b"X-Never-Ends: ")
    return stalled


def _answers_fast(site: str, api: str) -> None:
    """``/health`` on the site port and a query on the API port, each within a second, on
    new connections."""
    started = time.monotonic()
    assert httpx.get(f"{site}/health", timeout=5).json() == {"status": "ok"}
    assert time.monotonic() - started < 1
    started = time.monotonic()
    called = httpx.post(
        f"{api}/api/query", json={"path": "counters:get", "args": {"name": "x"}}, timeout=5
    )
    assert called.json() == {"status": "success", "value": 0}
    assert time.monotonic() - started < 1


@pytest.fixture
def fds() -> None:
    """Room for the flood's sockets on both ends in this process."""
    if connections.raise_fd_limit() < 4 * FLOOD + 1000:
        pytest.skip("the file-descriptor limit is too low for the flood")


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Header and body timeouts of half a second (read as connections need them)."""
    monkeypatch.setattr(connections, "HEADER_TIMEOUT", 0.5)
    monkeypatch.setattr(connections, "BODY_TIMEOUT", 0.5)


def _close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


@pytest.mark.parametrize("cap", [None, 300])
def test_stalled_connections_leave_both_ports_answering(
    fds: None,
    monkeypatch: pytest.MonkeyPatch,
    serve_app: Callable[..., Served],
    cap: int | None,
) -> None:
    """2,000 half-sent requests on each port; with the cap at 300, they close each other to
    make room, and requests from others still get in."""
    monkeypatch.setattr(connections, "MAX_CONNECTIONS", cap)
    served = serve_app(WEB)
    guard = served.server.guard
    stalled = _flood(served.site, FLOOD) + _flood(served.api, FLOOD)
    try:
        if cap is None:
            wait_until(lambda: guard.open == 2 * FLOOD)
        else:
            # The last ones in are the ones kept: the server has taken them all.
            wait_until(lambda: guard.open == cap and stalled[-1] in _kept(served, stalled))
        _answers_fast(served.site, served.api)
        assert cap is None or guard.open <= cap
    finally:
        _close_all(stalled)
    wait_until(lambda: guard.open == 0)


def _kept(served: Served, stalled: list[socket.socket]) -> list[socket.socket]:
    """The flood's sockets the server still holds (by their client-side address)."""
    # Copied in one C call: the server's thread changes it meanwhile.
    held = {conn.client for conn in list(served.server.guard.connections)}
    return [s for s in stalled if s.getsockname()[:2] in held]


@pytest.fixture
def app(tmp_path: Path) -> Path:
    target = tmp_path / "web"
    shutil.copytree(WEB / "convex", target / "convex", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_dev_survives_a_flood_past_its_descriptors(fds: None, app: Path) -> None:
    """The issue's attack, scaled down: ``dev`` with 1,024 descriptors, 2,000 stalled
    connections on each port. Both ports keep answering, and ``dev`` still reloads."""
    # The limit is lowered once it runs, after it chose its cap from the one it had: the
    # cap it would have chosen under 1,024 descriptors is given to it.
    process = Process("dev", str(app), env={"PYCONVEX_MAX_CONNECTIONS": "768"})
    stalled: list[socket.socket] = []
    try:
        resource.prlimit(process.proc.pid, resource.RLIMIT_NOFILE, (1024, 1024))
        stalled = _flood(process.site, FLOOD) + _flood(process.api, FLOOD)
        _answers_fast(process.site, process.api)
        http = app / "convex" / "http.py"
        http.write_text(
            http.read_text() + "\n\n@http.route(path='/added', method='GET')\n"
            "async def added(ctx, request):\n    return Response('new route')\n"
        )
        process.wait_for("Reloaded")
        assert httpx.get(f"{process.site}/added").text == "new route"
    finally:
        _close_all(stalled)
        process.stop()


def test_serve_workers_answer_through_a_flood(fds: None, app: Path) -> None:
    """The same with ``serve --workers 2``, each worker down to 1,024 descriptors."""
    process = Process("serve", str(app), "--workers", "2", env={"PYCONVEX_MAX_CONNECTIONS": "768"})
    stalled: list[socket.socket] = []
    try:
        process.wait_for(r"worker \d of 2")  # the second one is up too
        pid = process.proc.pid
        workers = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(workers) == 2
        for worker in workers:
            resource.prlimit(int(worker), resource.RLIMIT_NOFILE, (1024, 1024))
        stalled = _flood(process.site, FLOOD) + _flood(process.api, FLOOD)
        _answers_fast(process.site, process.api)
    finally:
        _close_all(stalled)
        process.stop()


@pytest.fixture
def web(serve_app: Callable[..., Served]) -> Served:
    return serve_app(WEB)


@pytest.fixture
def ports(web: Served) -> list[str]:
    return [web.site, web.api]


def test_a_huge_header_gets_431_at_once(web: Served) -> None:
    """A 120 MB header line is refused after its first 64 KiB, and /health stays fast
    meanwhile (httptools used to gather it whole, stalling every request for seconds)."""
    for url in (web.site, web.api):
        client = Client(url)
        sent = threading.Event()

        def send(client: Client = client, sent: threading.Event = sent) -> None:
            chunk = b"a" * (1 << 20)
            try:
                client.send(HEAD + b"X-Huge: ")
                for _ in range(120):
                    client.send(chunk)
            except OSError:  # the server stopped reading: allowed
                pass
            sent.set()

        started = time.monotonic()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            assert client.response()[0] == 431
            assert time.monotonic() - started < 1
            _answers_fast(web.site, web.api)
            assert sent.wait(10)
        finally:
            client.close()
            sender.join()


def _with_fields(count: int) -> bytes:
    """A request of ``count`` header fields, ending with ``Connection: close``."""
    fields = [b"Host: localhost"] + [b"X-Field-%d: v" % i for i in range(count - 2)]
    return b"GET /health HTTP/1.1\r\n" + b"\r\n".join(fields) + b"\r\nConnection: close\r\n\r\n"


def test_header_field_count_limit(ports: list[str]) -> None:
    for url in ports:
        ok = Client(url, _with_fields(connections.MAX_HEADER_FIELDS)).until_closed()
        assert _status(ok) in (200, 404), ok
        too_many = Client(url, _with_fields(connections.MAX_HEADER_FIELDS + 1)).until_closed()
        assert _status(too_many) == 431, too_many


def _sized(size: int) -> bytes:
    """A request whose line and headers take exactly ``size`` bytes."""
    start = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Pad: "
    end = b"\r\n\r\n"
    return start + b"p" * (size - len(start) - len(end)) + end


def test_header_size_limit(ports: list[str]) -> None:
    for url in ports:
        at_limit = Client(url, _sized(connections.MAX_HEADER_BYTES)).until_closed()
        assert _status(at_limit) in (200, 404), at_limit[:100]
        over = Client(url, _sized(connections.MAX_HEADER_BYTES + 1)).until_closed()
        assert _status(over) == 431, over


def test_a_half_sent_request_times_out(quick: None, ports: list[str]) -> None:
    for url in ports:
        started = time.monotonic()
        half = Client(url, HEAD).until_closed()
        assert _status(half) == 408, half
        assert 0.4 < time.monotonic() - started < 5
        # Nothing sent at all: closed without an answer.
        assert Client(url).until_closed() == b""
        # The next request on a kept-alive connection has its own deadline.
        client = Client(url, HEAD + b"\r\n")
        assert client.response()[0] in (200, 404)
        client.send(b"GET /health HTTP/1.1\r\n")
        assert _status(client.until_closed()) == 408


def test_idle_keep_alive_connections_close(
    monkeypatch: pytest.MonkeyPatch, serve_app: Callable[..., Served]
) -> None:
    monkeypatch.setattr(connections, "KEEP_ALIVE_TIMEOUT", 0.5)  # read when a server is made
    served = serve_app(WEB)
    for url in (served.site, served.api):
        client = Client(url, HEAD + b"\r\n")
        assert client.response()[0] in (200, 404)
        started = time.monotonic()
        assert client.until_closed() == b""
        assert 0.4 < time.monotonic() - started < 5


def test_keep_alive_and_pipelining_still_work(ports: list[str]) -> None:
    for url in ports:
        client = Client(url, (HEAD + b"\r\n") * 3)
        statuses = [client.response()[0] for _ in range(3)]
        assert statuses[0] in (200, 404) and len(set(statuses)) == 1
        client.send(HEAD + b"\r\n")
        assert client.response()[0] == statuses[0]
        client.close()


def _post(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_a_stalled_body_ends_the_request(quick: None, web: Served) -> None:
    for url, path in ((web.site, "/echo?as=bytes"), (web.api, "/api/query")):
        started = time.monotonic()
        answer = Client(url, _post(path, 1000) + b'{"path"').until_closed()
        assert _status(answer) == 408, answer
        assert 0.4 < time.monotonic() - started < 5


def test_a_slow_body_that_keeps_coming_is_not_cut(quick: None, web: Served) -> None:
    """Pieces 0.2 s apart, 1.6 s in all, against a 0.5 s stall limit (the pauses pace the
    client; they wait for nothing)."""
    client = Client(web.site, _post("/echo?as=bytes", 8))
    for _ in range(8):
        time.sleep(0.2)
        client.send(b"x")
    assert client.response() == (200, b'{"bytes":8}')
    client.close()


def test_when_every_connection_is_busy_new_ones_get_503(
    monkeypatch: pytest.MonkeyPatch, serve_app: Callable[..., Served]
) -> None:
    monkeypatch.setattr(connections, "MAX_CONNECTIONS", 2)
    monkeypatch.setattr(connections, "STALL_EVICTABLE", 60.0)  # their bodies wait for us
    served = serve_app(WEB)
    guard = served.server.guard
    # Two requests whose bodies are still coming: busy, not to be closed for room.
    busy = [Client(served.site, _post("/echo?as=bytes", 2) + b"x") for _ in range(2)]
    wait_until(lambda: guard.open == 2 and all(c.busy() for c in list(guard.connections)))
    refused = Client(served.site).until_closed()
    assert _status(refused) == 503, refused
    for client in busy:
        client.send(b"y")
        assert client.response() == (200, b'{"bytes":2}')
    # Idle now, they make room for new connections.
    assert httpx.get(f"{served.site}/health").status_code == 200
    for client in busy:
        client.close()


def test_websockets_count_until_they_close(web: Served) -> None:
    guard = web.server.guard
    wait_until(lambda: guard.open == 0)
    with websocket_connect(web.api.replace("http", "ws") + "/api/sync"):
        wait_until(lambda: guard.open == 1 and not guard.connections)
    wait_until(lambda: guard.open == 0)


def test_the_fd_limit_is_raised_and_the_cap_stays_below_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit = connections.connection_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == min(hard, connections.FD_CEILING)
    assert limit == soft * 3 // 4
    monkeypatch.setenv("PYCONVEX_MAX_CONNECTIONS", "10")
    assert connections.connection_limit() == 10
    monkeypatch.setenv("PYCONVEX_MAX_CONNECTIONS", str(10 * soft))
    assert connections.connection_limit() == limit


# Clients that stop reading, stall their bodies, pipeline too much, or vanish mid-pipeline
# (review of issue 18). The sweep runs every 50 ms here, its timeouts are half a second.

BIG = 2_000_000
"""A request body, echoed back: far more than a socket buffer and a transport's high-water
mark hold, for a response the client does not read."""


@pytest.fixture
def sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "SWEEP_INTERVAL", 0.05)
    monkeypatch.setattr(connections, "WRITE_TIMEOUT", 0.5)
    monkeypatch.setattr(connections, "CLOSE_TIMEOUT", 0.5)
    monkeypatch.setattr(connections, "STALL_EVICTABLE", 0.2)


def _non_reader(url: str, *, close: bool = False, extra: bytes = b"") -> socket.socket:
    """A connection that asks for a large response (``POST /echo?as=text``), then reads
    only its first byte, so that the server's write buffer stays full."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.settimeout(10)
    sock.connect(_address(url))
    body = b"a" * BIG
    head = (
        b"POST /echo?as=text HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
        + (b"Connection: close\r\n" if close else b"")
        + b"Content-Length: %d\r\n\r\n" % len(body)
    )
    sock.sendall(head + body + extra)
    assert sock.recv(1) == b"H"
    return sock


def _received_until_closed(sock: socket.socket) -> int:
    """Bytes read until the server's end is gone (reset or closed)."""
    total = 0
    sock.settimeout(10)
    try:
        while chunk := sock.recv(1 << 20):
            total += len(chunk)
    except ConnectionResetError:
        pass
    return total


@pytest.mark.parametrize("close", [True, False])
def test_a_client_that_never_reads_gives_its_descriptor_back(
    sweep: None, monkeypatch: pytest.MonkeyPatch, serve_app: Callable[..., Served], close: bool
) -> None:
    """A response nobody reads is aborted, after a close (``Connection: close``: close()
    alone waited for the buffer to flush, forever) or while its writes stay paused (kept
    alive: the keep-alive timeout is out of reach here). Its slot goes with its socket."""
    monkeypatch.setattr(connections, "KEEP_ALIVE_TIMEOUT", 60.0)
    served = serve_app(WEB)
    guard = served.server.guard
    sock = _non_reader(served.site, close=close)
    try:
        wait_until(lambda: guard.open == 1)
        started = time.monotonic()
        wait_until(lambda: guard.open == 0, timeout=10)
        assert time.monotonic() - started < 5
        assert _received_until_closed(sock) < BIG  # cut off, not flushed
    finally:
        sock.close()
    _answers_fast(served.site, served.api)


def test_eviction_aborts_and_the_cap_counts_sockets(
    sweep: None, monkeypatch: pytest.MonkeyPatch, serve_app: Callable[..., Served]
) -> None:
    """At the cap, the non-reader whose response is done (idle, for the cap) is aborted for
    a new connection: its socket goes at once, and its slot only with it."""
    monkeypatch.setattr(connections, "MAX_CONNECTIONS", 1)
    monkeypatch.setattr(connections, "WRITE_TIMEOUT", 60.0)  # only eviction ends it
    served = serve_app(WEB)
    guard = served.server.guard
    sock = _non_reader(served.site)
    try:
        wait_until(lambda: guard.open == 1 and not any(c.busy() for c in list(guard.connections)))
        assert httpx.get(f"{served.site}/health", timeout=5).status_code == 200
        assert _received_until_closed(sock) < BIG
        wait_until(lambda: guard.open == 0)
    finally:
        sock.close()


def test_a_stalled_reader_or_body_makes_room_at_the_cap(
    sweep: None, monkeypatch: pytest.MonkeyPatch, serve_app: Callable[..., Served]
) -> None:
    """A request whose body has stalled (for STALL_EVICTABLE, well inside the body timeout)
    no longer counts as busy: at the cap it is cut for a new connection, not the reverse."""
    monkeypatch.setattr(connections, "MAX_CONNECTIONS", 1)
    served = serve_app(WEB)
    guard = served.server.guard
    stalled = Client(served.site, _post("/echo?as=bytes", 10) + b"x")
    try:
        wait_until(lambda: guard.open == 1 and next(iter(guard.connections)).cycle is not None)
        wait_until(lambda: not next(iter(guard.connections)).busy())
        assert httpx.get(f"{served.site}/health", timeout=5).status_code == 200
        assert stalled.until_closed() == b""
    finally:
        stalled.close()


@pytest.mark.parametrize(
    ("opening", "piece"),
    [
        (b"", b"0" * 100),  # a chunk size of leading zeros, forever
        (b"1;x=", b"a" * 100),  # a chunk extension, forever
    ],
)
def test_chunk_framing_is_no_body_progress(
    quick: None, web: Served, opening: bytes, piece: bytes
) -> None:
    """A chunked body whose framing never ends brings no body byte: 408 at the body
    timeout, however much framing keeps coming."""
    head = (
        b"POST /echo?as=bytes HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    client = Client(web.site, head + opening)
    done = threading.Event()

    def trickle() -> None:
        with contextlib.suppress(OSError):
            while not done.wait(0.05):  # paces the client; waits for nothing
                client.send(piece)

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        started = time.monotonic()
        answer = client.until_closed()
        assert _status(answer) == 408, answer[:100]
        assert 0.4 < time.monotonic() - started < 5
    finally:
        done.set()
        sender.join()
        client.close()


def test_pipelining_is_bounded(monkeypatch: pytest.MonkeyPatch, web: Served) -> None:
    """Within one read, one request being answered and MAX_PIPELINE queued behind it; the
    rest is not parsed, and the connection closes once those are answered."""
    monkeypatch.setattr(connections, "MAX_PIPELINE", 4)
    for url in (web.site, web.api):
        client = Client(url, (HEAD + b"\r\n") * 1000)
        statuses = []
        while True:
            try:
                statuses.append(client.response()[0])
            except AssertionError:  # closed
                break
        assert len(statuses) == 5 and len(set(statuses)) == 1, statuses
        client.close()
    _answers_fast(web.site, web.api)


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_closing_during_a_pipelined_response_logs_no_error(sweep: None, web: Served) -> None:
    """Three pipelined requests to a client that does not read: the first response fills
    the buffer, the second waits for it to drain, the third is queued. The client then
    goes: all learn it is gone (uvicorn told only the last one parsed, and the second then
    wrote into the closed transport and raised), and nothing is logged as an error."""
    errors = _Errors()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(errors)
    guard = web.server.guard
    try:
        for _ in range(3):
            sock = _non_reader(web.site, extra=(HEAD + b"\r\n") * 2)
            wait_until(
                lambda: any(c.pipeline and c.flow.write_paused for c in list(guard.connections))
            )
            sock.close()
            wait_until(lambda: guard.open == 0)
        _answers_fast(web.site, web.api)
        assert not [m for m in errors.messages if "Exception in ASGI" in m], errors.messages
    finally:
        logger.removeHandler(errors)


def test_a_bad_connection_cap_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONVEX_MAX_CONNECTIONS", "lots")
    with pytest.raises(ValueError, match=r"PYCONVEX_MAX_CONNECTIONS.*'lots'"):
        connections.connection_limit()
