"""Cron jobs: definitions checked at load, runs by the clock, skipped runs, kept logs."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pyconvex.database.system import CRON_JOB_LOGS, CRON_JOBS
from pyconvex.errors import AppLoadError
from pyconvex.testing import ConvexTest

APP = Path(__file__).parent / "apps" / "crons"
# 2026-12-07 10:00 UTC, a Monday: the hourly job is next due at 10:15.
START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC).timestamp()


@pytest.fixture
async def t() -> AsyncIterator[ConvexTest]:
    test = ConvexTest(APP)
    test.clock.set(START)
    async with test:
        yield test


async def rows(t: ConvexTest, table: str) -> list[dict[str, Any]]:
    return await t.run(lambda ctx: ctx.db.system.query(table).collect())


async def runs(t: ConvexTest, name: str) -> list[dict[str, Any]]:
    return [row for row in await rows(t, CRON_JOB_LOGS) if row["name"] == name]


async def test_jobs_are_recorded_at_deploy_with_their_first_run(t: ConvexTest) -> None:
    await t.start()
    jobs = {row["name"]: row for row in await rows(t, CRON_JOBS)}
    assert set(jobs) == {"every minute", "hourly action", "broken"}
    assert jobs["every minute"]["next_ts"] == START  # an interval runs at deploy
    assert jobs["hourly action"]["next_ts"] == START + 15 * 60
    assert jobs["broken"]["schedule"] == "cron */30 * * * *"
    assert jobs["every minute"]["function"] == "ticks:tick"


async def test_advancing_the_clock_runs_each_job_at_its_times(t: ConvexTest) -> None:
    await t.advance(3600)
    assert await t.query("ticks:count", {"job": "interval"}) == 61  # 10:00, 10:01 ... 11:00
    assert await t.query("ticks:count", {"job": "hourly"}) == 1  # 10:15
    assert await t.query("ticks:count", {"job": "broken"}) == 0  # its writes undone
    kept = await runs(t, "every minute")
    assert len(kept) == 5 and {run["status"] for run in kept} == {"success"}
    assert max(run["scheduled"] for run in kept) == START + 3600
    assert kept[0]["result"] == '"interval"' and kept[0]["log_lines"] == ["[LOG] tick interval"]
    broken = await runs(t, "broken")
    assert [run["status"] for run in broken] == ["failed"] * 3  # 10:00, 10:30, 11:00
    assert broken[0]["error"] == "RuntimeError: the job broke"
    action = await runs(t, "hourly action")
    assert [(run["status"], run["result"]) for run in action] == [("success", '"done"')]


async def test_runs_missed_meanwhile_are_skipped_once_and_logged(t: ConvexTest) -> None:
    await t.finish_scheduled_functions()  # 10:00: the interval job's first run
    t.clock.advance(10 * 60 + 30)  # as if the deployment had been down for ten minutes
    await t.finish_scheduled_functions()
    assert await t.query("ticks:count", {"job": "interval"}) == 2  # no burst of catch-up runs
    skipped = [run for run in await runs(t, "every minute") if run["status"] == "skipped"]
    assert len(skipped) == 1 and skipped[0]["skipped"] == 9  # 10:02 ... 10:10
    assert any("Skipping 9 run(s) of job every minute" in str(line) for line in t.logs)
    jobs = {row["name"]: row for row in await rows(t, CRON_JOBS)}
    assert jobs["every minute"]["next_ts"] == START + 11 * 60  # from the schedule, not from now


async def test_a_changed_job_starts_again_from_now_and_a_removed_one_goes(
    tmp_path: Path,
) -> None:
    app = tmp_path / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    t = ConvexTest(app)
    t.clock.set(START)
    async with t:
        await t.advance(90)  # the interval job ran at 10:00 and 10:01
        (app / "convex" / "crons.py").write_text(
            "from pyconvex import internal\n"
            "from pyconvex import cron_jobs\n"
            "crons = cron_jobs()\n"
            'crons.interval("every minute", internal.ticks.tick, {"job": "interval"}, hours=1)\n'
            'crons.hourly("hourly action", internal.ticks.remote, {"job": "hourly"}, minute_utc=15)\n'
        )
        await t.deployment.reload()
        jobs = {row["name"]: row for row in await rows(t, CRON_JOBS)}
        assert set(jobs) == {"every minute", "hourly action"}
        assert jobs["every minute"]["schedule"] == "every 3600 s"
        assert jobs["every minute"]["next_ts"] == START + 90  # the new schedule, from now
        assert jobs["hourly action"]["next_ts"] == START + 15 * 60  # unchanged: kept
        assert await runs(t, "broken") == []  # its logs went with it


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('crons.interval("x", internal.ticks.tick, minutes=0)', "minutes must be a positive"),
        ('crons.interval("x", internal.ticks.tick, minutes=1, hours=1)', "exactly one of"),
        ('crons.daily("x", internal.ticks.tick, hour_utc=24)', "hour_utc must be a whole number"),
        (
            'crons.weekly("x", internal.ticks.tick, day_of_week="Tuesday", hour_utc=1)',
            "day_of_week",
        ),
        ('crons.cron("x", "0 0 30 2 *", internal.ticks.tick)', "will never match any time"),
        ('crons.cron("x\\n", "* * * * *", internal.ticks.tick)', "printable ASCII"),
        ('crons.hourly("every minute", internal.ticks.tick)', "Cron identifier registered twice"),
        ('crons.hourly("q", internal.ticks.a_query)', "ticks:a_query is a query"),
        ('crons.hourly("q", "ticks:nothing")', "ticks:nothing is not a function of this app"),
    ],
)
async def test_a_bad_job_is_an_error_at_load_naming_crons_py_and_its_line(
    tmp_path: Path, line: str, message: str
) -> None:
    app = tmp_path / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    crons = app / "convex" / "crons.py"
    crons.write_text(crons.read_text() + line + "\n")
    bad_line = len(crons.read_text().splitlines())
    with pytest.raises(AppLoadError) as refused:
        async with ConvexTest(app):
            pass
    assert message in str(refused.value)
    assert refused.value.file is not None and refused.value.file.endswith("crons.py")
    assert refused.value.line == bad_line


def test_an_interval_job_runs_once_per_run_on_two_workers_and_across_a_restart(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import api_call, wait_until
    from test_cli_serving import Process

    app = tmp_path / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "convex" / "crons.py").write_text(
        "from pyconvex import internal\n"
        "from pyconvex import cron_jobs\n"
        "crons = cron_jobs()\n"
        'crons.interval("fast", internal.ticks.tick, {"job": "fast"}, seconds=1)\n'
    )
    monkeypatch.setenv("PYCONVEX_ADMIN_KEY", "crons-admin")
    command = ("serve", str(app), "--workers", "2", "--database-url", postgres_url)

    def times(api: str) -> list[float]:
        found: list[float] = api_call(api, "query", "ticks:times", {"job": "fast"})
        return found

    ticks: list[float] = []
    for _ in range(2):  # and a restart between the two
        process = Process(*command)
        process.wait_for(r"worker \d of 2")
        try:
            before = len(times(process.api))
            wait_until(lambda: len(times(process.api)) >= before + 4, timeout=30)  # noqa: B023
            ticks = times(process.api)
        finally:
            process.stop()
    # One run a second, whichever worker runs it: both running it would double the count,
    # and catching up after the restart would add a burst. One late run per start is allowed.
    assert len(ticks) >= 8, ticks
    assert len(ticks) <= (ticks[-1] - ticks[0]) + 3, ticks


async def test_two_processes_running_the_same_due_job_run_it_once(tmp_path: Path) -> None:
    from pyconvex.deployment import Deployment

    url = f"sqlite:///{tmp_path / 'data.sqlite3'}"
    one, two = Deployment(APP, database_url=url), Deployment(APP, database_url=url)
    for deployment in (one, two):
        deployment.scheduler.clock = lambda: START
    async with one, two:
        for _ in range(3):  # each due run, taken by both at once
            await asyncio.gather(one.crons.run_due(START, 10), two.crons.run_due(START, 10))
        count = await one.executor.run("ticks:count", {"job": "interval"})
    assert count == 1  # the run due at START; the next is a minute later


async def test_an_action_run_cut_off_by_a_stop_is_failed_not_run_again(t: ConvexTest) -> None:
    await t.start()
    database = t.deployment.database

    async def cut_off(writer: Any) -> None:  # as a worker killed mid-run leaves it
        system = writer.system_writer()
        row = (
            await system.query(CRON_JOBS)
            .filter(lambda f: f.eq(f.field("name"), "hourly action"))
            .unique()
        )
        await system.patch(row["_id"], {"state": "running", "claimed_by": "w-gone"})

    await database.transact(cut_off)
    assert await t.deployment.crons.recover() == 1
    [run] = await runs(t, "hourly action")
    assert run["status"] == "failed" and run["error"].startswith("Transient error")
    job = next(row for row in await rows(t, CRON_JOBS) if row["name"] == "hourly action")
    assert job["state"] == "idle" and job["next_ts"] == START + 75 * 60  # on to 11:15
    assert await t.query("ticks:count", {"job": "hourly"}) == 0  # at most once: not re-run


def test_crons_list_and_the_dashboard_show_each_job(tmp_path: Path, serve_app: Any) -> None:
    import json
    import subprocess
    import sys

    import httpx

    from pyconvex.deployment import Deployment

    app = tmp_path / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    command = [sys.executable, "-m", "pyconvex.cli.main", "crons", "list", "--app", str(app)]
    before = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert before.returncode == 0 and "convex/crons.py defines 3" in before.stderr  # not served

    async def serve_once() -> None:  # what dev or serve does at start: sets the jobs up
        async with Deployment(app):
            pass

    asyncio.run(serve_once())
    listed = subprocess.run(
        [sys.executable, "-m", "pyconvex.cli.main", "crons", "list", "--app", str(app)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()  # a pipe: whole tab-separated lines
    assert lines[0].split("\t")[:3] == ["name", "schedule", "function"]
    assert "broken\tcron */30 * * * *\tticks:broken\t" in listed.stdout
    assert "every minute\tevery 60 s\tticks:tick\t" in listed.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "pyconvex.cli.main", "crons", "list", "--app", str(app),
         "--format", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    jobs = {job["name"]: job for job in json.loads(as_json.stdout)}
    assert (
        jobs["hourly action"]["function"] == "ticks:remote" and jobs["hourly action"]["runs"] == []
    )

    served = serve_app(app)
    client = httpx.Client(base_url=served.api)
    client.post("/dashboard/login", data={"key": served.admin_key})
    page = client.get("/dashboard/schedules").text
    assert "hourly action" in page and "cron 15 * * * *" in page and "ticks:remote" in page
    remote = httpx.get(f"{served.api}/api/crons", headers=served.admin).json()["crons"]
    assert {job["name"] for job in remote} == set(jobs)


async def test_an_interval_job_keeps_its_time_to_the_last_fraction_of_a_second() -> None:
    # A datetime keeps microseconds: a first run rounded up by half of one was not due "now".
    t = ConvexTest(APP)
    t.clock.set(START + 0.123456789)
    async with t:
        await t.advance(120)
        assert await t.query("ticks:count", {"job": "interval"}) == 3


async def test_changed_args_are_compared_as_stored_not_with_equals(t: ConvexTest) -> None:
    from dataclasses import replace

    from pyconvex import Int64

    await t.start()
    job = t.deployment.app.crons["every minute"]
    for args, kind in (({"job": Int64(5)}, Int64), ({"job": 5}, int), ({"job": True}, bool)):
        # 5 == Int64(5) == True in Python; as Convex values they are three different args.
        await t.deployment.crons.sync({job.name: replace(job, args=args)})
        [row] = await rows(t, CRON_JOBS)
        assert type(row["args"]["job"]) is kind


def test_cron_args_that_are_not_convex_values_are_refused_at_load(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    crons = app / "convex" / "crons.py"
    crons.write_text(
        crons.read_text() + 'crons.hourly("s", internal.ticks.tick, {"job": {1, 2}})\n'
    )

    async def load() -> None:
        async with ConvexTest(app):
            pass

    with pytest.raises(AppLoadError) as refused:
        asyncio.run(load())
    assert "cron job 's'" in str(refused.value) and refused.value.file.endswith("crons.py")


async def test_a_slow_action_job_holds_up_no_other_job(t: ConvexTest) -> None:
    await t.start()
    queue = t.deployment.crons

    async def slow(writer: Any) -> None:  # the hourly action, due now, made to take a while
        system = writer.system_writer()
        for row in await system.query(CRON_JOBS).collect():
            if row["name"] == "hourly action":
                await system.patch(row["_id"], {"function": "ticks:slowly", "next_ts": START})

    await t.deployment.database.transact(slow)
    await queue.run_due(START, 10)
    assert len(queue.running) == 1  # the action runs on its own...
    assert await t.query("ticks:count", {"job": "interval"}) == 1  # ...and the rest ran
    await queue.settle()
    assert await t.query("ticks:count", {"job": "slow"}) == 1 and not queue.running


async def test_a_job_changed_while_its_action_runs_is_not_left_running(t: ConvexTest) -> None:
    from dataclasses import replace

    from pyconvex.background.cronspec import CronSpec
    from pyconvex.crons import Calendar

    await t.start()
    queue, jobs = t.deployment.crons, t.deployment.app.crons
    [row] = [r for r in await rows(t, CRON_JOBS) if r["name"] == "hourly action"]
    assert await queue._claim(row)  # its run is in flight...
    changed = replace(jobs["hourly action"], schedule=Calendar(CronSpec.parse("45 * * * *")))
    await queue.sync({**jobs, "hourly action": changed})  # ...when a deploy changes it
    await queue._finish(row, result="done", lines=[], claimed=True)
    [after] = [r for r in await rows(t, CRON_JOBS) if r["name"] == "hourly action"]
    assert after["state"] == "idle" and after["schedule"] == "cron 45 * * * *"
    assert after["next_ts"] == START + 45 * 60  # the new schedule, after the run's time
