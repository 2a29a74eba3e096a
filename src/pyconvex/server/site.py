"""The site app: a deployment's HTTP actions as an ASGI application (port 3211).

Per request: route (``HttpRouter.match``), check the body size, build a
``Request``, run the handler in its own log-capturing execution with an
action's ``ctx``, and send its ``Response``. A bearer token is verified only
when the handler asks ``ctx.auth`` for the identity; a bad one never rejects
the request by itself (Convex's rule). Every error a client can cause
is a 4xx with a reason; a failing handler is a 500 whose details reach the
logs, and the client only in development.

This path runs for every request, so it does the least it can: no
middleware stack, no per-request allocation it can avoid, headers parsed
only when the handler asks for them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ..errors import BadRequestError, StoreUnavailableError
from ..functions import ActionCtx
from ..functions.failures import error_data, log_failure, uncaught_message
from ..functions.logs import Execution, current_execution
from ..http.request import Request, payload_too_large
from ..http.response import Response
from .asgi import (
    JSON_TYPE,
    Receive,
    Scope,
    Send,
    encode_json,
    header,
    send_bytes,
    send_json,
    send_text,
    send_unavailable,
)

if TYPE_CHECKING:
    from .backend import Backend

MAX_RESPONSE_BYTES = 20 * 1024 * 1024
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
_log = logging.getLogger("pyconvex.server")


class SiteApp:
    """ASGI app serving the HTTP actions of a :class:`Backend`'s deployment."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.backend.handle_other(scope, receive, send)
            return
        backend = self.backend
        executor = backend.deployment.executor
        router = executor.app.http
        raw_path = scope.get("raw_path")
        path: str = raw_path.decode("latin-1") if raw_path else scope["path"]
        method: str = scope["method"]
        found = router.match(path, method) if router is not None else None
        if found is None:
            await self._unrouted(scope, send, path, method)
            return
        (action, _, _, name), params = found
        # A fresh dict per request: handlers may change their own path_params.
        params = {key: unquote(value) for key, value in params.items()} if params else {}
        limit = backend.max_body
        if method not in _NO_BODY:
            length = header(scope, b"content-length")
            if length is not None and (
                not length.isdigit() or len(length) > 18 or int(length) > limit
            ):
                await self._bad_request(send, _length_error(length, limit), head=False)
                return
        request = Request(scope, receive, path, params, limit)
        env = executor.env
        if backend.env_refresher is None and env is not None and env.stale():
            await env.refresh()  # no refresher (used without lifespan): check per request
        authorization = header(scope, b"authorization")
        if authorization is not None:
            auth = backend.deployment.authenticator.auth_for(authorization)
            ctx = ActionCtx(executor, auth)
        elif backend.identity is not None:
            ctx = ActionCtx(executor, backend.identity)
        else:
            ctx = executor.anonymous_action_ctx
        execution = Execution(name, executor.log_sink, env)
        token = current_execution.set(execution)
        head = method == "HEAD"
        deadline = executor.deadlines.begin(executor.limits.http_action)
        try:
            try:
                if action.is_async:
                    response = await action.handler(ctx, request)
                else:
                    response = await executor.call_handler(action.handler, False, ctx, request)
                if response.__class__ is not Response and not isinstance(response, Response):
                    raise TypeError(
                        f"An HTTP action must return a pyconvex Response, not {_type_name(response)}"
                    )
            except asyncio.CancelledError:
                if not executor.deadlines.end(deadline):
                    raise  # the client went away, or the server is stopping
                deadline.task.uncancel()
                await self._timed_out(send, execution, head=head)
                return
            except BadRequestError as exc:
                await self._bad_request(send, exc, head=head)
                return
            except StoreUnavailableError as exc:
                await send_unavailable(send, exc, head=head)
                return
            except Exception as exc:
                await self._server_error(send, exc, execution.request_id, head=head)
                return
            body = response.body
            if body.__class__ is bytes and not response.custom_headers:
                # The common case inline: one coroutine less per request matters here.
                size = len(body)
                if size <= MAX_RESPONSE_BYTES:
                    headers = [(b"content-length", str(size).encode()), *response.raw_headers]
                    await send(
                        {
                            "type": "http.response.start",
                            "status": response.status,
                            "headers": headers,
                        }
                    )
                    await send({"type": "http.response.body", "body": b"" if head else body})
                    return
            await self._send(send, response, head, execution)
        finally:
            executor.deadlines.end(deadline)
            current_execution.reset(token)
            if execution.lines:
                execution.finish()

    # -- responses -------------------------------------------------------------------------

    async def _send(self, send: Send, response: Response, head: bool, execution: Execution) -> None:
        body = response.body
        headers = response.raw_headers
        if body is None or isinstance(body, bytes):
            data = body or b""
            if len(data) > MAX_RESPONSE_BYTES:
                error = ValueError(
                    f"The HTTP action's response is {len(data)} bytes, over the 20 MiB limit"
                )
                await self._server_error(send, error, execution.request_id, head=head)
                return
            if response.custom_headers and any(name == b"content-length" for name, _ in headers):
                await send(
                    {"type": "http.response.start", "status": response.status, "headers": headers}
                )
                await send({"type": "http.response.body", "body": b"" if head else data})
                return
            await send_bytes(send, response.status, data, headers, head=head)
            return
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if head:
            await send({"type": "http.response.body", "body": b""})
            return
        sent = 0
        try:
            async for chunk in body:
                piece = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                sent += len(piece)
                if sent > MAX_RESPONSE_BYTES:
                    # Too late for a status: stop here and say why in the logs.
                    raise ValueError("The HTTP action's streamed response passed the 20 MiB limit")
                if piece:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
        except Exception as exc:
            log_failure(self.backend.deployment, exc, execution.request_id)
        await send({"type": "http.response.body", "body": b""})

    async def _unrouted(self, scope: Scope, send: Send, path: str, method: str) -> None:
        router = self.backend.deployment.app.http
        allowed = router.allowed_methods(path) if router is not None else []
        head = method == "HEAD"
        if not allowed:
            await send_text(send, 404, "No matching routes found", head=head)
            return
        await send_text(
            send,
            405,
            f"Method {method} is not allowed for {path}",
            [(b"allow", ", ".join(allowed).encode())],
            head=head,
        )

    async def _timed_out(self, send: Send, execution: Execution, *, head: bool) -> None:
        limit = self.backend.http_time_limit
        error = TimeoutError(f"HTTP action timed out (maximum duration: {limit:g}s)")
        log_failure(self.backend.deployment, error, execution.request_id)
        body = {"code": f"[Request ID: {execution.request_id}] Server Error: {error}"}
        await send_bytes(send, 504, encode_json(body), [JSON_TYPE], head=head)

    async def _bad_request(self, send: Send, exc: BadRequestError, *, head: bool) -> None:
        await send_json(send, exc.status, {"code": exc.code, "message": str(exc)}, head=head)

    async def _server_error(
        self, send: Send, exc: BaseException, request_id: str, *, head: bool
    ) -> None:
        log_failure(self.backend.deployment, exc, request_id)
        code = f"[Request ID: {request_id}] Server Error"
        if not self.backend.production:
            code += ": " + uncaught_message(exc)
        body: dict[str, Any] = {"code": code}
        data = error_data(exc)
        if data is not None:
            body["data"] = data
        await send_bytes(
            send, 500, encode_json(body), [(b"content-type", b"application/json")], head=head
        )


def _type_name(value: object) -> str:
    return "None" if value is None else type(value).__name__


def _length_error(length: bytes, limit: int) -> BadRequestError:
    if not length.isdigit():
        return BadRequestError(f"Invalid Content-Length header: {length[:40]!r}")
    return payload_too_large(limit)
