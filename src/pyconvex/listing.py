"""What an app defines, as the function API and the router see it: for ``pyconvex functions``
and the dashboard's Functions page."""

from __future__ import annotations

from typing import Any

from .functions import App
from .functions.define import HttpAction


def describe(app: App) -> dict[str, list[dict[str, Any]]]:
    """The app's functions (path, kind, visibility, validators as written with ``v``) and its
    HTTP routes (method, path or path prefix, what handles them), sorted as listed."""
    functions = [
        {
            "path": path,
            "kind": fn.kind,
            "visibility": fn.visibility,
            "args": None if fn.args is None else str(fn.args),
            "returns": None if fn.returns is None else str(fn.returns),
        }
        for path, fn in sorted(app.functions.items())
    ]
    routes: list[dict[str, Any]] = []
    for route, method, action in [] if app.http is None else app.http.get_routes():
        where = (
            {"path_prefix": route.removesuffix("*")} if route.endswith("/*") else {"path": route}
        )
        routes.append({"method": method, **where, "handler": _handler(action, app)})
    return {"functions": functions, "routes": routes}


def _handler(action: HttpAction, app: App) -> str:
    """``http:create`` for a handler in the app's ``convex/http.py``; a webhook endpoint names
    its provider, its secret's variable and the function it records events for."""
    from .webhooks.receiver import WebhookReceiver

    receiver = getattr(action.handler, "__self__", None)
    if isinstance(receiver, WebhookReceiver):
        return (
            f"webhook {receiver.scheme.name} -> {receiver.handler_path} "
            f"(secret in {receiver.secret_env})"
        )
    module, name = action.__module__, action.__qualname__
    if module == app.package or module.startswith(app.package + "."):
        # The app is imported under a made-up package name; show the file it came from.
        return f"{module[len(app.package) + 1 :].replace('.', '/')}:{name}"
    return f"{module}.{name}"
