"""The Environment page: the deployment's variables; set, change, remove. Values stay
hidden until one is asked for (``?show=NAME``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .web import Dashboard

_DONE = {"set": "Saved.", "removed": "Removed."}


def routes() -> list[tuple[str, Any, list[str]]]:
    return [
        ("/environment", page, ["GET"]),
        ("/environment", set_variable, ["POST"]),
        ("/environment/remove", remove, ["POST"]),
    ]


async def page(
    d: Dashboard,
    request: Request,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    variables = await d.deployment.env.list()
    return d.render(
        request,
        "environment.html",
        {
            "title": "Environment",
            "variables": variables,
            "shown": request.query_params.get("show"),
            "error": error,
            "form": form or {"name": "", "value": ""},
            "notice": _DONE.get(request.query_params.get("done", "")),
        },
        status=status,
    )


async def set_variable(d: Dashboard, request: Request) -> Response:
    form = await request.form()
    name, value = str(form.get("name", "")).strip(), str(form.get("value", ""))
    try:
        await d.deployment.env.set(name, value)
    except ValueError as exc:
        return await page(d, request, error=str(exc), form={"name": name, "value": ""}, status=400)
    return d.redirect("/environment?done=set")


async def remove(d: Dashboard, request: Request) -> Response:
    name = str((await request.form()).get("name", ""))
    try:
        await d.deployment.env.remove(name)
    except ValueError as exc:
        return await page(d, request, error=str(exc), status=400)
    return d.redirect("/environment?done=removed")
