"""``Request``: what an HTTP action receives (the Fetch API, with Python names).

    @http_action
    async def create(ctx, request: Request) -> Response:
        data = await request.json()                 # ValueError on invalid JSON
        raw = await request.body()                  # the exact bytes, still there
        token = request.headers.get("authorization")
        page = request.query.get("page", "1")
        ...

Everything is read lazily from the ASGI scope, so a handler pays only for
what it touches. The body is read once and kept (up to the server's body
limit), so ``body()`` after ``json()`` or ``form_data()`` returns the raw
bytes, which is what webhook signatures are computed over. ``stream()`` reads
the body chunk by chunk without keeping it, for large uploads.

Handlers of GET, HEAD and OPTIONS requests see no body, as in Convex.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, MutableMapping
from typing import Any

from starlette.datastructures import FormData, Headers, QueryParams, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser

from ..errors import BadRequestError, InvalidValueError, PayloadTooLargeError
from ..values import NestingError, parse_json

__all__ = ["FormData", "Headers", "QueryParams", "Request", "UploadFile"]

Scope = MutableMapping[str, Any]
Receive = Any

_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_MAX_BODY = 20 * 1024 * 1024


def payload_too_large(limit: int) -> PayloadTooLargeError:
    size = f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"
    return PayloadTooLargeError(f"Request body is over the limit of {size}")


class Request:
    """An incoming HTTP request.

    Attributes: ``method``, ``url`` (absolute), ``path`` (as sent, still
    percent-encoded), ``query`` (multi-dict with ``get``/``getlist``),
    ``path_params`` (the ``{name}`` segments, decoded), ``headers``
    (case-insensitive multi-dict), ``client`` (``(host, port)`` or None).
    """

    __slots__ = (
        "_body",
        "_consumed",
        "_headers",
        "_query",
        "_receive",
        "_scope",
        "max_body",
        "path",
        "path_params",
    )

    # Plain ``def`` HTTP actions get this object through the sync facade.
    _sync_facade = True

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        path: str | None = None,
        path_params: dict[str, str] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._scope = scope
        self._receive = receive
        self.path: str = path if path is not None else scope["path"]
        self.path_params: dict[str, str] = path_params if path_params is not None else {}
        self.max_body = max_body
        self._body: bytes | None = b"" if scope["method"] in _NO_BODY else None
        # _headers, _query and _consumed are set on first use: most handlers never touch them.

    # -- the request line and headers --------------------------------------------------

    @property
    def method(self) -> str:
        return str(self._scope["method"])

    @property
    def headers(self) -> Headers:
        try:
            return self._headers
        except AttributeError:
            self._headers: Headers = Headers(scope=self._scope)
            return self._headers

    @property
    def query(self) -> QueryParams:
        try:
            return self._query
        except AttributeError:
            self._query: QueryParams = QueryParams(self._scope.get("query_string", b""))
            return self._query

    @property
    def client(self) -> tuple[str, int] | None:
        client = self._scope.get("client")
        return None if client is None else (str(client[0]), int(client[1]))

    @property
    def url(self) -> str:
        """The absolute URL. The scheme honours ``X-Forwarded-Proto`` from trusted proxies
        (the server's ``--forwarded-allow-ips``)."""
        scope = self._scope
        host = self.headers.get("host")
        if host is None:
            server = scope.get("server")
            host = f"{server[0]}:{server[1]}" if server else "localhost"
        query = scope.get("query_string", b"")
        tail = "?" + query.decode("latin-1") if query else ""
        return f"{scope.get('scheme', 'http')}://{host}{self.path}{tail}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"

    # -- the body --------------------------------------------------------------------------

    async def _chunks(self, *, keep: bool) -> AsyncGenerator[bytes, None]:
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if getattr(self, "_consumed", False):
            raise RuntimeError("The request body was already read by stream()")
        self._consumed = True
        kept: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise BadRequestError("The client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body:
                    raise payload_too_large(self.max_body)
                if keep:
                    kept.append(chunk)
                yield chunk
            if not message.get("more_body", False):
                break
        if keep:
            self._body = b"".join(kept)

    def stream(self) -> AsyncIterator[bytes]:
        """The body chunk by chunk, as it arrives, without keeping it in memory.

        async for chunk in request.stream():
            hasher.update(chunk)
        """
        return self._chunks(keep=False)

    async def body(self) -> bytes:
        """The raw body bytes (read once, then kept)."""
        if self._body is None:
            async for _ in self._chunks(keep=True):
                pass
        assert self._body is not None
        return self._body

    bytes = body  # Fetch's name: ``await request.bytes()``

    async def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes become U+FFFD, as in Fetch)."""
        return (await self.body()).decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` (a ``BadRequestError``) if it is not,
        or if it nests deeper than a Convex value may (64 levels). Left uncaught, that is a
        400 with the reason, not a 500."""
        raw = await self.body()
        try:
            return parse_json(raw)
        except NestingError as exc:
            raise BadRequestError(f"The request body is JSON {exc}") from None
        except InvalidValueError as exc:
            raise BadRequestError(f"Invalid JSON in the request body: {exc}") from None

    async def form_data(self) -> FormData:
        """The body as a form: ``application/x-www-form-urlencoded`` or ``multipart/form-data``.

        Fields are strings; files are ``UploadFile`` objects with ``filename``,
        ``content_type`` and ``await read()``, spooled to disk past 1 MiB.
        """
        content_type = self.headers.get("content-type", "").partition(";")[0].strip().lower()
        try:
            if content_type == "multipart/form-data":
                return await MultiPartParser(self.headers, self._chunks(keep=True)).parse()
            if content_type == "application/x-www-form-urlencoded":
                return await FormParser(self.headers, self._chunks(keep=True)).parse()
        except MultiPartException as exc:
            raise BadRequestError(f"Invalid form data: {exc.message}") from None
        raise BadRequestError(
            "form_data() needs a Content-Type of application/x-www-form-urlencoded or "
            f"multipart/form-data, got {content_type or 'none'!r}"
        )
