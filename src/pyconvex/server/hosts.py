"""Which ``Host`` values the API port answers: DNS rebinding protection (API.md section 20).

A web page can point a name it controls at 127.0.0.1 and then call a local dev server as
its own origin, past the same-origin policy. The browser still sends that name as
``Host``, so ``pyconvex dev`` answers only names of this machine on the API port:

- ``localhost`` and names under ``.localhost`` (which resolve to loopback, RFC 6761);
- any IP address (``127.0.0.1``, ``[::1]``, the address it listens on): rebinding needs
  a DNS name, and a browser sends an address only when the page's own URL holds it;
- this machine's hostname (``socket.gethostname()``), and that name under ``.local``;
- the names in ``PYCONVEX_ALLOWED_HOSTS`` (comma-separated; ``.example.com`` also
  allows every name under it).

In ``dev`` the sync socket (``/api/sync``) also checks ``Origin``, the page that opens it,
against the same names: browsers let any page open a WebSocket to any address, CORS or not.

``pyconvex serve`` answers any ``Host`` (a proxy in front decides which names reach it),
unless ``PYCONVEX_ALLOWED_HOSTS`` is set: then it answers only the names above.
A request without ``Host`` (HTTP/1.0, never a browser) is answered.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

ENV_NAME = "PYCONVEX_ALLOWED_HOSTS"


class HostCheck:
    """Whether a request's ``Host`` header names this machine, or one of ``allowed``."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        configured = [name.strip().lower().rstrip(".") for name in allowed if name.strip()]
        names = {"localhost", *(name for name in configured if not name.startswith("."))}
        machine = socket.gethostname().lower().rstrip(".")
        if machine:
            label = machine.split(".", 1)[0]
            names |= {machine, label, f"{label}.local"}
        self.names = frozenset(names)
        self.suffixes = tuple(name for name in configured if name.startswith("."))

    def allows(self, host: bytes) -> bool:
        name = _hostname(host.decode("latin-1").strip().lower())
        if name is None:
            return False
        if name in self.names or name.endswith(".localhost"):
            return True
        if name.endswith(self.suffixes):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def allows_origin(self, origin: bytes | None) -> bool:
        """Whether a WebSocket's ``Origin`` (the page that opens it) is one of the names
        :meth:`allows`. Browsers let any page open a socket to any address, CORS or not,
        so this is what keeps another site's page off a dev server's sync socket. No
        ``Origin``: not a browser."""
        if origin is None:
            return True
        try:
            parts = urlsplit(origin.decode("latin-1").strip())
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a port that is no number
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not host:
            return False  # "null" (a sandboxed frame, a file) included: anyone can make one
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return self.allows(host.encode("latin-1"))
        # Any IP address is a fine Host (DNS rebinding needs a name), but not a fine Origin:
        # a page served from another machine's address is another site.
        return address.is_loopback


def _hostname(host: str) -> str | None:
    """``host`` without its port (and an IPv6 address without its brackets); None if it is
    not a ``Host`` value at all."""
    if host.startswith("["):
        inside, bracket, port = host[1:].partition("]")
        if not bracket or (port and not (port.startswith(":") and port[1:].isdigit())):
            return None
        return inside
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and name.count(":") == 0:
        host = name
    return host.rstrip(".")


def host_check(*, production: bool, allowed: Iterable[str] | None = None) -> HostCheck | None:
    """The check a server applies: None (any ``Host``) for ``serve`` unless names are
    configured; names of this machine for ``dev``. ``allowed`` defaults to
    ``PYCONVEX_ALLOWED_HOSTS``."""
    if allowed is None:
        allowed = [name for name in os.environ.get(ENV_NAME, "").split(",") if name.strip()]
    allowed = list(allowed)
    if production and not allowed:
        return None
    return HostCheck(allowed)
