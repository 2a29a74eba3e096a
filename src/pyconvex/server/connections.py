"""Connection limits of both ports (API.md section 20), enforced in front of the app.

uvicorn's httptools protocol times out only keep-alive connections that sit idle after a
response: a client that connects and sends half a request, or nothing, keeps its socket
forever, and httptools gathers a header line of any length into one growing bytes object
(quadratic: one 120 MB line held up the event loop for seconds). Enough such clients took
every file descriptor, after which neither port accepted anything and ``dev`` could not
reload. :class:`GuardedHttpToolsProtocol` is uvicorn's protocol with the missing limits:

- the request line and headers must arrive within :data:`HEADER_TIMEOUT` of the connection
  (or of the first byte of a later request on it): then 408, or a plain close when the
  client sent nothing;
- they may take :data:`MAX_HEADER_BYTES` and :data:`MAX_HEADER_FIELDS`: beyond, 431 before
  any handler runs (the parser is never fed more than the limit allows);
- a request body that brings no body byte for :data:`BODY_TIMEOUT` ends the request (408
  when no response has started): chunk framing (sizes, extensions) does not count;
- an idle keep-alive connection closes after :data:`KEEP_ALIVE_TIMEOUT` (uvicorn's own timer);
- a client that stops reading is cut off: a response whose writes stay paused (the
  transport's buffer above its high-water mark) without draining for
  :data:`WRITE_TIMEOUT`, or a closed connection whose last bytes do not drain for
  :data:`CLOSE_TIMEOUT`, is aborted. ``transport.close()`` waits for the buffer to flush,
  so without this a client that never reads kept its socket, and its descriptor, forever.
  One periodic sweep per guard (every :data:`SWEEP_INTERVAL`) checks this, rather than a
  timer per connection or per write;
- at most :data:`MAX_PIPELINE` pipelined requests wait behind the one being answered: a
  read that brings more (one read of 256 KiB held thousands of them, 200 MB) is not
  parsed further; the queued ones are answered and the connection then closes, as after
  any refusal of a pipelined request. uvicorn resumes reading after every response, so
  pausing until the queue drains would not hold; the parser cannot stop at a request's
  end and resume later (httptools exposes no pause), so the rest of that read is dropped;
- the connections of a process (both ports, WebSockets included) are capped by a
  :class:`ConnectionGuard` below its file-descriptor limit. At the cap a new connection
  closes (aborts) the oldest one not being answered (idle keep-alive, still sending its
  headers, lingering after a refusal, closing, or answering a request that has made no
  progress for :data:`STALL_EVICTABLE`: its body stalled, or its reader): stalled clients
  make room for others instead of locking them out. When every connection is busy with
  a request, the new one gets 503. A connection's slot is released only when its socket
  is gone (``connection_lost``), so the cap counts descriptors, not requests.

The timeouts and limits are module constants, read when a connection needs them (the
keep-alive timeout when a server is made), so tests can lower them.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from typing import Any, ClassVar, cast

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

try:
    import resource
except ImportError:  # Windows: no RLIMIT_NOFILE
    resource = None  # type: ignore[assignment]

HEADER_TIMEOUT = 10.0
"""Seconds a client has to send a request line and headers."""
MAX_HEADER_BYTES = 64 * 1024
"""The request line and headers of one request, in bytes."""
MAX_HEADER_FIELDS = 100
KEEP_ALIVE_TIMEOUT = 5.0
"""Seconds an idle keep-alive connection stays open."""
BODY_TIMEOUT = 30.0
"""Seconds a request body may go without a byte of it (framing aside) arriving."""
WRITE_TIMEOUT = 30.0
"""Seconds a response's writes may stay paused without the client reading any of it."""
CLOSE_TIMEOUT = 5.0
"""Seconds a closed connection may take to flush its last bytes before it is aborted."""
SWEEP_INTERVAL = 1.0
"""Seconds between two checks of the write and close timeouts (their precision)."""
STALL_EVICTABLE = 1.0
"""Seconds without progress after which a request being answered may be cut for room."""
MAX_PIPELINE = 16
"""Pipelined requests a connection may queue behind the one being answered."""
LINGER_TIMEOUT = 2.0
"""After a refusal (408, 431), seconds spent reading and dropping what the client still sends."""
MAX_CONNECTIONS: int | None = None
"""Open connections per process; None: ``PYCONVEX_MAX_CONNECTIONS``, else 3/4 of the fd limit."""
FD_CEILING = 1 << 20
"""The soft fd limit is raised to the hard limit, but no further than this."""


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; return the soft limit now."""
    if resource is None:
        return 2048
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FD_CEILING if hard == resource.RLIM_INFINITY else min(hard, FD_CEILING)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # macOS refuses values above kern.maxfilesperproc
            pass
    return FD_CEILING if soft == resource.RLIM_INFINITY else soft


def connection_limit() -> int:
    """How many connections this process may hold open (raising its fd limit first).

    A quarter of the descriptors stays free for everything else a server opens: database
    connections, files being served or stored, log files, the reloader's watches, and the
    burst of sockets an event loop accepts at once before the cap can close any.
    """
    ceiling = max(raise_fd_limit() * 3 // 4, 1)
    wanted = MAX_CONNECTIONS
    setting = os.environ.get("PYCONVEX_MAX_CONNECTIONS", "").strip()
    if wanted is None and setting:
        try:
            wanted = int(setting)
        except ValueError:
            raise ValueError(
                f"PYCONVEX_MAX_CONNECTIONS must be a whole number of connections, not {setting!r}"
            ) from None
    return ceiling if wanted is None else max(1, min(wanted, ceiling))


class ConnectionGuard:
    """The open connections of one process's servers (both ports share one guard)."""

    SCAN = 64
    """Connections looked at, at most, to make room for a new one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        # The counted HTTP connections, oldest first. Kept in the order they came rather
        # than of their last use, which would cost a move on every request: an idle
        # keep-alive connection closed for room is no loss (the client opens another, as
        # after the keep-alive timeout), and a busy one is never closed. An OrderedDict,
        # as a plain dict's front fills with holes when it is used as a queue.
        self.connections: OrderedDict[GuardedHttpToolsProtocol, None] = OrderedDict()
        self._sweeper: asyncio.TimerHandle | None = None

    def admit(self, connection: GuardedHttpToolsProtocol) -> bool:
        """Count a new connection, closing one that is not serving a request if at the cap;
        False when none of those it looked at could go (the new one must)."""
        if self.open >= self.limit and not self._make_room():
            return False
        self.open += 1
        connection.counted = True
        self.connections[connection] = None
        if self._sweeper is None:
            self._sweeper = connection.loop.call_later(SWEEP_INTERVAL, self._sweep, connection.loop)
        return True

    def _make_room(self) -> bool:
        # Bounded, so that a flood while every connection is busy costs little per
        # refusal; the busy ones go to the back, for the next look to skip. The one closed
        # keeps its slot until its socket is gone (the next turn of the event loop, as it
        # is aborted): meanwhile the new one takes the cap's margin of descriptors.
        for _ in range(min(self.SCAN, len(self.connections))):
            oldest = next(iter(self.connections))
            if oldest.busy():
                self.connections.move_to_end(oldest)
                continue
            del self.connections[oldest]  # counted still, not looked at again
            oldest.evict()
            return True
        return False

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Abort the connections whose client stopped reading (module doc); again in
        :data:`SWEEP_INTERVAL` while there are connections."""
        now = loop.time()
        for connection in list(self.connections):  # aborts change it only later, but safe
            connection.check_writes(now)
        self._sweeper = (
            loop.call_later(SWEEP_INTERVAL, self._sweep, loop) if self.connections else None
        )

    def release(self, connection: GuardedHttpToolsProtocol) -> None:
        if connection.counted:
            connection.counted = False
            self.open -= 1
        self.connections.pop(connection, None)


class _TooManyFields(Exception):
    pass


class _PipelineTooDeep(Exception):
    pass


# What the next bytes of a connection are (GuardedHttpToolsProtocol._state):
_HEAD = 0  # a request line and headers: counted against MAX_HEADER_BYTES
_BODY = 1  # a request body
_DROP = 2  # nothing to parse: the request was refused, or the socket is a WebSocket's now


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header, body and connection limits (module doc).

    Subclassed per :class:`ConnectionGuard` by :func:`protocol_classes`: uvicorn makes
    protocols from a class and its own arguments only.
    """

    guard: ClassVar[ConnectionGuard]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # All set here, none added later: CPython keeps the attributes of instances made
        # alike in a compact shared layout, which uvicorn's per-request code reads faster.
        self.counted = False
        self._state = _HEAD
        self._head_room = MAX_HEADER_BYTES  # bytes the head being received may still take
        self._last_read = 0.0  # when the body being received last made progress
        self._timer: asyncio.TimerHandle | None = None
        # Since when the sweep has seen writes paused (or a close pending) without the
        # write buffer draining, and its size then; 0.0: not stalled.
        self._stalled_since = 0.0
        self._stalled_size = 0
        # The cycles in flight once requests were pipelined (the one being answered and
        # those queued behind it), for connection_lost: uvicorn's tells only the last.
        self._in_flight: list[Any] = []

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        if not self.guard.admit(self):
            # No lingering here: this socket is not counted, and a flood of them must not
            # hold descriptors for long.
            self._answer(503, "Service Unavailable", linger=False)
            return
        self._timer = self.loop.call_later(HEADER_TIMEOUT, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.guard.release(self)
        # Every request still being answered or queued learns the client is gone: uvicorn
        # tells only the last one parsed, and the one being answered (an earlier one, when
        # pipelined) then wrote on, into a closed transport, and raised.
        for cycle in self._in_flight:
            if not cycle.response_complete:
                cycle.disconnected = True
            cycle.message_event.set()
        self._in_flight.clear()
        self.pipeline.clear()
        super().connection_lost(exc)

    def data_received(self, data: bytes | memoryview) -> None:
        state = self._state
        if state == _DROP:
            return
        self._unset_keepalive_if_required()
        if state == _HEAD:
            if len(data) > self._head_room:
                self._feed_head(data)
                return
            self._head_room -= len(data)
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self._parse_failed(exc):
                return
        if self._timer is None:
            # Timers only for a request left unfinished by this read: one that arrives
            # whole (the usual case) costs none.
            state = self._state
            if state == _HEAD and self._head_room < MAX_HEADER_BYTES:
                self._timer = self.loop.call_later(HEADER_TIMEOUT, self._head_late)
            elif state == _BODY:
                self._last_read = self.loop.time()
                self._timer = self.loop.call_at(self._last_read + BODY_TIMEOUT, self._body_late)

    def _feed_head(self, data: bytes | memoryview) -> None:
        """Feed the parser no more than the head may still take: if the headers have not
        ended within it, the request is refused before httptools holds any more of them."""
        room = self._head_room
        self._head_room = 0
        view = memoryview(data)
        try:
            self.parser.feed_data(view[:room])
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self._parse_failed(exc):
                return
        if self._state == _HEAD and self._head_room == 0:
            self._refuse(431, "Request Header Fields Too Large")
            return
        self.data_received(view[room:])

    def _parse_failed(self, exc: Exception) -> bool:
        """Handle a parser exception as uvicorn does; True when the connection is no longer
        ours to read (refused, upgraded to a WebSocket)."""
        if isinstance(exc, httptools.HttpParserUpgrade):
            if self._should_upgrade():
                self.handle_websocket_upgrade()
                return True
            self._unsupported_upgrade_warning()
            return False
        if isinstance(exc.__context__, _TooManyFields):
            self._refuse(431, "Request Header Fields Too Large")
        elif isinstance(exc.__context__, _PipelineTooDeep):
            # The cycle being answered is unfinished: the queued ones are answered, then
            # the connection closes; the rest of this read is not looked at.
            self._refuse(503, "Service Unavailable")
        else:
            self._bad_request()
        return True

    def _bad_request(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    # The callbacks below run for every request: timers are cancelled inline.

    def on_headers_complete(self) -> None:
        # Counted once the headers are in rather than per header: the byte limit already
        # bounds the parser's work, and the per-header callback stays uvicorn's own.
        if len(self.headers) > MAX_HEADER_FIELDS:
            raise _TooManyFields
        self._state = _BODY
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        previous = self.cycle
        if previous is None or previous.response_complete:
            HttpToolsProtocol.on_headers_complete(self)
            return
        # Pipelined behind a request still being answered: queued, at most MAX_PIPELINE.
        if len(self.pipeline) >= MAX_PIPELINE:
            raise _PipelineTooDeep
        in_flight = self._in_flight
        while in_flight and in_flight[0].response_complete:
            del in_flight[0]
        if not in_flight:
            in_flight.append(previous)
        HttpToolsProtocol.on_headers_complete(self)
        if self.cycle is not previous:
            in_flight.append(self.cycle)

    def on_body(self, body: bytes) -> None:
        # The body-stall clock counts body bytes only: a client sending chunk-size digits
        # or a chunk extension forever brings none.
        self._last_read = self.loop.time()
        HttpToolsProtocol.on_body(self, body)

    def on_message_complete(self) -> None:
        self._state = _HEAD
        self._head_room = MAX_HEADER_BYTES
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        HttpToolsProtocol.on_message_complete(self)

    def busy(self) -> bool:
        """Whether a request of this connection is being answered (or waits to be), and
        is getting on: its body coming or its response being read by the client."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete or self.transport.is_closing():
            return False
        now = self.loop.time()
        if self._stalled_since and now - self._stalled_since >= STALL_EVICTABLE:
            return False  # the client does not read its response
        return not (
            self._state == _BODY
            and not cycle.response_started
            and not self.flow.read_paused
            and not cycle.waiting_for_100_continue
            and now - self._last_read >= STALL_EVICTABLE
        )

    def evict(self) -> None:
        """Abort (to make room for a new connection, or a client that stopped reading):
        whatever it still had to write is not waited for (a client that does not read
        would hold the descriptor forever)."""
        self._cancel_timer()
        self._state = _DROP
        self.transport.abort()

    def check_writes(self, now: float) -> None:
        """The guard's sweep: abort if the client has read nothing of a paused response
        for :data:`WRITE_TIMEOUT`, or of what a closed connection still has to send for
        :data:`CLOSE_TIMEOUT`."""
        transport = self.transport
        closing = transport.is_closing()
        if not closing and not self.flow.write_paused:
            self._stalled_since = 0.0
            return
        size = transport.get_write_buffer_size()
        if not self._stalled_since or size < self._stalled_size:
            self._stalled_since = now
            self._stalled_size = size
        elif now - self._stalled_since >= (CLOSE_TIMEOUT if closing else WRITE_TIMEOUT):
            self.evict()

    def resume_writing(self) -> None:
        self._stalled_since = 0.0  # the client read
        super().resume_writing()

    def timeout_keep_alive_handler(self) -> None:
        self._end()

    def _end(self) -> None:
        """Close the connection; at once when nothing is left to write (close() would wait
        for the client to read it; the sweep aborts it if the client does not)."""
        transport = self.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size():
            transport.close()
        else:
            transport.abort()

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol takes over the socket, and with it the count (see
        # protocol_classes): nothing of this protocol's must fire on it any more.
        self._state = _DROP
        self._cancel_timer()
        self.guard.connections.pop(self, None)
        self.counted = False
        super().handle_websocket_upgrade()

    def _head_late(self) -> None:
        self._timer = None
        if self._state != _HEAD:
            return
        if self._head_room < MAX_HEADER_BYTES:
            self._refuse(408, "Request Timeout")
        elif self.cycle is None or self.cycle.response_complete:
            self._end()

    def _refuse(self, status: int, message: str) -> None:
        """Refuse the request whose head is arriving."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The head came in behind a request still being answered (pipelined): that
            # answer is not cut short or mixed with this one; the connection ends after it,
            # and nothing more of it is read.
            cycle.keep_alive = False
            self._cancel_timer()
            self._state = _DROP
            self.flow.pause_reading()
            return
        self._answer(status, message)

    def _body_late(self) -> None:
        self._timer = None
        if self._state != _BODY or self.transport.is_closing():
            return
        now = self.loop.time()
        cycle = self.cycle
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            # The app has not taken what came (uvicorn's flow control), or has not asked
            # for the body a client told to wait for "100 Continue": the wait is the app's.
            self._last_read = now
        due = self._last_read + BODY_TIMEOUT
        if due > now:
            self._timer = self.loop.call_at(due, self._body_late)
            return
        self._state = _DROP
        if not cycle.response_started:
            self._answer(408, "Request Timeout", linger=False)
        # As a lost connection does: the app's receive() gets http.disconnect, its sends
        # are dropped rather than written after the 408.
        cycle.disconnected = True
        cycle.message_event.set()
        self._end()

    def _answer(self, status: int, message: str, *, linger: bool = True) -> None:
        """Answer ``status`` and end the connection without the app."""
        self._cancel_timer()
        self._state = _DROP
        body = message.encode("ascii")
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        if not linger or not self.transport.can_write_eof():
            self.transport.close()
            return
        # Closing a socket with unread bytes in it resets the connection, and a client
        # still sending its headers or body would lose the answer: half-close, read and
        # drop what still comes for a while (what nginx calls a lingering close). Such a
        # connection is the first to go when a new one needs room.
        self.transport.write_eof()
        self._timer = self.loop.call_later(LINGER_TIMEOUT, self._end)
        if self.counted:
            self.guard.connections.move_to_end(self, last=False)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def protocol_classes(
    guard: ConnectionGuard,
) -> tuple[type[GuardedHttpToolsProtocol], type[asyncio.Protocol] | None]:
    """The HTTP and WebSocket protocol classes of servers sharing ``guard``.

    A WebSocket keeps the socket of the HTTP connection it was upgraded from, so it stays
    counted until it closes; uvicorn's protocol for it is subclassed to say when.
    """

    class Http(GuardedHttpToolsProtocol):
        pass

    Http.guard = guard

    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    if AutoWebSocketsProtocol is None:
        return Http, None
    base = cast("type[asyncio.Protocol]", AutoWebSocketsProtocol)

    def connection_lost(self: Any, exc: Exception | None) -> None:
        try:
            base.connection_lost(self, exc)
        finally:
            guard.open -= 1

    websocket = type(f"Counted{base.__name__}", (base,), {"connection_lost": connection_lost})
    return Http, websocket
