"""Work added by one process wakes the workers of the others (PostgreSQL LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conftest import eventually
from pyconvex.background import worker as scheduler
from pyconvex.deployment import Deployment
from pyconvex.persistence.postgres import PostgresPersistence

WEB = Path(__file__).parent / "apps" / "web"


async def test_a_job_scheduled_in_one_process_wakes_the_worker_of_another(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a notification the worker would next look in a minute: past this test's patience.
    monkeypatch.setattr(scheduler, "POLL_SECONDS", 60.0)
    files = (tmp_path / "files").as_uri()
    async with (
        Deployment(WEB, database_url=postgres_url, storage_url=files) as caller,
        Deployment(WEB, database_url=postgres_url, storage_url=files) as worker,
    ):
        worker.scheduler.start()
        store = worker.database.persistence
        assert isinstance(store, PostgresPersistence)
        await asyncio.wait_for(store.listening.wait(), timeout=10)
        await asyncio.wait_for(worker.scheduler.idle.wait(), timeout=10)  # in its minute-long wait

        job = await caller.executor.run("jobs:schedule", {"delay": 0, "tag": "woken"})

        async def ran() -> bool:
            state = await caller.executor.run("jobs:job", {"id": job})
            return bool(state["state"]["kind"] == "success")

        await eventually(ran, "the other process's worker never ran it")
        marks = await caller.executor.run("jobs:marks", {"tag": "woken"})
        assert len(marks) == 1
