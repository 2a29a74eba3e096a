"""One client's WebSocket: Convex's sync protocol, from ``Connect`` to the last ``Transition``.

    await Session(backend, scope, receive, send).run()      # until the socket closes

A session holds the client's query set (each query a subscription to a shared result,
see :mod:`.queries`), its identity, and two versions: the one the client has asked for
(query set and identity) and the one it was last sent. A *transition* moves every query of
the session to one commit timestamp: the newest whose effect on every cached result is
known. It is computed when the client changes its query set or identity, when a mutation
or action of the session ends, and when a commit invalidates one of its results; a result
that did not change is not sent again.

Mutations and actions run one at a time, in the order sent (as the contract says; Convex
runs a session's actions side by side), each mutation exactly once per (session, request).
A ``MutationResponse`` carries the commit timestamp and is sent after the transition that
shows its write; another transition follows every response, which is when Convex's clients
resolve their promises. A slow client never holds up others: at most two transitions wait
in its outbox, and while they do, invalidations only mark the session for its next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
import msgspec

from ..errors import AuthenticationError, StoreUnavailableError
from ..functions import Auth
from ..functions.failures import client_message, error_data
from ..tasks import cancel_and_wait
from ..values import from_convex_json, to_convex_json
from . import protocol
from .protocol import INITIAL, ProtocolError, Version
from .queries import QueryKey, Result

if TYPE_CHECKING:
    from ..server.backend import Backend

PING_SECONDS = 15.0  # a Ping after this long without sending anything (Convex's interval)
RETRY_SECONDS = 0.5  # a transition that failed (the store away) is tried again after this
MAX_QUEUED_TRANSITIONS = 2  # Convex's SYNC_MAX_SEND_TRANSITION_COUNT
MAX_QUEUED_REQUESTS = 1000  # mutations waiting, actions running (then the client is cut off)
# A socket that has not said Connect by then is closed: Convex's clients send it at once,
# and a socket that never does only holds one of the server's connections.
CONNECT_SECONDS = 30.0
# npm clients at this version and later put chunked transitions back together.
_CHUNKS_FROM = (1, 28, 0)
# A deployment URL given with a trailing slash makes the clients ask for ``//api/...``.
_VERSION = re.compile(r"^/+api/(\d+)\.(\d+)\.(\d+)[^/]*/sync$")
_log = logging.getLogger("pyconvex.sync")
_canonical = msgspec.json.Encoder(order="sorted")


def sync_path(path: str) -> bool:
    """Whether ``path`` is the sync endpoint: ``/api/sync`` (Convex's Rust and Python
    clients) or ``/api/<client version>/sync`` (npm ``convex``)."""
    return path.lstrip("/") == "api/sync" or _VERSION.match(path) is not None


@dataclass(slots=True)
class _Subscription:
    key: QueryKey
    args: Any  # as the client sent them (Convex JSON)
    digest: bytes = b""  # of the result the client last got


class Session:
    """One WebSocket of one client."""

    def __init__(
        self, backend: Backend, scope: MutableMapping[str, Any], receive: Any, send: Any
    ) -> None:
        self._backend = backend
        self._deployment = backend.deployment
        self._queries = backend.sync_queries()
        self._receive = receive
        self._send = send
        found = _VERSION.match(scope.get("path", ""))
        version = tuple(int(part) for part in found.groups()) if found else None
        self._chunked = version is not None and version >= _CHUNKS_FROM
        self._session_id = "socket-" + secrets.token_hex(8)  # until Connect says
        # Lifted by Connect: a socket that says none within CONNECT_SECONDS is closed.
        self._connect_deadline: asyncio.Timeout | None = None
        self._skew: int | None = None
        self._query_set = 0  # the query set version received
        self._identity = 0  # the identity version received
        self._sent = INITIAL  # the version of the last transition sent
        self._subscriptions: dict[int, _Subscription] = {}
        self._removed: list[int] = []
        self._auth = Auth()
        self._expires: float | None = None  # when the user's token runs out
        self._auth_changed = asyncio.Event()
        self._admin = False
        self._identity_key = "anonymous"
        self._token = id(self)  # names this session's watches
        self._dirty = asyncio.Event()
        self._outbox: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        self._queued_transitions = 0
        self._chunked_transitions = 0
        self._drained = asyncio.Event()
        self._last_sent = time.monotonic()
        # Mutations and actions, each with the identity it was sent under.
        self._requests: asyncio.Queue[tuple[dict[str, Any], Auth, bool]] = asyncio.Queue()
        self._transitioned = asyncio.Event()  # set when a transition is posted

    # -- the socket ---------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the socket until it closes."""
        if (await self._receive())["type"] != "websocket.connect":
            return
        await self._send({"type": "websocket.accept"})
        try:
            await self._queries.start()
        except Exception:  # the store is away: the client will try again shortly
            _log.warning("A sync session could not start", exc_info=True)
            await self._send({"type": "websocket.close", "code": 1011,
                              "reason": "InternalServerError"})  # fmt: skip
            return
        tasks = [
            asyncio.create_task(self._read()),
            asyncio.create_task(self._write()),
            asyncio.create_task(self._update()),
            asyncio.create_task(self._run_requests()),
            asyncio.create_task(self._ping()),
            asyncio.create_task(self._expire()),
        ]
        self._backend.sync_sessions.add(self)
        try:
            # Every task runs until the socket closes: one that ends first ends the session.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            await self._end(next(iter(done)))
        finally:
            self._backend.sync_sessions.discard(self)
            await cancel_and_wait(*tasks)  # first: none of them may watch anything after
            for key in {sub.key for sub in self._subscriptions.values()}:
                self._queries.unwatch(key, self._token)

    async def _end(self, task: asyncio.Task[None]) -> None:
        """Close the socket as ``task``'s end says: a ``_Close`` its code and reason; any
        other failure is the server's (1011: the client reconnects after a pause)."""
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return  # the client went away
        if not isinstance(error, _Close):
            _log.error("A sync session failed", exc_info=error)
            error = _Close(1011, "InternalServerError")
        with contextlib.suppress(Exception):
            await self._send(
                {"type": "websocket.close", "code": error.code, "reason": error.reason}
            )

    async def _read(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_SECONDS) as deadline:
                self._connect_deadline = deadline
                await self._read_messages()
        except TimeoutError:
            if deadline.expired():
                raise _Close(1008, "No Connect message") from None
            raise

    async def _read_messages(self) -> None:
        while True:
            event = await self._receive()
            if event["type"] == "websocket.disconnect":
                return
            if event["type"] != "websocket.receive":
                continue
            frame = event.get("text") if event.get("text") is not None else event.get("bytes")
            try:
                await self._handle(protocol.parse(frame or b""))
            except ProtocolError as exc:
                await self._say({"type": "FatalError", "error": str(exc)})  # no reconnecting
                raise _Close(1000, "") from None

    async def _say(self, message: dict[str, Any]) -> None:
        """Send ``message`` now, ahead of anything waiting (the session is about to end)."""
        with contextlib.suppress(Exception):
            await self._send({"type": "websocket.send", "text": protocol.encode(message)})

    def _post(self, message: dict[str, Any] | str, *, transition: bool = False) -> None:
        text = message if isinstance(message, str) else protocol.encode(message)
        if transition and self._chunked and len(text) > protocol.MAX_MESSAGE:
            self._chunked_transitions += 1
            parts = protocol.chunks(text, str(self._chunked_transitions), protocol.MAX_MESSAGE)
            for number, part in enumerate(parts):  # contiguous: no await between the puts
                self._outbox.put_nowait((protocol.encode(part), number == len(parts) - 1))
        else:
            self._outbox.put_nowait((text, transition))
        if transition:
            self._queued_transitions += 1

    @property
    def subscriptions(self) -> int:
        return len(self._subscriptions)

    @property
    def queued(self) -> tuple[int, int]:
        """Messages waiting to be sent, and how many of them are transitions."""
        return self._outbox.qsize(), self._queued_transitions

    async def _write(self) -> None:
        while True:
            text, transition = await self._outbox.get()
            if transition:  # taken from the queue: room for the next one
                self._queued_transitions -= 1
                self._drained.set()
            await self._send({"type": "websocket.send", "text": text})
            self._last_sent = time.monotonic()

    async def _ping(self) -> None:
        while True:
            idle = time.monotonic() - self._last_sent
            if idle >= PING_SECONDS:
                self._post(protocol.PING)
                idle = 0.0
            await asyncio.sleep(PING_SECONDS - idle)

    # -- messages -------------------------------------------------------------------------

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "Connect":
            if self._connect_deadline is not None:
                self._connect_deadline.reschedule(None)
            self._session_id = message["sessionId"]
            client_ts = message.get("clientTs")
            if isinstance(client_ts, int | float) and client_ts > 0:
                self._skew = int(client_ts - time.time() * 1000)
            # It saw a commit through another process: show it nothing older.
            await self._queries.catch_up(message.get("maxObservedTimestamp") or 0)
        elif kind == "ModifyQuerySet":
            self._modify(message)
        elif kind == "Authenticate":
            await self._authenticate(message)
        elif kind in ("Mutation", "Action"):
            if self._requests.qsize() >= MAX_QUEUED_REQUESTS:
                # Convex's answer: try again later (the client reconnects and sends again).
                raise _Close(1013, "TooManyConcurrentMutations" if kind == "Mutation"
                             else "TooManyInflightActionsForSingleClient")  # fmt: skip
            self._requests.put_nowait((message, self._auth, self._admin))

    def _key(self, path: str, args: Any, journal: str | None) -> QueryKey:
        return QueryKey(path, _canonical.encode(args), self._identity_key, journal, self._admin)

    def _modify(self, message: dict[str, Any]) -> None:
        base, new = message["baseVersion"], message["newVersion"]
        if base != self._query_set:
            raise ProtocolError(
                f"Base version {base} passed up doesn't match the current version {self._query_set}"
            )
        if new <= base:
            raise ProtocolError(f"New query set version {new} is not after {base}")
        for change in message["modifications"]:
            query_id = change["queryId"]
            if change["type"] == "Add":
                if query_id in self._subscriptions:
                    raise ProtocolError(f"Query {query_id} was added twice")
                key = self._key(change["udfPath"], change["args"], change.get("journal"))
                self._subscriptions[query_id] = _Subscription(key, change["args"])
                self._queries.watch(key, self._token, self._dirty.set)
            else:
                sub = self._subscriptions.pop(query_id, None)
                if sub is None:
                    raise ProtocolError(f"Query {query_id} was removed but never added")
                self._release(sub.key)
                self._removed.append(query_id)
        self._query_set = new
        self._dirty.set()

    def _release(self, key: QueryKey) -> None:
        if not any(sub.key == key for sub in self._subscriptions.values()):
            self._queries.unwatch(key, self._token)

    async def _authenticate(self, message: dict[str, Any]) -> None:
        if message["baseVersion"] != self._identity:
            raise ProtocolError(
                f"Authenticate base version {message['baseVersion']} doesn't match the "
                f"current identity version {self._identity}"
            )
        kind, value = message["tokenType"], message.get("value")
        auth, admin, identity = Auth(), False, "anonymous"
        if kind == "Admin":
            from ..server.admin_key import matches

            if not matches(self._backend.admin_key, str(value).encode()):
                await self._auth_error("The provided admin key was invalid for this deployment")
            admin, identity = True, "admin"
        elif kind == "User":
            auth = self._deployment.authenticator.auth_for(f"Bearer {value}")
            try:
                await auth.get_user_identity()
            except AuthenticationError as exc:
                await self._auth_error(f"Could not verify token claim: {exc}")
            identity = "user:" + hashlib.sha256(str(value).encode()).hexdigest()
        expires = _expires(value) if kind == "User" else None
        # As long as verification would still accept it (its leeway past ``exp``).
        leeway = self._deployment.authenticator.leeway
        self._expires = None if expires is None else expires + leeway
        self._auth_changed.set()
        self._auth, self._admin, self._identity_key = auth, admin, identity
        self._identity += 1
        # Every query runs again for the new identity (it may read ctx.auth).
        for query_id, sub in list(self._subscriptions.items()):
            key = self._key(sub.key.path, sub.args, sub.key.journal)
            self._subscriptions[query_id] = _Subscription(key, sub.args)
            self._release(sub.key)
            self._queries.watch(key, self._token, self._dirty.set)
        self._dirty.set()

    async def _auth_error(self, error: str, *, attempted: bool = True) -> None:
        """Refuse an identity: ``AuthError`` (the client fetches a new token and
        reconnects), then close."""
        await self._say({
            "type": "AuthError",
            "error": error,
            "baseVersion": self._sent.identity,
            "authUpdateAttempted": attempted,
        })  # fmt: skip
        raise _Close(1000, "")

    async def _expire(self) -> None:
        """When the user's token runs out, end the session as Convex does: ``AuthError``
        (the client fetches a fresh token and connects again)."""
        while True:
            self._auth_changed.clear()
            if self._expires is None:
                await self._auth_changed.wait()
                continue
            try:
                async with asyncio.timeout(max(0.0, self._expires - time.time())):
                    await self._auth_changed.wait()
            except TimeoutError:
                await self._auth_error("Token expired", attempted=False)

    # -- transitions -----------------------------------------------------------------------

    async def _update(self) -> None:
        while True:
            await self._dirty.wait()
            while self._queued_transitions >= MAX_QUEUED_TRANSITIONS:
                self._drained.clear()
                await self._drained.wait()  # newer state will replace what waits meanwhile
            self._dirty.clear()
            try:
                await self._transition()
            except Exception:  # the store may be away for a moment: try again shortly
                _log.warning("A transition could not be computed; retrying", exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)
                self._dirty.set()

    async def _transition(self) -> None:
        ts = max(self._queries.head, self._sent.ts)
        target = Version(self._query_set, self._identity, ts)
        removed, self._removed = self._removed, []
        subscriptions = sorted(self._subscriptions.items())
        auth = self._auth
        # Most results are cached (a commit touches few queries): only the others run.
        results: list[Result | None] = [
            self._queries.cached(sub.key, ts) for _, sub in subscriptions
        ]
        missing = [i for i, found in enumerate(results) if found is None]
        try:
            if len(missing) == 1:
                results[missing[0]] = await self._queries.at(
                    subscriptions[missing[0]][1].key, ts, auth
                )
            elif missing:
                ran = await asyncio.gather(
                    *(self._queries.at(subscriptions[i][1].key, ts, auth) for i in missing)
                )
                for i, fetched in zip(missing, ran, strict=True):
                    results[i] = fetched
        except BaseException:
            self._removed[:0] = removed  # the next transition says they are gone
            raise
        changes: list[dict[str, Any]] = [
            {"type": "QueryRemoved", "queryId": query_id} for query_id in removed
        ]
        for (query_id, sub), result in zip(subscriptions, results, strict=True):
            assert result is not None  # every one filled above
            if result.journal != sub.key.journal and self._subscriptions.get(query_id) is sub:
                # Its next runs read as far as this one did (a page keeps its boundaries).
                old = sub.key
                sub.key = self._queries.rekey(
                    old, result.journal, self._token, self._dirty.set, result
                )
                self._release(old)
            if result.digest == sub.digest:
                continue
            sub.digest = result.digest
            changes.append(_modification(query_id, result))
        # Sent even when nothing changed, as Convex does: the Rust client resolves a
        # mutation that failed with a ConvexError only on the next transition.
        changes.sort(key=lambda change: change["queryId"])
        self._post(protocol.transition(self._sent, target, changes, self._skew), transition=True)
        self._sent = target
        self._transitioned.set()
        if any(result.invalid_at is not None for result in results if result is not None):
            # A commit landed while a query ran: what was just sent is already old, and no
            # invalidation will come for it. The next transition runs it again.
            self._dirty.set()

    # -- mutations and actions ------------------------------------------------------------

    async def _run_requests(self) -> None:
        while True:
            message, auth, admin = await self._requests.get()
            if message["type"] == "Mutation":
                await self._mutate(message, auth, admin)
            else:
                await self._act(message, auth, admin)
            self._dirty.set()  # a transition after every response: then clients resolve

    async def _mutate(self, message: dict[str, Any], auth: Auth, admin: bool) -> None:
        try:
            args = from_convex_json(message["args"], numbers="float")
        except ValueError as exc:  # not a Convex value: it fails, as a call would
            self._post(self._outcome("MutationResponse", message, None, exc))
            return
        run = await self._deployment.executor.run_mutation_once(
            message["udfPath"],
            args,
            auth=auth,
            request=(self._session_id, message["requestId"]),
            public_only=not admin,
        )
        if isinstance(run.error, StoreUnavailableError):
            # It may have committed: the client sends it again once reconnected, and the
            # record of the request makes that run it at most once.
            raise _Close(1011, "InternalServerError: the database is unavailable")
        response = self._outcome("MutationResponse", message, run.value, run.error, encoded=True)
        response["logLines"] = run.log_lines
        if response["success"]:
            response["ts"] = protocol.encode_ts(run.ts)
            await self._shown(run.ts)
        self._post(response)

    async def _shown(self, ts: int) -> None:
        """Until a transition at ``ts`` or later is on its way to the client."""
        # Another process's commit (a request sent again): learn of it first.
        await self._queries.catch_up(ts)
        while self._sent.ts < ts:
            self._transitioned.clear()
            self._dirty.set()
            await self._transitioned.wait()

    async def _act(self, message: dict[str, Any], auth: Auth, admin: bool) -> None:
        executor = self._deployment.executor
        value, error = None, None
        with executor.executing(message["udfPath"]) as execution:
            try:
                value = await executor.run(
                    message["udfPath"],
                    from_convex_json(message["args"], numbers="float"),  # type: ignore[arg-type]
                    kind="action",
                    public_only=not admin,
                    auth=auth,
                )
            except Exception as exc:
                error = exc
        response = self._outcome("ActionResponse", message, value, error)
        response["logLines"] = [str(line) for line in execution.lines]
        self._post(response)

    def _outcome(
        self,
        kind: str,
        message: dict[str, Any],
        value: Any,
        error: Exception | None,
        *,
        encoded: bool = False,
    ) -> dict[str, Any]:
        """A response; ``encoded``: ``value`` is Convex JSON already."""
        if error is None and not encoded:
            try:
                value = to_convex_json(value)
            except ValueError as exc:
                error = exc
        if error is None:
            return protocol.outcome(kind, message["requestId"], value=value, log_lines=[])
        request_id = secrets.token_hex(8)
        text = client_message(
            error, request_id, self._deployment, production=self._backend.production
        )
        return protocol.outcome(
            kind, message["requestId"], error=text, error_data=error_data(error), log_lines=[]
        )


class _Close(Exception):
    """The session ends: the socket closes with ``code`` and ``reason`` (1000: done, the
    client reconnects only when it has a reason to; 1011 and 1013: it reconnects after a
    pause and sends again what it has not been answered)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _expires(token: Any) -> float | None:
    """When a (verified) JWT runs out: its ``exp``."""
    try:
        claims = jwt.decode(str(token), options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    expires = claims.get("exp")
    return float(expires) if isinstance(expires, int | float) else None


def _modification(query_id: int, result: Result) -> dict[str, Any]:
    if result.error is None:
        return {
            "type": "QueryUpdated",
            "queryId": query_id,
            "value": result.value,
            "logLines": result.log_lines,
            "journal": result.journal,
        }
    failed = {
        "type": "QueryFailed",
        "queryId": query_id,
        "errorMessage": result.error,
        "logLines": result.log_lines,
        "journal": result.journal,
    }
    if result.error_data is not None:
        failed["errorData"] = result.error_data
    return failed
