"""The Logs page: a live tail of every function's log lines, filtered by function, level,
request id and text. It reads the deployment's log file, which every worker process of
this machine appends to, or this process's recent lines when there is no log file."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..functions.logs import LogLine
from ..server import logfile
from .web import Dashboard

SHOWN = 200
LEVELS = ("DEBUG", "INFO", "LOG", "WARN", "ERROR")


def routes() -> list[tuple[str, Any, list[str]]]:
    return [("/logs", page, ["GET"]), ("/logs/lines", lines, ["GET"])]


def _filters(request: Request) -> dict[str, str]:
    query = request.query_params
    return {name: query.get(name, "").strip() for name in ("function", "level", "request", "text")}


def _recent(d: Dashboard) -> list[LogLine]:
    deployment = d.deployment
    if any(isinstance(sink, logfile.LogFile) for sink in deployment.log_sinks):
        return logfile.tail(deployment.state_dir, 2000)
    return list(d.backend.recent_logs)


def _matching(d: Dashboard, f: dict[str, str]) -> list[LogLine]:
    text = f["text"].lower()
    found = [
        line
        for line in _recent(d)
        if (not f["function"] or (line.function or "") == f["function"])
        and (not f["level"] or line.level == f["level"])
        and (not f["request"] or line.request_id == f["request"])
        and (not text or text in line.message.lower())
    ]
    return found[-SHOWN:][::-1]  # newest first


async def page(d: Dashboard, request: Request) -> Response:
    f = _filters(request)
    return d.render(
        request,
        "logs.html",
        {
            "title": "Logs",
            "filters": f,
            "levels": LEVELS,
            "functions": sorted(d.deployment.app.functions),
            "lines": _matching(d, f),
            "query": request.url.query,
        },
    )


async def lines(d: Dashboard, request: Request) -> Response:
    return d.render(request, "logs_lines.html", {"lines": _matching(d, _filters(request))})
