"""The Functions page: every function and route with its validators; run a function with
JSON arguments, as admin or as a given identity, and see its result and log lines."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..auth import UserIdentity
from ..errors import PyConvexError
from ..functions import Auth
from ..functions.failures import client_message
from ..listing import describe
from .data import parse_json
from .web import Dashboard, pretty_json


def routes() -> list[tuple[str, Any, list[str]]]:
    return [
        ("/functions", listing, ["GET"]),
        ("/functions/{name:path}", function_page, ["GET"]),
        ("/functions/{name:path}", run, ["POST"]),
    ]


async def listing(d: Dashboard, request: Request) -> Response:
    return d.render(request, "functions.html", {"title": "Functions", **describe(d.deployment.app)})


async def function_page(
    d: Dashboard, request: Request, *, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    fn = d.deployment.app.functions.get(request.path_params["name"])
    if fn is None:
        return d.render(
            request, "missing.html", {"title": "Functions", "what": "function"}, status=404
        )
    page = {"title": "Functions", "fn": fn, "args_text": "{}", "identity_text": ""}
    return d.render(request, "function.html", {**page, **(context or {})}, status=status)


def _identity(text: str) -> Auth | None:
    """``{"subject": ..., "name": ...}`` typed into the form, as ``t.with_identity`` takes it."""
    if not text.strip():
        return None
    fields = parse_json(text, "The identity")
    if not isinstance(fields, dict):
        raise PyConvexError('The identity must be a JSON object, e.g. {"subject": "user_1"}')
    try:
        return Auth(UserIdentity.for_test(**fields))
    except (TypeError, ValueError) as exc:
        raise PyConvexError(f"The identity is not valid: {exc}") from None


async def run(d: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    form = await request.form()
    args_text, identity_text = str(form.get("args", "{}")), str(form.get("identity", ""))
    page: dict[str, Any] = {"args_text": args_text, "identity_text": identity_text}
    try:
        args = parse_json(args_text or "{}", "The arguments")
        if not isinstance(args, dict):
            raise PyConvexError('The arguments must be a JSON object, e.g. {"name": "x"}')
        auth = _identity(identity_text)
    except PyConvexError as exc:
        return await function_page(d, request, context={**page, "error": str(exc)}, status=400)
    executor = d.deployment.executor
    with executor.executing(name) as execution:
        try:
            value = await executor.run(name, args, auth=auth)
            page["result"] = pretty_json(value)
        except Exception as exc:
            page["failure"] = client_message(
                exc, execution.request_id, d.deployment, production=False
            )
        page["log_lines"] = list(execution.lines)
        page["request_id"] = execution.request_id
    return await function_page(d, request, context=page)
