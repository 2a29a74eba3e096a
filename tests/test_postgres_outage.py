"""PostgreSQL going away under a running server: 503 (not 500) meanwhile, then service resumes
by itself, and no acknowledged write is lost."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from conftest import PostgresServer, Served, wait_until


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own: stopping the shared one would pull it from under others."""
    server = PostgresServer()
    yield server
    server.remove()


def test_a_restart_of_postgres_is_503_then_recovers(
    serve_app: Callable[..., Served], web_app: Path, own_postgres: PostgresServer
) -> None:
    served = serve_app(web_app, database_url=own_postgres.new_database())
    url = f"{served.site}/increment"
    assert [httpx.post(url, json={"name": "n"}).json()["value"] for _ in range(3)] == [1, 2, 3]

    own_postgres.stop("immediate")  # a crash: no goodbye to the clients
    during = httpx.post(url, json={"name": "n"})
    assert during.status_code == 503
    assert during.json()["code"] == "ServiceUnavailable" and during.headers["retry-after"] == "1"
    api = served.call("mutation", "counters:increment", {"name": "n"})
    assert api.status_code == 503, api.text

    own_postgres.start()
    wait_until(lambda: httpx.post(url, json={"name": "n"}).status_code == 200)
    # Every write acknowledged before the crash survived it; none of the refused ones happened.
    assert served.call("query", "counters:get", {"name": "n"}).json()["value"] == 4
