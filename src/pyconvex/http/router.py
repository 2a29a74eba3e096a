"""``HttpRouter``: which HTTP action answers which path and method.

Convex's semantics (get-convex/convex-js ``src/server/router.ts``) in Python
spelling, plus ``{param}`` segments:

    http = HttpRouter()
    http.route(path="/health", method="GET", handler=health)
    http.route(path_prefix="/api/users/", method="GET", handler=user)
    http.route(path="/api/items/{item_id}", method="GET", handler=item)

Lookup order: an exact path, then a ``{param}`` path (literal segments beat
parameters, segment by segment), then the longest prefix. No trailing-slash
normalisation; matching is on the raw path. HEAD looks up GET.

The router is a data structure and knows nothing of ASGI. Lookup cost does not
grow with the number of routes: exact paths are one dict lookup, ``{param}``
paths a walk down a per-segment trie, and prefixes one dict lookup per ``/`` of
the request path, longest first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..functions.define import HttpAction

ROUTABLE_METHODS = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_RESERVED = "/.files"
_NO_PARAMS: dict[str, str] = {}  # shared; never written to

Match = tuple[HttpAction, str, str]
# What the router stores per route, built once at registration so a lookup
# allocates nothing: (handler, method, route, "METHOD route" for the logs).
Route = tuple[HttpAction, str, str, str]


def _entry(action: HttpAction, method: str, route: str) -> Route:
    return (action, method, route, f"{method} {route}")


@dataclass
class _Node:
    """One segment level of the ``{param}`` trie."""

    literal: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    param_name: str = ""
    handlers: dict[str, Route] = field(default_factory=dict)


class HttpRouter:
    """Routes requests to HTTP actions by path, ``{param}`` path or path prefix and method."""

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Route]] = {}
        self._prefixes: dict[str, dict[str, Route]] = {}
        self._trie = _Node()
        self._param_routes: dict[str, dict[str, Route]] = {}

    # -- registering ---------------------------------------------------------------------

    def route(
        self,
        *,
        path: str | None = None,
        path_prefix: str | None = None,
        method: str,
        handler: Any = None,
    ) -> Any:
        """Route ``method`` requests for ``path`` (or every path under ``path_prefix``).

        Paths start with ``/``; prefixes start and end with ``/``. Without
        ``handler`` this is a decorator that wraps the function in ``http_action``.
        """
        if handler is None:

            def decorator(fn: Callable[..., Any]) -> HttpAction:
                action = as_action(fn)
                self.route(path=path, path_prefix=path_prefix, method=method, handler=action)
                return action

            self._check(path, path_prefix, method)
            return decorator
        action = as_action(handler)
        self._check(path, path_prefix, method)
        if path is not None:
            if "{" in path or "}" in path:
                self._add_param_route(path, method, action)
            else:
                self._exact.setdefault(path, {})[method] = _entry(action, method, path)
        else:
            assert path_prefix is not None
            entry = _entry(action, method, path_prefix + "*")
            self._prefixes.setdefault(method, {})[path_prefix] = entry
        return None

    def _registered(
        self, path: str | None, path_prefix: str | None, method: str
    ) -> HttpAction | None:
        """The action registered for exactly this path (or prefix) and method, if any."""
        if path_prefix is not None:
            entry = self._prefixes.get(method, {}).get(path_prefix)
        else:
            assert path is not None
            entry = self._exact.get(path, {}).get(method) or self._param_routes.get(path, {}).get(
                method
            )
        return None if entry is None else entry[0]

    def _unregister(self, path: str | None, path_prefix: str | None, method: str) -> None:
        """Remove one registration (cors_router replaces its own OPTIONS routes this way)."""
        if path_prefix is not None:
            del self._prefixes[method][path_prefix]
            return
        assert path is not None
        if path in self._param_routes:
            del self._param_routes[path][method]
            node: _Node | None = self._trie
            for segment in path[1:].split("/"):
                assert node is not None
                node = node.param if _parse_segment(path, segment)[0] else node.literal.get(segment)
            assert node is not None
            del node.handlers[method]
            return
        del self._exact[path][method]

    def webhook(
        self,
        *,
        path: str,
        provider: Any,
        secret_env: str,
        handler: Any,
        tolerance: float | None = None,
        url: str | None = None,
        max_attempts: int = 8,
        max_parallelism: int | None = None,
        rate: tuple[float, float] | None = None,
        retention_days: float = 30,
    ) -> None:
        """Receive a provider's webhooks at ``path`` (POST): verify, deduplicate, record, answer
        200, then run ``handler`` (an internal mutation or action) in the background with retries.

            http.webhook(path="/webhooks/stripe", provider="stripe",
                         secret_env="STRIPE_WEBHOOK_SECRET", handler=internal.billing.on_event,
                         max_parallelism=4, rate=(100, 60))

        ``url`` is the public URL the provider signs (Twilio, Square), if ``request.url`` is not it.
        ``max_parallelism``: at most this many handlers of this endpoint at once, in every
        process; ``rate=(count, seconds)``: at most ``count`` handler runs per ``seconds``.
        Throttled events wait; none is dropped. Succeeded events are purged after
        ``retention_days``; failed ones are kept until replayed or purged by hand.
        """
        from ..webhooks.receiver import WebhookReceiver, as_http_action

        receiver = WebhookReceiver(
            provider=provider,
            secret_env=secret_env,
            handler=handler,
            tolerance=tolerance,
            url=url,
            max_attempts=max_attempts,
            max_parallelism=max_parallelism,
            rate=rate,
            retention_days=retention_days,
        )
        self.route(path=path, method="POST", handler=as_http_action(receiver))

    def _check(self, path: str | None, path_prefix: str | None, method: str) -> None:
        if method not in ROUTABLE_METHODS:
            raise ValueError(f"'{method}' is not an allowed HTTP method (like GET, POST, PUT etc.)")
        if (path is None) == (path_prefix is None):
            raise ValueError("route requires either path or path_prefix (and not both)")
        if path is not None:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(f"path '{path}' does not start with a /")
            _check_reserved(path)
            if method in self._exact.get(path, {}) or method in self._param_routes.get(path, {}):
                raise ValueError(f"Path '{path}' for method {method} already in use")
        else:
            assert path_prefix is not None
            if not isinstance(path_prefix, str) or not path_prefix.startswith("/"):
                raise ValueError(f"path '{path_prefix}' does not start with a /")
            if not path_prefix.endswith("/"):
                raise ValueError(f"path_prefix {path_prefix} must end with a /")
            _check_reserved(path_prefix)
            if path_prefix in self._prefixes.get(method, {}):
                raise ValueError(f"path_prefix '{path_prefix}' for method {method} already in use")

    def _add_param_route(self, path: str, method: str, action: HttpAction) -> None:
        # Parse and check the whole path before touching the trie, so a bad route
        # leaves no half-built branch behind to conflict with later routes.
        segments = [_parse_segment(path, segment) for segment in path[1:].split("/")]
        names = [name for is_param, name in segments if is_param]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"path '{path}' uses the parameter {{{name}}} twice")
        node: _Node | None = self._trie
        for is_param, name in segments:
            if node is None:
                break
            if is_param and node.param is not None and node.param_name != name:
                raise ValueError(
                    f"path '{path}': parameter {{{name}}} conflicts with {{{node.param_name}}} "
                    "at the same position of another route"
                )
            node = node.param if is_param else node.literal.get(name)
        node = self._trie
        for is_param, name in segments:
            if is_param:
                if node.param is None:
                    node.param, node.param_name = _Node(), name
                node = node.param
            else:
                node = node.literal.setdefault(name, _Node())
        entry = _entry(action, method, path)
        node.handlers[method] = entry
        self._param_routes.setdefault(path, {})[method] = entry

    # -- looking up ----------------------------------------------------------------------

    def lookup(self, path: str, method: str) -> Match | None:
        """``(handler, method, route)`` for a request, or None. HEAD looks up GET.

        ``route`` is the registered path, or the prefix followed by ``*``.
        """
        found = self.match(path, method)
        return None if found is None else found[0][:3]

    def match(self, path: str, method: str) -> tuple[Route, dict[str, str]] | None:
        """Like :meth:`lookup`, with the ``{param}`` values of the matched route.

        Returns the stored ``(handler, method, route, name)`` entry itself.
        """
        if method == "HEAD":
            method = "GET"
        exact = self._exact.get(path)
        if exact is not None:
            entry = exact.get(method)
            if entry is not None:
                return entry, _NO_PARAMS
        if self._param_routes:
            params: dict[str, str] = {}
            node = _walk(self._trie, path[1:].split("/"), 0, params, method)
            if node is not None:
                return node.handlers[method], params
        prefixes = self._prefixes.get(method)
        if prefixes:
            end = path.rfind("/")
            while end >= 0:
                prefixed = prefixes.get(path[: end + 1])
                if prefixed is not None:
                    return prefixed, _NO_PARAMS
                end = path.rfind("/", 0, end)
        return None

    def allowed_methods(self, path: str) -> list[str]:
        """Every method some route answers for ``path`` (for a 405's ``Allow`` header)."""
        allowed = [m for m in ROUTABLE_METHODS if self.match(path, m) is not None]
        if "GET" in allowed:
            allowed.insert(allowed.index("GET") + 1, "HEAD")
        return allowed

    def get_routes(self) -> list[tuple[str, str, HttpAction]]:
        """Exact and ``{param}`` routes sorted by path then method, then prefix routes
        (``"/prefix/*"``) sorted by method then prefix."""
        paths = {**self._exact, **self._param_routes}
        exact = [(p, m, paths[p][m][0]) for p in sorted(paths) for m in sorted(paths[p])]
        prefixed = [
            (f"{prefix}*", m, self._prefixes[m][prefix][0])
            for m in sorted(self._prefixes)
            for prefix in sorted(self._prefixes[m])
        ]
        return exact + prefixed

    def __len__(self) -> int:
        return len(self.get_routes())


def as_action(handler: Any) -> HttpAction:
    """``handler`` as an :class:`HttpAction` (wrapped, unless it is one already)."""
    return handler if isinstance(handler, HttpAction) else HttpAction(handler)


def _parse_segment(path: str, segment: str) -> tuple[bool, str]:
    """(is a parameter, its name or the literal text) of one path segment."""
    if "{" not in segment and "}" not in segment:
        return False, segment
    found = _PARAM.match(segment)
    if found is None:
        raise ValueError(
            f"path '{path}': a parameter must be a whole segment such as {{user_id}}, "
            f"not '{segment}'"
        )
    return True, found.group(1)


def _check_reserved(path: str) -> None:
    if path == _RESERVED or path.startswith(_RESERVED + "/"):
        raise ValueError(
            f"path '{path}' is reserved: /.files is where pyconvex serves stored files"
        )


def _walk(
    node: _Node, segments: list[str], i: int, params: dict[str, str], method: str
) -> _Node | None:
    """Depth-first, literal before parameter, so ``/users/me`` beats ``/users/{id}``."""
    if i == len(segments):
        return node if method in node.handlers else None
    segment = segments[i]
    child = node.literal.get(segment)
    if child is not None:
        found = _walk(child, segments, i + 1, params, method)
        if found is not None:
            return found
    if node.param is not None and segment:
        params[node.param_name] = segment
        found = _walk(node.param, segments, i + 1, params, method)
        if found is not None:
            return found
        del params[node.param_name]
    return None
