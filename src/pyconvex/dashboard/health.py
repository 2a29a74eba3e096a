"""The Health page: requests and function calls per second, error rate, latency
percentiles per function, scheduler lag and backlog, webhook backlog, over the last hour.

The numbers come from :mod:`pyconvex.metrics`, which every worker process records into
the database; the page draws them with uPlot and fetches ``health.json`` every second.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import metrics
from .web import Dashboard, secure


def routes() -> list[tuple[str, Any, list[str]]]:
    return [("/health", page, ["GET"]), ("/health.json", data, ["GET"])]


async def page(d: Dashboard, request: Request) -> Response:
    health = await _health(d)
    return d.render(request, "health.html", {"title": "Health", "health": health})


async def data(d: Dashboard, request: Request) -> Response:
    return secure(JSONResponse(await _health(d)))


async def _health(d: Dashboard) -> dict[str, Any]:
    return await metrics.health(d.deployment.database, local=d.backend.metrics)
