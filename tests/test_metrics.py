"""The Health metrics: recorded per process, flushed to ``_metrics``, merged when read."""

from __future__ import annotations

import asyncio
import math
import random
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import eventually, wait_until
from pyconvex import metrics as metrics_module
from pyconvex import query
from pyconvex.database import Database
from pyconvex.database.system import METRICS, WEBHOOK_EVENTS
from pyconvex.deployment import Deployment
from pyconvex.errors import ConvexError
from pyconvex.metrics import (
    BUCKET_SECONDS,
    LATENCY_BUCKETS,
    RETENTION_SECONDS,
    STEPS,
    Metrics,
    health,
    latency_bucket,
    percentile,
)
from pyconvex.persistence import open_persistence
from test_cli_serving import Process

WEB = Path(__file__).parent / "apps" / "web"
ONE_BUCKET = 2 ** (1 / STEPS)  # the ratio between a latency bucket's edges


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def function(path: str, kind: str = "query") -> Any:
    fn = query(lambda ctx, args: None)
    fn.kind = kind  # type: ignore[assignment]
    fn.path = path
    return fn


@pytest.fixture
async def deployment(basic_app: Path, database_url: str) -> AsyncIterator[Deployment]:
    async with Deployment(basic_app, database_url=database_url) as started:
        yield started


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(open_persistence(database_url))
    await db.setup(system_only=True)
    yield db
    await db.close()


async def documents(database: Database) -> list[dict[str, Any]]:
    async with database.read(system=True) as reader:
        found: list[dict[str, Any]] = await reader.query(METRICS).collect()
    return found


def exact(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_percentiles_of_a_histogram_are_within_one_bucket_of_the_exact_ones() -> None:
    rng = random.Random(7)
    samples = [rng.lognormvariate(math.log(0.004), 1.2) for _ in range(5000)]
    histogram = [0] * LATENCY_BUCKETS
    for seconds in samples:
        histogram[latency_bucket(seconds)] += 1
    for q in (0.5, 0.95, 0.99):
        ratio = percentile(histogram, q) / exact(samples, q)
        assert 1 / ONE_BUCKET < ratio < ONE_BUCKET, (q, ratio)
    assert percentile([0] * LATENCY_BUCKETS, 0.5) == 0.0
    assert latency_bucket(0.0) == 0 and latency_bucket(10_000.0) == latency_bucket(70.0)


async def test_a_nested_call_counts_once_its_transaction_commits(deployment: Deployment) -> None:
    # A transaction that conflicts runs its body again: its nested calls count at the commit.
    metrics = Metrics()
    deployment.call_observers.append(metrics.call)

    async def rolled_back(ctx: Any) -> None:
        await ctx.run_mutation("items:create", {"name": "rolled back"})
        raise RuntimeError("the caller fails")

    async def kept(ctx: Any) -> None:
        await ctx.run_mutation("items:create", {"name": "kept"})

    with pytest.raises(RuntimeError):
        await deployment.executor.run_in_mutation(rolled_back)
    await deployment.executor.run_in_mutation(kept)
    assert await metrics.flush(deployment.database)
    rows = {row["name"]: row for row in (await health(deployment.database))["functions"]}
    assert (rows["items:create"]["calls"], rows["items:create"]["errors"]) == (1, 0)


async def test_the_answering_process_sees_its_own_counts_before_they_are_flushed(
    deployment: Deployment,
) -> None:
    metrics = Metrics()
    deployment.call_observers.append(metrics.call)
    await deployment.executor.run("counters:increment", {"name": "a"})
    metrics.request("api")
    assert (await health(deployment.database))["functions"] == []  # nothing flushed yet
    seen = await health(deployment.database, local=metrics)
    assert [(row["name"], row["calls"]) for row in seen["functions"]] == [("counters:increment", 1)]
    assert await metrics.flush(deployment.database)
    await deployment.executor.run("counters:increment", {"name": "a"})
    again = await health(deployment.database, local=metrics)  # flushed and new: not twice
    assert [(row["name"], row["calls"]) for row in again["functions"]] == [
        ("counters:increment", 2)
    ]
    assert round(sum(again["series"]["requests"]) * BUCKET_SECONDS) == 1


async def test_a_bucket_begun_while_health_reads_is_left_for_the_next_reading(
    database: Database,
) -> None:
    clock = [10_009.99]
    metrics = Metrics(clock=lambda: clock[0])
    metrics.request("api")
    clock[0] = 10_010.0  # the clock passes into the next bucket while health() reads
    metrics.request("api")
    before = await health(database, now=10_009.99, local=metrics)  # an IndexError, once
    assert len(before["series"]["requests"]) == len(before["series"]["t"])
    after = await health(database, now=10_010.0, local=metrics)
    assert round(sum(after["series"]["requests"]) * BUCKET_SECONDS) == 2


async def test_requests_calls_errors_and_error_rate_per_function(deployment: Deployment) -> None:
    metrics = Metrics()
    deployment.call_observers.append(metrics.call)
    executor = deployment.executor
    for _ in range(3):
        await executor.run("counters:increment", {"name": "a"})
    for _ in range(2):
        with pytest.raises(ConvexError):
            await executor.run("items:create_then_fail", {"name": "x"})
    await executor.run("counters:bump_many", {"name": "b", "times": 2})  # an action, 3 more calls
    metrics.request("api")
    metrics.request("site")
    assert await metrics.flush(deployment.database)

    report = await health(deployment.database)
    assert round(sum(report["series"]["requests"]) * BUCKET_SECONDS) == 2
    rows = {row["name"]: row for row in report["functions"]}
    assert report["functions"][0]["name"] == "counters:increment"  # most calls first
    assert {name: (row["kind"], row["calls"], row["errors"]) for name, row in rows.items()} == {
        "counters:increment": ("mutation", 5, 0),
        "items:create_then_fail": ("mutation", 2, 2),
        "counters:bump_many": ("action", 1, 0),
        "counters:get": ("query", 1, 0),
    }
    assert 0 < rows["counters:increment"]["p50_ms"] <= rows["counters:increment"]["p99_ms"]
    series = report["series"]
    assert report["processes"] == 1 and report["bucket_seconds"] == BUCKET_SECONDS
    assert len(series["t"]) == RETENTION_SECONDS // BUCKET_SECONDS
    assert series["t"] == sorted(series["t"]) and series["t"][-1] <= report["now"]
    assert round(sum(series["calls"]) * BUCKET_SECONDS) == 9
    busy = [i for i, calls in enumerate(series["calls"]) if calls]
    assert len(series["p50_ms"]) == len(series["t"]) and busy
    assert 0 < series["p50_ms"][busy[-1]] <= series["p99_ms"][busy[-1]]
    assert all(series["p99_ms"][i] == 0 for i in range(len(series["t"])) if i not in busy)
    busy = [i for i, calls in enumerate(series["calls"]) if calls]
    errors = sum(series["error_rate"][i] * series["calls"][i] for i in busy) * BUCKET_SECONDS
    assert round(errors) == 2
    assert all(rate == 0 for i, rate in enumerate(series["error_rate"]) if i not in busy)


async def test_two_processes_histograms_merge_to_those_of_one(database: Database) -> None:
    """Two recorders (two processes) writing one database: the percentiles read are those
    of a single recorder fed every sample."""
    rng = random.Random(3)
    samples = [rng.lognormvariate(math.log(0.02), 1.0) for _ in range(2000)]
    fn = function("items:list")
    now = time.time()
    first, second = Metrics(clock=Clock(now)), Metrics(clock=Clock(now))
    alone = Metrics(clock=Clock(now - 1000))  # its own window of the same database
    for n, seconds in enumerate(samples):
        (first if n % 3 else second).call(fn, seconds, None)
        alone.call(fn, seconds, None)
    for metrics in (first, second, alone):
        assert await metrics.flush(database)

    merged = await health(database, now=now, window=100)
    single = await health(database, now=now - 1000, window=100)
    assert merged["processes"] == 2 and single["processes"] == 1
    assert merged["functions"] == single["functions"]
    row = merged["functions"][0]
    assert row["calls"] == len(samples) and row["errors"] == 0
    for q in (50, 95, 99):
        ratio = row[f"p{q}_ms"] / 1000 / exact(samples, q / 100)
        assert 1 / ONE_BUCKET < ratio < ONE_BUCKET, (q, ratio)


async def test_each_flush_rewrites_the_bucket_of_its_process(database: Database) -> None:
    metrics = Metrics(clock=Clock(time.time()))
    fn = function("items:list")
    metrics.call(fn, 0.001, None)
    assert await metrics.flush(database)
    metrics.call(fn, 0.001, ValueError("x"))
    assert await metrics.flush(database)
    assert await metrics.flush(database)  # nothing new: nothing written
    assert len(await documents(database)) == 1  # one document per process and bucket
    (row,) = (await health(database))["functions"]
    assert (row["calls"], row["errors"]) == (2, 1)


async def test_retention_deletes_buckets_older_than_an_hour(database: Database) -> None:
    now = time.time()
    clock = Clock(now - 2 * RETENTION_SECONDS)
    metrics = Metrics(clock=clock)
    fn = function("items:list")
    metrics.call(fn, 0.001, None)
    assert await metrics.flush(database)
    old = await health(database, now=clock.now)
    assert old["functions"][0]["calls"] == 1

    clock.now = now
    metrics.call(fn, 0.001, None)
    assert await metrics.flush(database)
    assert [d["start"] for d in await documents(database)] == [
        math.floor(now / BUCKET_SECONDS) * BUCKET_SECONDS
    ]
    assert (await health(database, now=old["now"]))["functions"] == []


async def test_a_failed_flush_keeps_the_counts_for_the_next(
    database_url: str, database: Database
) -> None:
    metrics = Metrics()
    fn = function("items:create", "mutation")
    metrics.call(fn, 0.002, None)
    away = Database(open_persistence(database_url))
    await away.close()  # a database that cannot be reached
    assert await metrics.flush(away) is False  # and nothing raised
    metrics.call(fn, 0.002, RuntimeError("boom"))
    assert await metrics.flush(away) is False
    assert await documents(database) == []

    assert await metrics.flush(database)
    (row,) = (await health(database))["functions"]
    assert (row["name"], row["kind"], row["calls"], row["errors"]) == (
        "items:create",
        "mutation",
        2,
        1,
    )


async def make_backlog(deployment: Deployment, late: float) -> None:
    """A job due ``late``, one due in an hour, and webhook events in three states."""

    async def backlog(writer: Any) -> None:
        await deployment.jobs.schedule_in(writer, late, "counters:reset", {})
        await deployment.jobs.schedule_in(writer, time.time() + 3600, "counters:reset", {})
        for status in ("pending", "processing", "succeeded"):
            await writer.system_writer().insert(
                WEBHOOK_EVENTS,
                {
                    "provider": "stripe",
                    "event_id": f"evt_{status}",
                    "received_at": time.time(),
                    "headers": {},
                    "body": b"{}",
                    "handler": "webhooks:nothing",
                    "status": status,
                    "attempts": 0,
                    "max_attempts": 5,
                },
            )

    await deployment.database.transact(backlog)


async def test_scheduler_lag_and_backlogs(deployment: Deployment) -> None:
    metrics = Metrics()
    deployment.scheduler.lag_observers.append(metrics.lag)
    database = deployment.database
    await make_backlog(deployment, time.time() - 5)
    assert await metrics.flush(database)
    series = (await health(database))["series"]
    assert max(series["scheduler_backlog"]) == 1  # the due job, not the one due in an hour
    assert max(series["webhook_backlog"]) == 2  # pending and processing

    deployment.scheduler.start()
    try:

        async def lag() -> float:
            await metrics.flush(database)
            return float(max((await health(database))["series"]["scheduler_lag"]))

        assert await eventually(lag, "the job's lag is recorded") >= 5
    finally:
        await deployment.scheduler.stop()


async def test_backlogs_are_counted_up_to_a_limit(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_module, "BACKLOG_LIMIT", 1)
    await make_backlog(deployment, time.time() - 5)
    metrics = Metrics()
    assert await metrics.flush(deployment.database)
    series = (await health(deployment.database))["series"]
    assert (max(series["scheduler_backlog"]), max(series["webhook_backlog"])) == (1, 1)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_serve_with_two_workers_records_every_request_of_both(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tmp_path / "app"
    shutil.copytree(WEB, app)
    url = (
        request.getfixturevalue("postgres_url")
        if backend == "postgres"
        else f"sqlite:///{tmp_path / 'data.sqlite3'}"
    )
    monkeypatch.setenv("PYCONVEX_ADMIN_KEY", "metrics-admin-key")
    process = Process("serve", str(app), "--workers", "2", "--database-url", url)
    try:
        process.wait_for(r"worker \d of 2")
        pids = set()
        for n in range(40):  # a new connection each: the kernel spreads them over the workers
            response = httpx.post(
                f"{process.api}/api/mutation",
                json={"path": "counters:increment", "args": {"name": "m"}},
            )
            assert response.json()["status"] == "success"
            if n % 2 == 0:
                pids.add(httpx.get(f"{process.site}/pid").json()["pid"])

        async def read() -> dict[str, Any]:
            database = Database(open_persistence(url))
            try:
                return await health(database)
            finally:
                await database.close()

        def recorded() -> dict[str, Any] | None:
            report = asyncio.run(read())
            calls = round(sum(report["series"]["calls"]) * BUCKET_SECONDS)
            requests = round(sum(report["series"]["requests"]) * BUCKET_SECONDS)
            return report if calls >= 40 and requests >= 60 else None

        report = wait_until(recorded, timeout=30)
        assert round(sum(report["series"]["requests"]) * BUCKET_SECONDS) == 60  # 40 + 20 /pid
        assert round(sum(report["series"]["calls"]) * BUCKET_SECONDS) == 40
        assert report["functions"][0]["name"] == "counters:increment"
        assert report["functions"][0]["calls"] == 40
        assert report["processes"] == len(pids) == 2
    finally:
        process.stop()
