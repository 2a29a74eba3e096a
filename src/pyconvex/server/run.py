"""Serving a :class:`Backend` with uvicorn: the API and the site on two sockets of one server.

One uvicorn server listens on both sockets and the backend routes each
request by the port it came in on, so both apps share one event loop, one
deployment and one database connection pool.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import uvicorn

from .backend import Backend


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


def make_server(
    backend: Backend,
    *,
    forwarded_allow_ips: str | None = None,
    log_level: str = "warning",
) -> uvicorn.Server:
    config = uvicorn.Config(
        backend,
        lifespan="on",
        access_log=False,
        log_level=log_level,
        # X-Forwarded-Proto/-For are believed only from these addresses (uvicorn's default: 127.0.0.1).
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
    )
    return uvicorn.Server(config)


async def serve(
    backend: Backend,
    listeners: Listeners,
    *,
    forwarded_allow_ips: str | None = None,
    log_level: str = "warning",
) -> None:
    """Serve until the server is told to exit (a signal, or ``server.should_exit = True``)."""
    backend.site_port = listeners.site_port
    server = make_server(backend, forwarded_allow_ips=forwarded_allow_ips, log_level=log_level)
    await server.serve(sockets=[listeners.api, listeners.site])
