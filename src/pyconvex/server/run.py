"""Serving a :class:`Backend` with uvicorn: the API and the site on two sockets, one event loop.

Both apps share the loop, the deployment and its database connections, and one cap on
open connections; uvicorn's HTTP protocol is replaced by one that enforces the limits
of :mod:`.connections` (header, body and idle timeouts, header size) on both ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, cast

import uvicorn

from . import connections
from .api import ApiApp
from .asgi import ASGIApp, Receive, Scope, Send
from .backend import Backend
from .connections import ConnectionGuard
from .site import SiteApp


@dataclass
class Listeners:
    """The bound sockets and the URLs they answer on."""

    api: socket.socket
    site: socket.socket
    host: str

    @property
    def api_port(self) -> int:
        return int(self.api.getsockname()[1])

    @property
    def site_port(self) -> int:
        return int(self.site.getsockname()[1])

    def url(self, port: int) -> str:
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return self.url(self.api_port)

    @property
    def site_url(self) -> str:
        return self.url(self.site_port)

    def close(self) -> None:
        self.api.close()
        self.site.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"Cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def bind(host: str, port: int, site_port: int) -> Listeners:
    """Bind both sockets now, so clients may connect before the server has started."""
    api = _bind(host, port)
    try:
        site = _bind(host, site_port)
    except BaseException:
        api.close()
        raise
    return Listeners(api, site, host)


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its sibling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def make_server(
    app: ASGIApp,
    *,
    guard: ConnectionGuard,
    forwarded_allow_ips: str | None = None,
    log_level: str = "warning",
    signals: bool = True,
) -> uvicorn.Server:
    """A uvicorn server for ``app`` whose connections count against ``guard`` (servers of
    one process should share one: the file-descriptor limit is the process's)."""
    http, websocket = connections.protocol_classes(guard)
    config = uvicorn.Config(
        app,
        http=http,
        ws=websocket if websocket is not None else "none",
        # uvicorn annotates an int, but hands it to call_later, which takes any seconds
        # (tests lower it below one).
        timeout_keep_alive=cast(int, connections.KEEP_ALIVE_TIMEOUT),
        lifespan="on",
        interface="asgi3",
        access_log=False,
        log_level=log_level,
        # X-Forwarded-Proto/-For are believed only from these addresses (uvicorn's default: 127.0.0.1).
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
    )
    return uvicorn.Server(config) if signals else _QuietServer(config)


def _observable(backend: Backend, port: Literal["api", "site"]) -> ASGIApp:
    """The app of one socket, telling the backend's request observers of each HTTP request.

    Checked per request, not once here: observers may be added after the server is made.
    """
    app: SiteApp | ApiApp = backend.site if port == "site" else backend.api

    # Not a coroutine function of its own: it hands back the app's coroutine, so a request
    # costs no extra frame (uvicorn is told the interface, it cannot guess it from this).
    def serve(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http" and backend.counted(port, scope):
            return backend.observed(app, port, scope, receive, send)
        return app(scope, receive, send)

    return serve


class BackendServer:
    """The site app and the API app, each on its own socket, in one event loop.

    Two uvicorn servers rather than one app that looks at the port: the site's
    hot path then has no dispatch in front of it. The site server handles
    SIGINT/SIGTERM and takes the API server down with it.
    """

    def __init__(
        self,
        backend: Backend,
        listeners: Listeners,
        *,
        forwarded_allow_ips: str | None = None,
        log_level: str = "warning",
    ) -> None:
        backend.site_port = listeners.site_port
        self.listeners = listeners
        self.guard = ConnectionGuard(connections.connection_limit())
        options: dict[str, Any] = {
            "guard": self.guard,
            "forwarded_allow_ips": forwarded_allow_ips,
            "log_level": log_level,
        }
        self.site = make_server(_observable(backend, "site"), **options)
        self.api = make_server(_observable(backend, "api"), signals=False, **options)

    async def serve(self) -> None:
        """Serve until a signal or :meth:`stop`."""
        api = asyncio.ensure_future(self.api.serve(sockets=[self.listeners.api]))
        try:
            await self.site.serve(sockets=[self.listeners.site])
        finally:
            self.api.should_exit = True
            await api

    def stop(self) -> None:
        self.site.should_exit = True
        self.api.should_exit = True
