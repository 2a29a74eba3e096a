"""Workers of several processes take different work (FOR UPDATE SKIP LOCKED), on PostgreSQL.

"Another worker" is a transaction of a second deployment on the same database that holds
a job's (or events') rows, as a worker in another process does while it runs them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from conftest import eventually
from pyconvex import scheduler
from pyconvex.database.system import WEBHOOK_EVENTS
from pyconvex.deployment import Deployment
from pyconvex.testing import ConvexTest, sign_webhook

WEB = Path(__file__).parent / "apps" / "web"
STRIPE = "whsec_stripe"


async def test_a_job_another_worker_holds_is_left_to_it(postgres_url: str, tmp_path: Path) -> None:
    files = (tmp_path / "files").as_uri()
    async with (
        Deployment(WEB, database_url=postgres_url, storage_url=files) as holder,
        Deployment(WEB, database_url=postgres_url, storage_url=files) as worker,
    ):
        job_id = await holder.executor.run("jobs:schedule", {"delay": 0, "tag": "held"})
        [job] = await worker.scheduler.due(time.time() + 1, 10)
        async with holder.database.write(system=True) as holding:
            assert await holding.lock(job_id)
            async with asyncio.timeout(10):  # skipped at once, not waited for
                assert await worker.scheduler.run_job(job) is False
        assert await worker.executor.run("jobs:marks", {"tag": "held"}) == []
        assert await worker.scheduler.run_job(job) is True  # the holder let go without running it
        assert len(await worker.executor.run("jobs:marks", {"tag": "held"})) == 1
        assert await worker.scheduler.run_job(job) is True  # done: nothing left to run
        assert len(await worker.executor.run("jobs:marks", {"tag": "held"})) == 1


async def test_the_worker_waits_out_a_held_job_instead_of_spinning_on_it(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler, "POLL_SECONDS", 60.0)  # only the held pause may wake it
    files = (tmp_path / "files").as_uri()
    async with (
        Deployment(WEB, database_url=postgres_url, storage_url=files) as holder,
        Deployment(WEB, database_url=postgres_url, storage_url=files) as worker,
    ):
        job_id = await holder.executor.run("jobs:schedule", {"delay": 0, "tag": "wait"})
        tries = 0
        run_job = worker.scheduler.run_job

        async def counted(job):  # type: ignore[no-untyped-def]
            nonlocal tries
            tries += 1
            return await run_job(job)

        worker.scheduler.run_job = counted  # type: ignore[method-assign]
        async with holder.database.write(system=True) as holding:
            assert await holding.lock(job_id)
            worker.scheduler.start()

            async def waiting() -> bool:
                return job_id in worker.scheduler._held_jobs and worker.scheduler.idle.is_set()

            await eventually(waiting, "the worker never waited for the held job")
            # It looked once (or a few times, one pause apart), not in a loop: a spinning
            # worker is never idle while the job is due, and tries it hundreds of times.
            assert 1 <= tries <= 3
        # Let go: a moment later (not a minute: the poll) the worker runs it.

        async def done() -> bool:
            job = await holder.executor.run("jobs:job", {"id": job_id})
            return bool(job["state"]["kind"] == "success")

        await eventually(done, "the worker never came back for the job")
        assert len(await holder.executor.run("jobs:marks", {"tag": "wait"})) == 1


async def test_webhook_batches_of_two_workers_take_different_events(
    postgres_url: str, web_app: Path
) -> None:
    async with (
        ConvexTest(web_app, database_url=postgres_url) as holder,
        ConvexTest(web_app, database_url=postgres_url) as worker,
    ):
        await holder.deployment.env.set("STRIPE_SECRET", STRIPE)
        for n in range(5):
            event = {"id": f"evt_{n}", "type": "t", "data": {"object": {}}}
            signed = sign_webhook("stripe", STRIPE, event)
            response = await holder.fetch(
                "/hooks/stripe", method="POST", headers=signed.headers, body=signed.body
            )
            assert response.status_code == 200
        now = holder.clock.now()
        async with holder.deployment.database.write(system=True) as holding:
            due = holding.query(WEBHOOK_EVENTS).with_index(
                "by_due", lambda q: q.eq("status", "pending")
            )
            held = [row["event_id"] for row in await due.claim(2)]
            async with asyncio.timeout(10):
                assert await worker.deployment.scheduler.run_queues(now, limit=10) == 3
        assert held == ["evt_0", "evt_1"]
        processed = [e["event_id"] for e in await worker.query("webhooks:events")]
        assert sorted(processed) == ["evt_2", "evt_3", "evt_4"]
        assert await worker.deployment.scheduler.run_queues(now, limit=10) == 2
        assert len(await worker.query("webhooks:events")) == 5


async def test_the_worker_waits_out_held_events_instead_of_spinning_on_them(
    postgres_url: str, web_app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler, "POLL_SECONDS", 60.0)  # only the held pause may wake it
    async with (
        ConvexTest(web_app, database_url=postgres_url) as holder,
        ConvexTest(web_app, database_url=postgres_url) as worker,
    ):
        await holder.deployment.env.set("STRIPE_SECRET", STRIPE)
        event = {"id": "evt_held", "type": "t", "data": {"object": {}}}
        signed = sign_webhook("stripe", STRIPE, event)
        await holder.fetch("/hooks/stripe", method="POST", headers=signed.headers, body=signed.body)
        work = worker.deployment.scheduler
        async with holder.deployment.database.write(system=True) as holding:
            due = holding.query(WEBHOOK_EVENTS).with_index(
                "by_due", lambda q: q.eq("status", "pending")
            )
            assert len(await due.claim(10)) == 1
            work.start()

            async def waiting() -> bool:
                return 0 in work._held_queues and work.idle.is_set()

            await eventually(waiting, "the worker never waited for the held events")

        async def done() -> bool:
            return len(await worker.query("webhooks:events")) == 1

        await eventually(done, "the worker never came back for the events")
