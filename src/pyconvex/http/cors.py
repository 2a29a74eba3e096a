"""CORS for HTTP actions: ``cors_router`` (convex-helpers' ``corsRouter``) and ``cors_headers``.

    cors = cors_router(http, allowed_origins=["https://app.example.com"],
                       allowed_headers=["Content-Type", "Authorization"])
    cors.route(path="/api/data", method="POST", handler=data)

Every route registered through ``cors`` gets an automatic preflight: OPTIONS on
the same path (or prefix) answers 204 with ``Access-Control-Allow-Methods``
listing only the methods registered through ``cors`` there, the allowed
headers and the max age. Its responses carry the allowed origin (the request's
``Origin`` echoed, with ``Vary: Origin``), the exposed headers and, if asked,
``Access-Control-Allow-Credentials``. A disallowed origin gets no CORS headers
(so the browser blocks the read), or a 403 with ``enforce_allowed_origins``.

``allowed_origins`` holds ``"*"``, exact origins (``"https://app.example.com"``),
``"*.example.com"`` (https only: the domain and any subdomain), or is a
function ``(request) -> list`` (may be async). Any option can be overridden per
route: ``cors.route(..., allowed_origins=[...])``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from ..functions.define import HttpAction
from .request import Request
from .response import Response
from .router import ROUTABLE_METHODS, HttpRouter, as_action

DEFAULT_EXPOSED_HEADERS = ("Content-Range", "Accept-Ranges")
Origins = Sequence[str] | Callable[[Request], Any]


@dataclass(frozen=True)
class CorsConfig:
    allowed_origins: Origins = ("*",)
    allowed_headers: Sequence[str] = ("Content-Type",)
    exposed_headers: Sequence[str] | None = None
    allow_credentials: bool = False
    max_age: int = 86400
    enforce_allowed_origins: bool = False

    async def origins(self, request: Request) -> list[str]:
        found = self.allowed_origins
        if callable(found):
            found = found(request)
            if inspect.isawaitable(found):
                found = await found
        return list(found)

    def common(self) -> dict[str, str]:
        headers = {"Vary": "Origin"}
        if self.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        exposed = DEFAULT_EXPOSED_HEADERS if self.exposed_headers is None else self.exposed_headers
        if exposed:
            headers["Access-Control-Expose-Headers"] = ", ".join(exposed)
        return headers


def origin_allowed(origin: str, allowed: Sequence[str]) -> bool:
    """Whether ``origin`` matches one of ``allowed`` (``"*"``, exact, or ``"*.domain"`` on https).

    >>> origin_allowed("https://a.example.com", ["*.example.com"])
    True
    >>> origin_allowed("http://a.example.com", ["*.example.com"])
    False
    """
    for pattern in allowed:
        if pattern == "*" or pattern == origin:
            return True
        if pattern.startswith("*."):
            try:
                parts = urlsplit(origin)
                host = parts.hostname or ""
            except ValueError:
                continue
            if parts.scheme == "https" and (host.endswith(pattern[1:]) or host == pattern[2:]):
                return True
    return False


async def _allowed_origin(config: CorsConfig, request: Request) -> str | None:
    origin = request.headers.get("origin")
    if not origin:
        return None
    return origin if origin_allowed(origin, await config.origins(request)) else None


async def cors_headers(request: Request, **options: Any) -> dict[str, str]:
    """The CORS headers for a hand-written route's response (no preflight handling).

    return Response.json(data, headers=await cors_headers(request, allowed_origins=[APP]))
    """
    config = CorsConfig(**options)
    headers = config.common()
    origin = await _allowed_origin(config, request)
    if origin is not None:
        headers["Access-Control-Allow-Origin"] = origin
    return headers


def _preflight(config: CorsConfig, methods: list[str]) -> HttpAction:
    async def preflight(ctx: Any, request: Request) -> Response:
        origin = await _allowed_origin(config, request)
        if config.enforce_allowed_origins and origin is None:
            return Response(status=403)
        headers = config.common()
        if origin is not None:
            headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Methods"] = ", ".join(methods)
        headers["Access-Control-Allow-Headers"] = ", ".join(config.allowed_headers)
        headers["Access-Control-Max-Age"] = str(config.max_age)
        return Response(status=204, headers=headers)

    action = HttpAction(preflight)
    action.__name__ = "cors_preflight"
    action.cors_preflight = True  # type: ignore[attr-defined]
    return action


def _with_cors(config: CorsConfig, original: HttpAction) -> HttpAction:
    async def with_cors(ctx: Any, request: Request) -> Any:
        origin = await _allowed_origin(config, request)
        if config.enforce_allowed_origins and origin is None:
            return Response(status=403)
        if original.is_async:
            response = await original.handler(ctx, request)
        else:
            response = await ctx._executor.call_handler(original.handler, False, ctx, request)
        if isinstance(response, Response):
            headers = response.headers
            if origin is not None:
                headers["Access-Control-Allow-Origin"] = origin
            for name, value in config.common().items():
                headers[name] = value
        return response

    action = HttpAction(with_cors)
    action.__name__ = original.__name__
    action.__qualname__ = original.__qualname__
    action.__module__ = original.__module__
    return action


class CorsRouter:
    """Routes added through it get CORS headers and an automatic OPTIONS preflight."""

    def __init__(self, http: HttpRouter, config: CorsConfig) -> None:
        self.http = http
        self.config = config
        self._methods: dict[tuple[str | None, str | None], list[str]] = {}

    def route(
        self,
        *,
        path: str | None = None,
        path_prefix: str | None = None,
        method: str,
        handler: Any = None,
        **overrides: Any,
    ) -> Any:
        """Like ``HttpRouter.route`` (decorator form included), plus per-route CORS options."""
        if handler is None:

            def decorator(fn: Callable[..., Any]) -> HttpAction:
                action = as_action(fn)
                self.route(
                    path=path, path_prefix=path_prefix, method=method, handler=action, **overrides
                )
                return action

            return decorator
        if method == "OPTIONS":
            raise ValueError(
                "cors_router answers OPTIONS itself: route the other methods through it"
            )
        config = replace(self.config, **overrides) if overrides else self.config
        original = as_action(handler)
        self.http.route(
            path=path, path_prefix=path_prefix, method=method, handler=_with_cors(config, original)
        )
        methods = self._methods.setdefault((path, path_prefix), [])
        if method not in methods:
            methods.append(method)
        existing = self.http._registered(path, path_prefix, "OPTIONS")
        if existing is not None:
            if not getattr(existing, "cors_preflight", False):
                where = path if path is not None else path_prefix
                raise ValueError(
                    f"{where} already has an OPTIONS route of its own; cors_router answers OPTIONS itself"
                )
            self.http._unregister(path, path_prefix, "OPTIONS")
        ordered = [m for m in ROUTABLE_METHODS if m in methods]
        self.http.route(
            path=path,
            path_prefix=path_prefix,
            method="OPTIONS",
            handler=_preflight(config, ordered),
        )
        return None


def cors_router(
    http: HttpRouter,
    *,
    allowed_origins: Origins = ("*",),
    allowed_headers: Sequence[str] = ("Content-Type",),
    exposed_headers: Sequence[str] | None = None,
    allow_credentials: bool = False,
    max_age: int = 86400,
    enforce_allowed_origins: bool = False,
) -> CorsRouter:
    """A router over ``http`` that adds CORS to the routes registered through it."""
    return CorsRouter(
        http,
        CorsConfig(
            allowed_origins=allowed_origins,
            allowed_headers=allowed_headers,
            exposed_headers=exposed_headers,
            allow_credentials=allow_credentials,
            max_age=max_age,
            enforce_allowed_origins=enforce_allowed_origins,
        ),
    )
