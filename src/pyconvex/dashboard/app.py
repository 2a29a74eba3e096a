"""The dashboard as an ASGI app, served by the API app under ``/dashboard/``.

    app = dashboard_app(backend)     # ApiApp hands it every /dashboard request

Each page group is a module with a ``routes(d)`` function; this one signs
users in and out and puts the pages together.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..server.admin_key import matches
from . import data, environment, files, functions, health, logs, schedules, webhooks
from .signin import COOKIE_NAME, SESSION_SECONDS
from .web import HERE, PREFIX, Dashboard, same_origin

if TYPE_CHECKING:
    from ..server.backend import Backend


async def _login_page(d: Dashboard, request: Request) -> Response:
    if d.nonce(request) is not None:
        return d.redirect("/health")
    return d.render(request, "login.html")


async def _login(d: Dashboard, request: Request) -> Response:
    # The form is read first: between checking the count of wrong keys and adding to it
    # nothing may await, or many requests sent at once would all be let through.
    form = await request.form()
    address = request.client.host if request.client else "unknown"
    wait = d.guesses.wait(address)
    if wait > 0:
        seconds = math.ceil(wait)
        response = d.render(
            request,
            "login.html",
            {"error": f"Too many wrong keys from your address: try again in {seconds} s"},
            status=429,
        )
        response.headers["retry-after"] = str(seconds)
        return response
    if not same_origin(request):
        return d.render(
            request, "login.html", {"error": "Sign in from this dashboard's own page"}, status=403
        )
    key = form.get("key")
    signer = d.signer
    if (
        signer is None
        or not isinstance(key, str)
        or not matches(d.backend.admin_key, key.strip().encode())
    ):
        d.guesses.wrong(address)
        return d.render(
            request,
            "login.html",
            {"error": "That is not this deployment's admin key"},
            status=401,
        )
    response = d.redirect("/health")
    response.set_cookie(
        COOKIE_NAME,
        signer.new_session(),
        max_age=SESSION_SECONDS,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def _logout(d: Dashboard, request: Request) -> Response:
    response = d.redirect("/login")
    response.delete_cookie(COOKIE_NAME, path=PREFIX, httponly=True, samesite="strict")
    return response


async def _home(d: Dashboard, request: Request) -> Response:
    return d.redirect("/health")


def dashboard_app(backend: Backend) -> Starlette:
    """The dashboard of ``backend``'s deployment."""
    d = Dashboard(backend)

    def open_page(handler: object, path: str, methods: list[str]) -> Route:
        async def endpoint(request: Request) -> Response:
            return await handler(d, request)  # type: ignore[operator,no-any-return]

        return Route(PREFIX + path, endpoint, methods=methods)

    routes: list[BaseRoute] = [
        open_page(_login_page, "/login", ["GET"]),
        open_page(_login, "/login", ["POST"]),
        Route(PREFIX + "/logout", d.page(_logout), methods=["POST"]),
        Route(PREFIX, d.page(_home), methods=["GET"]),
        Route(PREFIX + "/", d.page(_home), methods=["GET"]),
        Mount(PREFIX + "/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    for module in (health, data, functions, logs, schedules, webhooks, files, environment):
        for path, handler, methods in module.routes():
            routes.append(Route(PREFIX + path, d.page(handler), methods=methods))
    return Starlette(routes=routes)
