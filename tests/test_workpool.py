"""Work pools: bounded parallelism across processes, retries, on_complete once, cancel, crashes."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from conftest import api_call, eventually, wait_until
from pyconvex.background.items import RetryPolicy
from pyconvex.background.pools import PoolQueue
from pyconvex.database.system import WORKPOOL_WORK
from pyconvex.deployment import Deployment
from pyconvex.errors import InvalidValueError, NonRetryableError
from pyconvex.testing import ConvexTest
from pyconvex.workpool import Workpool
from test_cli_serving import Process

APP = Path(__file__).parent / "apps" / "workpool"


@pytest.fixture
async def t() -> AsyncIterator[ConvexTest]:
    async with ConvexTest(APP) as test:
        yield test


async def items(t: ConvexTest) -> list[dict[str, Any]]:
    return await t.run(lambda ctx: ctx.db.system.query(WORKPOOL_WORK).collect())


def most_at_once(runs: list[dict[str, Any]]) -> int:
    """The most runs whose [start, end] intervals overlap at one moment."""
    edges = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs])
    running = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


async def test_a_failing_action_is_retried_until_it_succeeds(t: ConvexTest) -> None:
    work_id = await t.mutation("work:start_flaky", {"key": "a", "fails": 2})
    assert await t.query("work:status", {"id": work_id, "pool": "retrying"}) == {
        "state": "pending",
        "previous_attempts": 0,
    }
    await t.finish_scheduled_functions()  # the first attempt fails; the retry waits
    assert await t.query("work:count", {"key": "a"}) == 1
    status = await t.query("work:status", {"id": work_id, "pool": "retrying"})
    assert status == {"state": "pending", "previous_attempts": 1}
    await t.finish_all_scheduled_functions()  # moves the clock through the backoffs
    assert await t.query("work:count", {"key": "a"}) == 3
    [done] = await t.query("work:completions")
    assert done["work_id"] == work_id and done["context"] == {"key": "a"}
    assert done["result"] == {"kind": "success", "return_value": {"attempt": 3}}
    status = await t.query("work:status", {"id": work_id, "pool": "retrying"})
    assert status == {"state": "finished", "previous_attempts": 3}


async def test_an_action_that_keeps_failing_ends_failed_after_max_attempts(t: ConvexTest) -> None:
    work_id = await t.mutation("work:start_flaky", {"key": "b", "fails": 10})
    await t.finish_all_scheduled_functions()
    assert await t.query("work:count", {"key": "b"}) == 3  # max_attempts
    [done] = await t.query("work:completions")
    assert done["result"] == {"kind": "failed", "error": "RuntimeError: attempt 3 failed"}
    [row] = await items(t)
    assert row["_id"] == work_id and row["status"] == "finished" and row["attempts"] == 3


async def test_non_retryable_error_fails_at_once(t: ConvexTest) -> None:
    await t.mutation("work:start_fatal")
    await t.finish_all_scheduled_functions()
    assert await t.query("work:count", {"key": "fatal"}) == 1
    [done] = await t.query("work:completions")
    assert done["context"] == "fatal"
    assert done["result"] == {"kind": "failed", "error": "NonRetryableError: the customer is gone"}


async def test_backoff_grows_by_base_with_jitter_between_half_and_one_and_a_half() -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.25, base=2)
    for attempt, nominal in ((1, 0.25), (2, 0.5), (3, 1.0), (4, 2.0)):
        delays = [policy.retry_after(attempt, RuntimeError()) for _ in range(200)]
        assert all(d is not None and 0.5 * nominal <= d <= 1.5 * nominal for d in delays)
        assert max(d for d in delays if d) - min(d for d in delays if d) > 0.5 * nominal
    assert policy.retry_after(5, RuntimeError()) is None
    assert policy.retry_after(1, NonRetryableError()) is None


async def test_enqueue_is_atomic_with_the_mutation(t: ConvexTest) -> None:
    with pytest.raises(Exception, match="the enqueuing mutation failed"):
        await t.mutation("work:start_note", {"text": "never", "fail": True})
    assert await items(t) == []
    await t.mutation("work:start_note", {"text": "kept"})
    await t.finish_scheduled_functions()
    assert await t.query("work:notes") == ["kept"]
    [done] = await t.query("work:completions")
    assert done["result"] == {"kind": "success", "return_value": "kept"}


async def test_a_failing_mutation_is_undone_and_not_retried(t: ConvexTest) -> None:
    await t.mutation("work:start_note", {"text": "boom"})
    await t.finish_all_scheduled_functions()
    assert await t.query("work:notes") == []
    [done] = await t.query("work:completions")
    assert done["result"] == {"kind": "failed", "error": "ValueError: no booms"}
    [row] = await items(t)
    assert row["attempts"] == 1


async def test_enqueue_from_an_action_with_a_delay(t: ConvexTest) -> None:
    work_id = await t.action("work:start_from_action", {"text": "later", "delay": 60})
    assert await t.finish_scheduled_functions() == 0  # not due yet
    t.clock.advance(60)
    await t.finish_scheduled_functions()
    assert await t.query("work:notes") == ["later"]
    assert (await t.query("work:status", {"id": work_id}))["state"] == "finished"


async def test_cancel_and_cancel_all(t: ConvexTest) -> None:
    first = await t.action("work:start_from_action", {"text": "one", "delay": 60})
    await t.action("work:start_from_action", {"text": "two", "delay": 60})
    await t.action("work:start_from_action", {"text": "three", "delay": 60})
    await t.mutation("work:cancel", {"id": first})
    assert await t.query("work:status", {"id": first}) == {
        "state": "finished",
        "previous_attempts": 0,
    }
    assert await t.mutation("work:cancel_all") == 2
    await t.finish_all_scheduled_functions()
    assert await t.query("work:notes") == []  # none of them ran
    results = [done["result"] for done in await t.query("work:completions")]
    assert results == [{"kind": "canceled"}] * 3  # each on_complete once
    await t.finish_all_scheduled_functions()
    assert len(await t.query("work:completions")) == 3


async def test_a_bad_enqueue_is_refused(t: ConvexTest) -> None:
    with pytest.raises(ValueError, match="max_parallelism must be between 1 and 100"):
        Workpool("x", max_parallelism=0)
    with pytest.raises(ValueError, match="Unknown retry setting"):
        Workpool("x", retry={"tries": 3})
    with pytest.raises(InvalidValueError, match="is not a work id"):
        await t.query("work:status", {"id": "nope"})


async def test_a_pool_of_three_never_runs_a_fourth(tmp_path: Path) -> None:
    async with Deployment(APP, database_url=f"sqlite:///{tmp_path}/db.sqlite3") as deployment:
        deployment.scheduler.start()
        await deployment.executor.run("work:start_slow", {"n": 12, "seconds": 0.1})

        async def all_ran() -> bool:
            return len(await deployment.executor.run("work:runs")) == 12

        await eventually(all_ran, "the twelve runs never finished")
        runs = await deployment.executor.run("work:runs")
    assert sorted(r["i"] for r in runs) == list(range(12))
    assert most_at_once(runs) == 3


async def test_a_pool_of_three_never_runs_a_fourth_across_two_workers(
    postgres_url: str, tmp_path: Path
) -> None:
    files = (tmp_path / "files").as_uri()
    async with (
        Deployment(APP, database_url=postgres_url, storage_url=files) as one,
        Deployment(APP, database_url=postgres_url, storage_url=files) as two,
    ):
        one.scheduler.start()
        two.scheduler.start()
        await one.executor.run("work:start_slow", {"n": 24, "seconds": 0.1})

        async def all_ran() -> bool:
            return len(await one.executor.run("work:runs")) == 24

        await eventually(all_ran, "the runs never finished")
        runs = await one.executor.run("work:runs")

        async def all_finished() -> bool:
            return {row["status"] for row in await _rows(one)} == {"finished"}

        await eventually(all_finished, "the items were never all recorded finished")
        claims = {row.get("claimed_by") for row in await _rows(one)}
    assert sorted(r["i"] for r in runs) == list(range(24))
    assert most_at_once(runs) == 3
    assert claims == {None}  # every claim let go


async def _rows(deployment: Deployment) -> list[dict[str, Any]]:
    async with deployment.database.read(system=True) as reader:
        rows: list[dict[str, Any]] = await reader.query(WORKPOOL_WORK).collect()
    return rows


def test_kill_9_mid_run_then_restart(tmp_path: Path) -> None:
    app = tmp_path / "workpool"
    shutil.copytree(APP / "convex", app / "convex", ignore=shutil.ignore_patterns("__pycache__"))
    first = Process("dev", str(app))
    try:
        work_id = api_call(first.api, "mutation", "work:start_hangs")
        wait_until(lambda: api_call(first.api, "query", "work:count", {"key": "hangs"}) == 1)
        status = api_call(first.api, "query", "work:status", {"id": work_id, "pool": "retrying"})
        assert status == {"state": "running", "previous_attempts": 0}
    finally:
        first.proc.kill()  # SIGKILL mid-run: no shutdown, no clean-up
        first.proc.wait(timeout=30)

    second = Process("dev", str(app))
    try:
        [done] = wait_until(lambda: api_call(second.api, "query", "work:completions"))
        assert done["result"] == {"kind": "success", "return_value": 2}  # the retry's
        status = api_call(second.api, "query", "work:status", {"id": work_id, "pool": "retrying"})
        assert status == {"state": "finished", "previous_attempts": 2}
        assert api_call(second.api, "query", "work:count", {"key": "hangs"}) == 2
        # on_complete ran once: nothing more comes of the work
        assert len(api_call(second.api, "query", "work:completions")) == 1
    finally:
        second.stop()


async def test_status_of_work_running_now(t: ConvexTest) -> None:
    work_id = await t.mutation("work:start_flaky", {"key": "c", "fails": 0})
    [queue] = [q for q in t.deployment.scheduler.queues if isinstance(q, PoolQueue)]
    await queue.run_due(t.clock.now(), 10)  # claimed and started, not yet run
    assert await t.query("work:status", {"id": work_id, "pool": "retrying"}) == {
        "state": "running",
        "previous_attempts": 0,
    }
    await queue.settle()
    assert await t.query("work:status", {"id": work_id, "pool": "retrying"}) == {
        "state": "finished",
        "previous_attempts": 1,
    }


# -- found in review --------------------------------------------------------------------------


async def test_a_job_canceled_earlier_in_the_same_batch_does_not_run(t: ConvexTest) -> None:
    victim = await t.mutation("work:schedule_pair")
    t.clock.advance(10)  # both due: one batch takes them, the canceling job first
    await t.finish_scheduled_functions()
    job = await t.run(lambda ctx: ctx.db.system.get(victim))
    assert job["state"]["kind"] == "canceled"
    assert await t.query("work:notes") == []


async def test_work_canceled_earlier_in_the_same_batch_does_not_run(t: ConvexTest) -> None:
    victim = await t.mutation("work:enqueue_then_cancel_later")
    t.clock.advance(2)
    await t.finish_all_scheduled_functions()
    assert await t.query("work:notes") == []
    [done] = await t.query("work:completions")
    assert done["work_id"] == victim and done["result"] == {"kind": "canceled"}


async def test_a_full_pool_holds_up_no_other_pool_and_the_worker_does_not_spin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = 0
    run_due = PoolQueue.run_due

    async def counted(self: PoolQueue, now: float, limit: int) -> int:
        nonlocal batches
        batches += 1
        return await run_due(self, now, limit)

    monkeypatch.setattr(PoolQueue, "run_due", counted)
    async with Deployment(APP, database_url=f"sqlite:///{tmp_path}/db.sqlite3") as deployment:
        await deployment.executor.run("work:start_slow", {"n": 150, "seconds": 0.2})
        await deployment.executor.run("work:start_other_note", {"text": "other"})
        deployment.scheduler.start()

        async def other_ran() -> bool:
            return bool(await deployment.executor.run("work:notes") == ["other"])

        await eventually(other_ran, "pool one's item waited behind pool three's backlog")
        assert len(await deployment.executor.run("work:runs")) < 150  # while three is busy
        await asyncio.sleep(0.5)  # the backlog drains, three at a time
        # a batch per slot that frees (and the odd wake-up), not a busy loop of empty ones
        assert batches < 60


async def test_an_outcome_that_cannot_be_recorded_is_tried_again(
    t: ConvexTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish = PoolQueue.finish
    failed: list[bool] = []

    async def flaky_finish(self: PoolQueue, system: Any, row: Any, outcome: Any, **kw: Any) -> None:
        if kw["claimed"] and not failed:
            failed.append(True)
            raise RuntimeError("the database went away")
        await finish(self, system, row, outcome, **kw)

    monkeypatch.setattr(PoolQueue, "finish", flaky_finish)
    work_id = await t.mutation("work:start_flaky", {"key": "r", "fails": 0})
    await t.finish_all_scheduled_functions()
    assert failed == [True]
    status = await t.query("work:status", {"id": work_id, "pool": "retrying"})
    assert status == {"state": "finished", "previous_attempts": 1}


async def test_a_time_that_is_not_finite_is_refused(t: ConvexTest) -> None:
    with pytest.raises(Exception, match="finite number of seconds"):
        await t.mutation("work:start_nan")
    with pytest.raises(Exception, match="finite time"):
        await t.mutation("work:schedule_nan")
    assert await items(t) == []


async def test_a_long_backlog_in_a_pool_of_one_finishes_in_a_test(t: ConvexTest) -> None:
    await t.mutation("work:start_many_notes", {"n": 150})
    await t.finish_scheduled_functions()
    assert len(await t.query("work:notes")) == 150


async def test_a_pool_with_a_long_backlog_holds_up_no_other_pool(t: ConvexTest) -> None:
    await t.mutation("work:start_many_notes", {"n": 1050})  # pool one: one at a time
    await t.mutation("work:start_other_pool_note", {"text": "other"})
    [queue] = [q for q in t.deployment.scheduler.queues if isinstance(q, PoolQueue)]
    assert await queue.next_due() == pytest.approx(t.clock.now())
    assert await queue.run_due(t.clock.now(), 64) == 2  # one of pool one's, and pool three's
    assert sorted(await t.query("work:notes")) == ["n0", "other"]


async def test_an_outcome_too_large_for_its_row_is_recorded_bare(t: ConvexTest) -> None:
    work_id = await t.mutation("work:start_big")
    await t.finish_all_scheduled_functions()
    assert (await t.query("work:status", {"id": work_id}))["state"] == "finished"
    [done] = await t.query("work:completions")
    assert done["result"] == {"kind": "success", "return_value": None}


async def test_a_batch_stops_taking_items_once_it_has_run_long_enough(
    t: ConvexTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyconvex.background import items as items_module
    from pyconvex.background.scheduled import ScheduledQueue

    monkeypatch.setattr(items_module, "BATCH_SECONDS", 0.0)
    await t.mutation("work:schedule_notes", {"n": 3})
    [queue] = [q for q in t.deployment.scheduler.queues if isinstance(q, ScheduledQueue)]
    assert await queue.run_due(t.clock.now(), 64) == 1  # the rest wait for the next batch
    assert await t.query("work:notes") == ["s0"]
    assert await t.finish_scheduled_functions() == 2
