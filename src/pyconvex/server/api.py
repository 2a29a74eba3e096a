"""The API app: the function API in Convex's wire format, and admin endpoints (port 3210).

Function API (``public_api.rs`` in convex-backend)::

    POST /api/query | /api/mutation | /api/action   {"path": "items:list", "args": {...}, "format": "json"}
    POST /api/run/items/list                         {"args": {...}}
    POST /api/query_ts                               -> {"ts": "<newest commit, u64 as decimal>"}
    POST /api/query_at_ts                            {"path", "args", "ts", "format"}: at that commit

    200 {"status": "success", "value": ..., "logLines": ["[LOG] ..."]}
    200 {"status": "error", "errorMessage": "...", "errorData": ...}

A function's failure is a 200 with ``status: "error"``; only a malformed
request (4xx), a bad admin key or a bearer token that does not verify (401)
is not. ``args`` are Convex JSON;
``format`` ``"json"`` (the default) answers in clean JSON,
``"convex_encoded_json"`` losslessly (``$integer``, ``$float``, ``$bytes``).
``logLines`` and ``errorData`` are left out when empty.

Only public functions answer, unless the caller sends
``Authorization: Convex <admin key>``. With the admin key:

    GET /api/env, PUT /api/env/NAME {"value": ...}, DELETE /api/env/NAME
    GET /api/logs[?follow=1]     recent log lines as JSON lines (then new ones as they come)
    GET|HEAD /api/storage/ID     a stored file (anyone with the URL; ids are unguessable)
    POST /api/storage/upload?token=...   an upload through a generate_upload_url() URL
    GET /api/webhooks[?limit=50], GET /api/webhooks/ID, POST /api/webhooks/ID/replay,
    POST /api/webhooks/op (one `pyconvex webhooks` operation: webhooks/admin.py)
    GET /api/crons               the cron jobs, their next run and last runs
    GET /api/data                the tables and their sizes
    GET /api/data/TABLE[?limit=100&order=desc]   documents, as Convex JSON

``/dashboard/`` is the dashboard (``pyconvex.dashboard``), signed in with the admin key.

Hostile clients (API.md section 20, docs/security.md): ``POST`` and ``PUT`` take only
``Content-Type: application/json`` (415), except the upload URL; a ``Content-Length`` over
the body limit is a 413 before the body is read; JSON nested deeper than a Convex value
may be is a 400 naming the path; in development a ``Host`` that does not name this machine
is a 421 (server/hosts.py).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import values
from ..auth import TokenAuth
from ..errors import (
    AuthenticationError,
    BadRequestError,
    InvalidTimestampError,
    InvalidValueError,
    StoreUnavailableError,
)
from ..functions.define import Kind
from ..functions.failures import client_message, error_data
from ..functions.logs import LogLine, current_execution
from ..http.request import QueryParams, Request, payload_too_large
from ..sync.session import Session, sync_path
from .admin_key import matches
from .asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    dashboard_path,
    encode_json,
    header,
    send_json,
    send_text,
    send_unavailable,
)
from .files import serve_file, take_upload
from .hosts import ENV_NAME as HOSTS_ENV_NAME

if TYPE_CHECKING:
    from .backend import Backend

_KINDS: dict[str, Kind] = {
    "/api/query": "query",
    "/api/query_at_ts": "query",
    "/api/mutation": "mutation",
    "/api/action": "action",
}
_U64 = 2**64
_FORMATS = {
    "json": values.to_clean_json,
    "convex_encoded_json": values.to_convex_json,
}
_JSON_METHODS = frozenset({"POST", "PUT"})
_UPLOAD = "/api/storage/upload"


class _AdminRequired(Exception):
    pass


class ApiApp:
    """ASGI app: the function API and the admin endpoints of a :class:`Backend`."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._dashboard_app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket" and sync_path(scope["path"]):
                if self._misdirected(scope) or self._foreign_page(scope):
                    # Closed before it is accepted: the handshake is answered 403.
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await Session(self.backend, scope, receive, send).run()
                return
            await self.backend.handle_other(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if self._misdirected(scope):
            await self._refuse_host(scope, send)
            return
        if dashboard_path(path):
            await self._dashboard(scope, receive, send)
            return
        try:
            admin = self._is_admin(scope)
        except _AdminRequired:
            await send_json(
                send,
                401,
                {
                    "code": "BadAdminKey",
                    "message": "The provided admin key was invalid for this deployment",
                },
            )
            return
        handler = self._route(path, method)
        if handler is None:
            await send_text(send, 404, "No matching routes found")
            return
        if method in _JSON_METHODS and path != _UPLOAD and not _is_json(scope):
            # Any web page may POST text/plain or a form to any address without asking (no
            # CORS preflight); application/json it may not. Upload URLs carry their own token.
            await send_json(send, 415, {
                "code": "UnsupportedMediaType",
                "message": (
                    f"{method} /api/... takes only Content-Type: application/json, not "
                    f"{_shown(header(scope, b'content-type'))}"
                ),
            })  # fmt: skip
            return
        try:
            await handler(scope, receive, send, admin)
        except BadRequestError as exc:
            await send_json(send, exc.status, {"code": exc.code, "message": str(exc)})
        except StoreUnavailableError as exc:
            await send_unavailable(send, exc)
        except _AdminRequired:
            await send_json(
                send,
                403,
                {
                    "code": "Forbidden",
                    "message": "This endpoint needs the admin key (Authorization: Convex <key>)",
                },
            )

    def _misdirected(self, scope: Scope) -> bool:
        hosts = self.backend.hosts
        if hosts is None:
            return False
        # Every Host header, should there be several: the server may not pick the one we do.
        named = [value for key, value in scope["headers"] if key == b"host"]
        return not all(hosts.allows(bytes(value)) for value in named)

    def _foreign_page(self, scope: Scope) -> bool:
        origins = self.backend.origins
        return origins is not None and not origins.allows_origin(header(scope, b"origin"))

    async def _refuse_host(self, scope: Scope, send: Send) -> None:
        # Which names it does answer is left out: the page asking may be the attacker's.
        message = (
            "This server answers only requests addressed to this machine (localhost, an IP "
            f"address, its hostname) or to a name in {HOSTS_ENV_NAME}, not Host "
            f"{_shown(header(scope, b'host'))}: a web page may not reach it through a name of "
            "its own (DNS rebinding)."
        )
        body = {"code": "MisdirectedRequest", "message": message}
        await send_json(send, 421, body, head=scope["method"] == "HEAD")

    def _is_admin(self, scope: Scope) -> bool:
        authorization = header(scope, b"authorization")
        if authorization is None or not authorization.startswith(b"Convex "):
            return False
        if not matches(self.backend.admin_key, authorization[7:].strip()):
            raise _AdminRequired
        return True

    def _route(
        self, path: str, method: str
    ) -> Callable[[Scope, Receive, Send, bool], Awaitable[None]] | None:
        if method == "POST" and (path in _KINDS or path.startswith("/api/run/")):
            return self._function
        if method == "POST" and path == "/api/query_ts":
            return self._query_ts
        if path == "/api/env" and method == "GET":
            return self._env_list
        if path.startswith("/api/env/") and method in ("PUT", "DELETE"):
            return self._env_change
        if path == "/api/logs" and method == "GET":
            return self._logs
        if path == "/api/sync_stats" and method == "GET":
            return self._sync_stats
        if path == "/api/crons" and method == "GET":
            return self._crons
        if (path == "/api/data" or path.startswith("/api/data/")) and method == "GET":
            return self._data
        if path.startswith("/api/webhooks") and method in ("GET", "POST"):
            return self._webhooks
        if path == _UPLOAD and method == "POST":
            return self._upload
        if path.startswith("/api/storage/") and method in ("GET", "HEAD"):
            return self._file
        return None

    # -- the dashboard -----------------------------------------------------------------------

    async def _dashboard(self, scope: Scope, receive: Receive, send: Send) -> None:
        backend = self.backend
        if not backend.dashboard:
            await send_text(send, 404, "No matching routes found")
            return
        if scope["method"] == "POST":
            length = header(scope, b"content-length")
            limit = (
                backend.deployment.files.max_upload
                if scope["path"] == "/dashboard/files/upload"
                else backend.max_body
            )
            if length is None or not length.isdigit():
                await send_text(send, 411, "A POST to the dashboard needs a Content-Length")
                return
            # Leading zeros are allowed, digits beyond int()'s limit are not: strip first.
            if len(length.lstrip(b"0")) > 18 or int(length.lstrip(b"0") or b"0") > limit:
                await send_text(send, 413, f"The request body is over the limit of {limit} bytes")
                return
        if self._dashboard_app is None:
            from ..dashboard import dashboard_app  # Jinja and the pages, only when used

            self._dashboard_app = dashboard_app(backend)
        await self._dashboard_app(scope, receive, send)

    # -- files -------------------------------------------------------------------------------

    async def _file(self, scope: Scope, receive: Receive, send: Send, admin: bool) -> None:
        storage_id = scope["path"].removeprefix("/api/storage/")
        await serve_file(self.backend.deployment.files, scope, send, storage_id)

    async def _upload(self, scope: Scope, receive: Receive, send: Send, admin: bool) -> None:
        await take_upload(self.backend, scope, receive, send)

    # -- the function API -------------------------------------------------------------------

    async def _function(self, scope: Scope, receive: Receive, send: Send, admin: bool) -> None:
        path: str = scope["path"]
        # ``args`` may nest as deep as any Convex value, inside {"args": [...]}.
        body = await self._json_body(scope, receive, envelope=2)
        kind = _KINDS.get(path)
        named = _run_path(path) if kind is None else body.get("path")
        if not isinstance(named, str) or not named:
            raise BadRequestError('The request body needs a "path", e.g. {"path": "items:list"}')
        name: str = named
        format_name = body.get("format") or "json"
        export = _FORMATS.get(format_name) if isinstance(format_name, str) else None
        if export is None:
            raise BadRequestError(
                f'Unknown format {format_name!r}: use "json" or "convex_encoded_json"'
            )
        args = body.get("args", {})
        if isinstance(args, list) and len(args) == 1:
            args = args[0]  # Convex clients send [args]
        try:
            # Convex's clients know float64 numbers and bigints ($integer): every JSON number
            # they send is a float. Plain JSON (curl) means its integers.
            numbers = "float" if format_name == "convex_encoded_json" else "int"
            args = values.from_convex_json(args, numbers=numbers)
        except InvalidValueError as exc:
            raise BadRequestError(f"Invalid arguments: {exc}") from None
        if not isinstance(args, dict):
            raise BadRequestError(f'"args" must be an object, not {values.display_value(args)}')
        deep = values.deep_path(args, values.MAX_JSON_DEPTH)
        if deep is not None:
            raise BadRequestError(
                f"Invalid arguments: nested more than {values.MAX_JSON_DEPTH} levels deep "
                f"at path {deep}"
            )
        ts = _timestamp(body.get("ts")) if path == "/api/query_at_ts" else None

        # Unlike an HTTP action, a call with a bad token is refused up front (401), as
        # Convex's clients expect: they then fetch a fresh token and call again.
        auth = self.backend.deployment.authenticator.auth_for(header(scope, b"authorization"))
        if isinstance(auth, TokenAuth):
            try:
                await auth.get_user_identity()
            except AuthenticationError as exc:
                body = {"code": "Unauthenticated", "reason": exc.reason, "message": str(exc)}
                await send_json(send, 401, body)
                return
        executor = self.backend.deployment.executor
        execution = executor.execution(name)
        token = current_execution.set(execution)
        try:
            result: dict[str, Any]
            try:
                value = await executor.run(
                    name, args, kind=kind, public_only=not admin, auth=auth, ts=ts
                )
                result = {"status": "success", "value": export(value)}
            except (StoreUnavailableError, InvalidTimestampError):
                raise  # not the function's failure: a 503 (clients retry), a 400
            except Exception as exc:
                result = {
                    "status": "error",
                    "errorMessage": self._error_message(exc, execution.request_id),
                }
                data = error_data(exc)
                if data is not None:
                    result["errorData"] = data
            if execution.lines:
                result["logLines"] = [str(line) for line in execution.lines]
        finally:
            current_execution.reset(token)
            execution.finish()
        await send_json(send, 200, result)

    async def _query_ts(self, scope: Scope, receive: Receive, send: Send, admin: bool) -> None:
        """The newest commit's timestamp, for ``/api/query_at_ts`` (``consistentQuery``)."""
        await send_json(send, 200, {"ts": str(await self.backend.deployment.database.head())})

    def _error_message(self, exc: Exception, request_id: str) -> str:
        backend = self.backend
        return client_message(exc, request_id, backend.deployment, production=backend.production)

    async def _json_body(
        self, scope: Scope, receive: Receive, *, envelope: int = 0
    ) -> dict[str, Any]:
        """The request body, a JSON object nested at most ``envelope`` levels deeper than
        a Convex value may be."""
        limit = self.backend.max_body
        length = header(scope, b"content-length")
        # Refused from the header alone: the client need not send (nor we wait for) the rest.
        if length is not None and not length.isdigit():
            raise BadRequestError(f"Invalid Content-Length header: {_shown(length)}")
        if length is not None and (len(length) > 18 or int(length) > limit):
            raise payload_too_large(limit)
        raw = await Request(scope, receive, max_body=limit).body()
        depth = values.MAX_JSON_DEPTH + envelope
        try:
            body = values.parse_json(raw, max_depth=depth) if raw else {}
        except values.NestingError as exc:
            limits = f" (arguments may nest {values.MAX_JSON_DEPTH})" if envelope else ""
            raise BadRequestError(f"The request body is JSON {exc}{limits}") from None
        except InvalidValueError as exc:
            raise BadRequestError(f"The request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequestError("The request body must be a JSON object")
        return body

    # -- admin: environment variables ----------------------------------------------------

    async def _env_list(self, scope: Scope, receive: Receive, send: Send, admin: bool) -> None:
        if not admin:
            raise _AdminRequired
        await send_json(send, 200, {"variables": await self.backend.deployment.env.list()})

    async def _env_change(self, scope: Scope, receive: Receive, send: Send, admin: bool) -> None:
        if not admin:
            raise _AdminRequired
        name = scope["path"].removeprefix("/api/env/")
        env = self.backend.deployment.env
        try:
            if scope["method"] == "DELETE":
                removed = await env.remove(name)
                await send_json(send, 200, {"removed": removed})
                return
            body = await self._json_body(scope, receive)
            await env.set(name, body.get("value"))  # type: ignore[arg-type]
        except ValueError as exc:
            raise BadRequestError(str(exc)) from None
        await send_json(send, 200, {"name": name})

    # -- admin: live queries ----------------------------------------------------------------

    async def _sync_stats(self, scope: Scope, receive: Receive, send: Send, admin: bool) -> None:
        if not admin:
            raise _AdminRequired
        sessions = self.backend.sync_sessions
        queries = self.backend.sync_queries()
        await send_json(send, 200, {
            "sessions": len(sessions),
            "subscriptions": sum(session.subscriptions for session in sessions),
            "queries": queries.watched(),
            "query_runs": queries.runs,
            "unchanged_runs": queries.unchanged_runs,
        })  # fmt: skip

    # -- admin: cron jobs -------------------------------------------------------------------

    async def _crons(self, scope: Scope, receive: Receive, send: Send, admin: bool) -> None:
        if not admin:
            raise _AdminRequired
        from ..background.crons import listing

        await send_json(send, 200, {"crons": await listing(self.backend.deployment.database)})

    # -- admin: data ------------------------------------------------------------------------

    async def _data(self, scope: Scope, receive: Receive, send: Send, admin: bool) -> None:
        if not admin:
            raise _AdminRequired
        database = self.backend.deployment.database
        table = scope["path"].removeprefix("/api/data").strip("/")
        if not table:
            await send_json(send, 200, {"tables": await database.tables()})
            return
        query = QueryParams(scope.get("query_string", b""))
        limit, order = query.get("limit", "100"), query.get("order", "desc")
        if not _count(limit) or order not in ("asc", "desc"):
            raise BadRequestError("limit must be a whole number and order asc or desc")
        try:
            async with database.read(system=table.startswith("_")) as reader:
                docs = await reader.query(table).order(order).take(int(limit))
        except ValueError as exc:
            raise BadRequestError(str(exc)) from None
        documents = [values.to_convex_json(doc, wire=False) for doc in docs]
        await send_json(send, 200, {"documents": documents})

    # -- admin: webhook events ----------------------------------------------------------------

    async def _webhooks(self, scope: Scope, receive: Receive, send: Send, admin: bool) -> None:
        if not admin:
            raise _AdminRequired
        from ..webhooks import admin as webhook_admin
        from ..webhooks import events, operations

        deployment = self.backend.deployment
        rest = scope["path"].removeprefix("/api/webhooks").strip("/")
        try:
            if scope["method"] == "POST" and rest == "op":  # pyconvex webhooks --url
                request = await self._json_body(scope, receive)
                try:
                    answer = await webhook_admin.run(deployment, request)
                except ValueError as exc:
                    raise BadRequestError(str(exc)) from None
                await send_json(send, 200, answer)
            elif scope["method"] == "POST" and rest.endswith("/replay"):
                try:  # 404 if unknown
                    await operations.replay(deployment, rest.removesuffix("/replay"))
                except ValueError as exc:  # being processed now
                    raise BadRequestError(str(exc)) from None
                await send_json(send, 200, {"replayed": True})
            elif scope["method"] == "GET" and not rest:
                limit = QueryParams(scope.get("query_string", b"")).get("limit", "50")
                count = int(limit) if _count(limit) else 50
                found = await events.recent(deployment, min(count, 1000))
                await send_json(send, 200, {"events": [events.summary(row) for row in found]})
            elif scope["method"] == "GET":
                await send_json(
                    send, 200, {"event": events.detail(await events.get(deployment, rest))}
                )
            else:
                await send_text(send, 404, "No matching routes found")
        except LookupError as exc:
            await send_json(send, 404, {"code": "NotFound", "message": str(exc)})

    # -- admin: logs -----------------------------------------------------------------------

    async def _logs(self, scope: Scope, receive: Receive, send: Send, admin: bool) -> None:
        if not admin:
            raise _AdminRequired
        follow = b"follow=1" in scope.get("query_string", b"").split(b"&")
        backend = self.backend
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/x-ndjson")],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": _lines(list(backend.recent_logs)),
                "more_body": True,
            }
        )
        if follow:
            async for batch in _follow(backend, receive):
                await send({"type": "http.response.body", "body": _lines(batch), "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def _is_json(scope: Scope) -> bool:
    """Whether the request says its body is JSON: one ``application/json`` type, with any
    parameters (``; charset=utf-8``)."""
    value = header(scope, b"content-type")
    if value is None or b"," in value:
        return False
    return value.split(b";", 1)[0].strip().lower() == b"application/json"


def _count(text: str) -> bool:
    """Whether a query parameter is a plain count: ASCII digits (``int`` takes ``"²"`` and
    ``"٣"`` too, or fails past 4,300 digits), not absurdly many."""
    return text.isascii() and text.isdigit() and len(text) <= 9


def _shown(value: bytes | None) -> str:
    """A header value as an error message quotes it: short, printable."""
    if value is None:
        return "none"
    text = value[:80].decode("latin-1")
    return repr(text + ("..." if len(value) > 80 else ""))


def _run_path(path: str) -> str:
    """``/api/run/a/b/fn`` -> ``a/b:fn``."""
    rest = path.removeprefix("/api/run/").strip("/")
    module, _, function = rest.rpartition("/")
    if not module or not function:
        raise BadRequestError(
            f"/api/run/ needs a module and a function, e.g. /api/run/items/list, got {path}"
        )
    return f"{module}:{function}"


def _timestamp(value: Any) -> int:
    """A commit timestamp as clients send it: a u64 as a decimal string (what ``query_ts``
    answers), or as Convex's own backend spells it, 8 little-endian bytes in base64."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        ts = int(value)
    elif isinstance(value, str) and len(value) == 12:
        try:
            ts = int.from_bytes(base64.b64decode(value, validate=True), "little")
        except ValueError:
            ts = -1
    else:
        ts = -1
    if not 0 <= ts < _U64:
        raise BadRequestError(
            f'"ts" must be a timestamp from /api/query_ts (a u64 as a decimal string), '
            f"not {values.display_value(value)}"
        )
    return ts


def _lines(lines: list[LogLine]) -> bytes:
    return b"".join(encode_json(line.to_json()) + b"\n" for line in lines)


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _follow(backend: Backend, receive: Receive) -> AsyncIterator[list[LogLine]]:
    """New log batches until the client goes away."""
    queue: asyncio.Queue[list[LogLine]] = asyncio.Queue()
    backend.log_followers.add(queue)
    disconnected = asyncio.ensure_future(_disconnect(receive))
    try:
        while True:
            batch = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({batch, disconnected}, return_when=asyncio.FIRST_COMPLETED)
            if batch not in done:
                batch.cancel()
                return
            yield batch.result()
    finally:
        disconnected.cancel()
        backend.log_followers.discard(queue)
