"""The scheduler: transactional scheduling, cancel, the test clock, exactly/at-most once, timing."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from conftest import Served, api_call, wait_until
from pyconvex.errors import FunctionNotFoundError
from pyconvex.testing import ConvexTest


async def test_a_scheduled_mutation_runs_once_and_records_success(
    web_app: Path, database_url: str
) -> None:
    async with ConvexTest(web_app, database_url=database_url) as t:
        job_id = await t.mutation("jobs:schedule", {"delay": 0, "tag": "a"})
        job = await t.query("jobs:job", {"id": job_id})
        assert job["name"] == "jobs:mark" and job["state"] == {"kind": "pending"}
        assert job["args"] == {"i": 0, "tag": "a"}
        assert await t.finish_scheduled_functions() == 1
        assert await t.finish_scheduled_functions() == 0
        assert [m["i"] for m in await t.query("jobs:marks", {"tag": "a"})] == [0]
        done = await t.query("jobs:job", {"id": job_id})
        assert done["state"] == {"kind": "success"}
        assert done["completed_time"] >= done["scheduled_time"]


async def test_nothing_is_scheduled_when_the_mutation_fails(
    web_app: Path, database_url: str
) -> None:
    async with ConvexTest(web_app, database_url=database_url) as t:
        with pytest.raises(RuntimeError, match="the caller broke"):
            await t.mutation("jobs:schedule_then_fail")
        assert await t.run(lambda ctx: ctx.db.system.query("_scheduled_functions").collect()) == []
        assert await t.finish_scheduled_functions() == 0
        assert await t.query("jobs:marks", {"tag": "never"}) == []


async def test_cancel_before_the_due_time(web_app: Path, database_url: str) -> None:
    async with ConvexTest(web_app, database_url=database_url) as t:
        job_id = await t.mutation("jobs:schedule", {"delay": 60, "tag": "c"})
        await t.mutation("jobs:cancel", {"id": job_id})
        t.clock.advance(120)
        assert await t.finish_scheduled_functions() == 0
        assert await t.query("jobs:marks", {"tag": "c"}) == []
        assert (await t.query("jobs:job", {"id": job_id}))["state"] == {"kind": "canceled"}


async def test_the_clock_decides_what_is_due(web_app: Path, database_url: str) -> None:
    async with ConvexTest(web_app, database_url=database_url) as t:
        await t.mutation("jobs:schedule", {"delay": 60, "tag": "later"})
        await t.mutation("jobs:schedule_at", {"when": t.clock.now() + 3600})
        assert await t.finish_scheduled_functions() == 0
        t.clock.advance(60)
        assert await t.finish_scheduled_functions() == 1
        assert await t.query("jobs:marks", {"tag": "at"}) == []
        assert await t.finish_all_scheduled_functions() == 1
        assert len(await t.query("jobs:marks", {"tag": "at"})) == 1


async def test_a_failing_job_is_marked_failed_and_its_writes_undone(
    web_app: Path, database_url: str
) -> None:
    async with ConvexTest(web_app, database_url=database_url) as t:
        job_id = await t.mutation("jobs:schedule_failing")
        await t.finish_scheduled_functions()
        job = await t.query("jobs:job", {"id": job_id})
        assert job["state"] == {"kind": "failed", "error": "ValueError: the job broke"}
        assert await t.query("jobs:marks", {"tag": "failing"}) == []


async def test_scheduling_from_an_action_is_immediate(web_app: Path, database_url: str) -> None:
    async with ConvexTest(web_app, database_url=database_url) as t:
        job_id = await t.action("jobs:schedule_from_action")
        assert (await t.query("jobs:job", {"id": job_id}))["state"]["kind"] == "pending"
        await t.finish_scheduled_functions()
        assert [m["i"] for m in await t.query("jobs:marks", {"tag": "from-action"})] == [5]


async def test_only_mutations_and_actions_can_be_scheduled(
    web_app: Path, database_url: str
) -> None:
    async with ConvexTest(web_app, database_url=database_url) as t:
        with pytest.raises(FunctionNotFoundError, match="is a query"):
            await t.mutation("jobs:schedule_a_query")


def test_due_jobs_run_on_time_and_in_order_under_load(web: Served) -> None:
    stop = threading.Event()

    def load() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                client.post(f"{web.site}/increment", json={"name": "load"})

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        late = api_call(web.api, "mutation", "jobs:schedule", {"delay": 2.0, "tag": "late"})
        early = api_call(web.api, "mutation", "jobs:schedule", {"delay": 1.0, "tag": "early"})
        ran = wait_until(
            lambda: (
                (
                    api_call(web.api, "query", "jobs:marks", {"tag": "late"})
                    and api_call(web.api, "query", "jobs:marks", {"tag": "early"})
                )
                and (
                    api_call(web.api, "query", "jobs:marks", {"tag": "early"})[0],
                    api_call(web.api, "query", "jobs:marks", {"tag": "late"})[0],
                )
            )
        )
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    first, second = ran
    assert first["at"] < second["at"]  # the earlier job ran first
    for mark, job_id in ((first, early), (second, late)):
        scheduled = api_call(web.api, "query", "jobs:job", {"id": job_id})["scheduled_time"]
        assert 0 <= mark["at"] - scheduled <= 0.5, mark["at"] - scheduled
    assert api_call(web.api, "query", "counters:get", {"name": "load"}) > 0


async def test_stop_is_not_lost_when_it_meets_a_wake_up(web_app: Path, tmp_path: Path) -> None:
    import asyncio

    from pyconvex.deployment import Deployment

    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    async with Deployment(web_app, database_url=url, storage_url=(tmp_path / "f").as_uri()) as d:
        scheduler = d.scheduler
        scheduler.start()
        async with asyncio.timeout(10):
            await scheduler.idle.wait()
        # A wake-up (a batch ending, a job added) that lands with the cancellation: Python
        # 3.11's wait_for dropped the cancellation then, and the worker slept on forever.
        scheduler.wake()
        async with asyncio.timeout(10):
            await scheduler.stop()
