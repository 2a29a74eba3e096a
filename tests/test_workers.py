"""Two `pyconvex serve` worker processes on one PostgreSQL: exactly-once and no lost writes."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import api_call, wait_until
from pyconvex.testing import sign_webhook
from test_cli_serving import Process

WEB = Path(__file__).parent / "apps" / "web"
ADMIN = "workers-admin-key"


_local = threading.local()


def client() -> httpx.Client:
    """One client per thread: many connections, spread by the kernel over the workers
    (and no per-request client set-up, which costs more than the request)."""
    if not hasattr(_local, "client"):
        _local.client = httpx.Client(timeout=60)
    found: httpx.Client = _local.client
    return found


class Workers:
    def __init__(self, process: Process) -> None:
        self.process = process
        self.site, self.api = process.site, process.api

    def call(self, kind: str, path: str, args: dict[str, Any] | None = None) -> Any:
        return api_call(self.api, kind, path, args, headers={"Authorization": f"Convex {ADMIN}"})

    def pids(self) -> set[int]:
        """The worker processes, as seen by the requests they answer (a new connection each:
        the kernel hands connections, not requests, to workers)."""
        return {httpx.get(f"{self.site}/pid").json()["pid"] for _ in range(60)}


@pytest.fixture
def workers(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workers]:
    app = tmp_path / "app"
    shutil.copytree(WEB, app)
    monkeypatch.setenv("PYCONVEX_ADMIN_KEY", ADMIN)
    monkeypatch.setenv("STRIPE_SECRET", "whsec_workers")
    process = Process(
        "serve", str(app), "--workers", "2", "--database-url", postgres_url,
        "--storage-url", (tmp_path / "files").as_uri(),
    )  # fmt: skip
    process.wait_for(r"worker \d of 2")  # the second worker is ready too
    yield Workers(process)
    process.stop()


def test_both_workers_answer(workers: Workers) -> None:
    assert len(workers.pids()) == 2


def test_1000_concurrent_increments_end_at_1000(workers: Workers) -> None:
    def increment(_: int) -> int:
        response = client().post(f"{workers.site}/increment", json={"name": "c"})
        assert response.status_code == 200, response.text
        value: int = response.json()["value"]
        return value

    with ThreadPoolExecutor(max_workers=32) as pool:
        seen = list(pool.map(increment, range(1000)))
    assert sorted(seen) == list(range(1, 1001))  # every increment saw its own value: none lost
    assert workers.call("query", "counters:get", {"name": "c"}) == 1000


def test_500_scheduled_mutations_run_exactly_once(workers: Workers) -> None:
    workers.call("mutation", "jobs:schedule_many", {"n": 500, "delay": 0, "tag": "once"})

    def marks() -> list[Any]:
        return [m["i"] for m in workers.call("query", "jobs:marks", {"tag": "once"})]

    wait_until(lambda: len(marks()) >= 500, timeout=120)
    assert sorted(marks()) == list(range(500))


def test_the_same_webhook_delivered_to_both_workers_at_once_is_processed_once(
    workers: Workers,
) -> None:
    signed = sign_webhook("stripe", "whsec_workers", {"id": "evt_dup", "type": "invoice.paid"})
    start = threading.Barrier(20)

    def deliver(_: int) -> dict[str, Any]:
        with httpx.Client() as client:
            start.wait()
            response = client.post(
                f"{workers.site}/hooks/stripe", headers=signed.headers, content=signed.body
            )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(deliver, range(20)))
    assert sum(1 for a in answers if not a.get("duplicate")) == 1
    wait_until(lambda: workers.call("query", "webhooks:events"))
    assert workers.call("query", "webhooks:events") == [
        {"provider": "stripe", "event_id": "evt_dup", "type": "invoice.paid"}
    ]
    assert len(workers.call("query", "webhooks:received")) == 1
    wait_until(lambda: workers.call("query", "webhooks:received")[0]["status"] == "succeeded")


def test_kill_9_of_a_worker_under_load_loses_no_acknowledged_write(workers: Workers) -> None:
    victim = min(workers.pids())
    acknowledged: list[int] = []
    attempts = 0
    lock = threading.Lock()

    def increment(n: int) -> None:
        nonlocal attempts
        if n == 150:
            os.kill(victim, signal.SIGKILL)
        with lock:
            attempts += 1
        try:
            response = client().post(f"{workers.site}/increment", json={"name": "k"})
        except httpx.HTTPError:
            return  # its worker died with it: not acknowledged
        if response.status_code == 200:
            with lock:
                acknowledged.append(response.json()["value"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(increment, range(400)))
    workers.process.wait_for("worker . was killed by SIGKILL: starting a new one")
    final = workers.call("query", "counters:get", {"name": "k"})
    # Every acknowledged increment is in the total, each value handed out once.
    assert len(set(acknowledged)) == len(acknowledged)
    assert max(acknowledged) <= final <= attempts
    assert len(acknowledged) <= final
    assert len(acknowledged) > 300  # the survivor (and the replacement) kept serving


def test_workers_that_cannot_start_stop_the_server_instead_of_looping(tmp_path: Path) -> None:
    import subprocess
    import sys

    app = tmp_path / "broken"
    (app / "convex").mkdir(parents=True)
    (app / "convex" / "http.py").write_text("this is not python\n")
    done = subprocess.run(
        [sys.executable, "-m", "pyconvex.cli.main", "serve", str(app), "--workers", "2",
         "--port", "0", "--site-port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Could not load the app" in done.stderr and "while starting: stopping" in done.stderr


def test_postgres_restarting_under_two_workers_is_503_then_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import PostgresServer

    postgres = PostgresServer()  # this test's own: it is stopped mid-way
    app = tmp_path / "app"
    shutil.copytree(WEB, app)
    monkeypatch.setenv("PYCONVEX_ADMIN_KEY", ADMIN)
    process = Process(
        "serve", str(app), "--workers", "2", "--database-url", postgres.new_database(),
        "--storage-url", (tmp_path / "files").as_uri(),
    )  # fmt: skip
    try:
        process.wait_for(r"worker \d of 2")
        workers = Workers(process)
        url = f"{workers.site}/increment"
        assert httpx.post(url, json={"name": "r"}).json() == {"value": 1}
        postgres.stop("immediate")
        # Every answer while it is away is a 503 (whichever worker takes the connection).
        statuses = {httpx.post(url, json={"name": "r"}).status_code for _ in range(6)}
        assert statuses == {503}
        postgres.start()
        wait_until(lambda: httpx.post(url, json={"name": "r"}).status_code == 200)
        # Both workers are back, not only one: no restart needed anywhere.
        wait_until(lambda: len(workers.pids()) == 2)
        assert all(httpx.post(url, json={"name": "r"}).status_code == 200 for _ in range(20))
        assert workers.call("query", "counters:get", {"name": "r"}) >= 22
    finally:
        process.stop()
        postgres.remove()
