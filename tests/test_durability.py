"""Across processes, on SQLite and PostgreSQL: commit timestamps of two worker processes
strictly increase, and a server killed with SIGKILL under mutation load loses no write it
acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import api_call
from pyconvex.deployment import Deployment
from test_cli_serving import Process

BANK = Path(__file__).parent / "apps" / "bank"
ADMIN = "durability-admin-key"

WORKER = textwrap.dedent(
    """
    import asyncio, sys, time
    from pyconvex.deployment import Deployment

    async def main(app, url, name, times):
        async with Deployment(app, database_url=url) as d:
            for n in range(times):
                fn = lambda w, n=n: w.insert("notes", {"text": f"{name}{n}", "tag": name})
                began = time.monotonic_ns()  # one clock for every process of the machine
                _, ts = await d.database.transact_at(fn)
                print(began, ts, time.monotonic_ns(), flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
    """
)


async def test_commit_timestamps_of_two_worker_processes_strictly_increase(
    database_url: str,
) -> None:
    async with Deployment(BANK, database_url=database_url):
        pass  # the store and its indexes, made once before the race
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(BANK), database_url, name, "200"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = await asyncio.gather(*(asyncio.to_thread(w.communicate, None, 120) for w in workers))
    assert [w.returncode for w in workers] == [0, 0]
    commits = [
        [tuple(int(x) for x in line.split()) for line in out.splitlines()] for out, _ in outputs
    ]
    for mine in commits:
        assert len(mine) == 200
        assert [ts for _, ts, _ in mine] == sorted(ts for _, ts, _ in mine)
    every = commits[0] + commits[1]
    assert len({ts for _, ts, _ in every}) == 400  # no timestamp given twice, across processes
    # A commit acknowledged before another began has the smaller timestamp, whichever
    # processes made them: timestamps follow real time.
    for _, earlier, done in every:
        for began, later, _ in every:
            if done < began:
                assert earlier < later
    async with Deployment(BANK, database_url=database_url) as d:
        snapshot = await d.database.persistence.begin_read()
        try:
            logged = [ts for ts, _ in await snapshot.commits(0)]
        finally:
            await snapshot.close()
    assert {ts for _, ts, _ in every} <= set(logged)


@pytest.fixture
def served(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], Path]:
    monkeypatch.setenv("PYCONVEX_ADMIN_KEY", ADMIN)
    return (
        ["--database-url", database_url, "--storage-url", (tmp_path / "files").as_uri()],
        tmp_path,
    )


def test_sigkill_under_mutation_load_loses_no_acknowledged_write(
    served: tuple[list[str], Path],
) -> None:
    options, _ = served
    process = Process("serve", str(BANK), *options)
    acknowledged: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    def client(number: int) -> None:
        with httpx.Client(timeout=30) as http:
            for n in range(10_000):
                body = {"path": "bank:note", "args": {"text": f"{number}-{n}", "tag": "load"}}
                try:
                    response = http.post(f"{process.api}/api/mutation", json=body)
                except httpx.HTTPError:
                    return  # the server died mid-request: not acknowledged
                if response.status_code != 200 or response.json()["status"] != "success":
                    return
                with lock:
                    acknowledged.append(response.json()["value"])
                    if len(acknowledged) >= 300:
                        enough.set()

    with ThreadPoolExecutor(max_workers=16) as pool:
        running = [pool.submit(client, n) for n in range(16)]
        assert enough.wait(60), "the server never acknowledged 300 writes"
        os.kill(process.proc.pid, signal.SIGKILL)  # mid-load: commits in flight
        for future in running:
            future.result(timeout=60)
    process.proc.wait(timeout=30)

    restarted = Process("serve", str(BANK), *options)
    try:
        stored = set(
            api_call(
                restarted.api,
                "query",
                "bank:all_notes",
                headers={"Authorization": f"Convex {ADMIN}"},
            )
        )
    finally:
        restarted.stop()
    assert len(acknowledged) >= 300
    missing = [doc_id for doc_id in acknowledged if doc_id not in stored]
    assert missing == []
