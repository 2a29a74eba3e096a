"""The Schedules page: pending, running and recent scheduled functions (cancel a pending
one), updated live; and the app's cron jobs with their next run and last runs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .. import ids
from ..background.crons import listing as cron_listing
from ..database.system import SCHEDULED_FUNCTIONS
from .web import Dashboard

SHOWN = 50
_FINISHED = ("success", "failed", "canceled")


def routes() -> list[tuple[str, Any, list[str]]]:
    return [
        ("/schedules", page, ["GET"]),
        ("/schedules/jobs", jobs, ["GET"]),
        ("/schedules/{job_id}/cancel", cancel, ["POST"]),
    ]


async def _jobs(d: Dashboard) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    # Each state through the index: a poll every second must not walk every pending job.
    async with d.deployment.database.read(system=True) as reader:
        for kind in ("pending", "in_progress", *_FINISHED):
            order = "asc" if kind in ("pending", "in_progress") else "desc"
            found[kind] = await (
                reader.query(SCHEDULED_FUNCTIONS)
                .with_index("by_state", lambda r, kind=kind: r.eq("state.kind", kind))  # type: ignore[misc]
                .order(order)
                .take(SHOWN)
            )
    finished = [job for kind in _FINISHED for job in found.pop(kind)]
    finished.sort(key=lambda job: job.get("completed_time") or job["scheduled_time"], reverse=True)
    found["recent"] = finished[:SHOWN]
    return found


async def page(d: Dashboard, request: Request) -> Response:
    done = request.query_params.get("done")
    return d.render(
        request,
        "schedules.html",
        {
            "title": "Schedules",
            "jobs": await _jobs(d),
            "crons": await cron_listing(d.deployment.database),
            "notice": "Canceled." if done == "canceled" else None,
        },
    )


async def jobs(d: Dashboard, request: Request) -> Response:
    return d.render(request, "jobs.html", {"jobs": await _jobs(d)})


async def cancel(d: Dashboard, request: Request) -> Response:
    job_id = request.path_params["job_id"]
    if ids.is_id_of(job_id, SCHEDULED_FUNCTIONS):
        jobs = d.deployment.jobs
        await d.deployment.database.transact(lambda w: jobs.cancel_in(w, job_id), system=True)
    return d.redirect("/schedules?done=canceled")
