"""Live queries across processes: two ``pyconvex serve`` processes on one database, a
write through one updating the subscribers of the other (Convex's npm client on each).
PostgreSQL wakes the other process with NOTIFY; on SQLite it finds the commit by polling
the commit log."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from convex_clients import Node, node_modules
from test_cli_serving import Process

SYNC_APP = Path(__file__).parent / "apps" / "sync"


@pytest.fixture(params=["postgres", "sqlite"])
def two_servers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Process, Process]]:
    app = tmp_path / "app"
    shutil.copytree(SYNC_APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    options = ["--database-url", url, "--storage-url", (tmp_path / "files").as_uri()]
    first = Process("serve", str(app), *options)
    second = Process("serve", str(app), *options)
    yield first, second
    first.stop()
    second.stop()


def test_a_write_through_one_process_updates_subscribers_of_the_other(
    two_servers: tuple[Process, Process],
) -> None:
    first, second = two_servers
    node = Node(node_modules())
    try:
        watcher, writer = node.client(first.api), node.client(second.api)
        sub = node.subscribe(watcher, "messages:list", {"channel": "across"})
        shared = node.subscribe(writer, "messages:list", {"channel": "across"})
        assert node.update(sub) == [] and node.update(shared) == []
        for n in range(5):
            node.call(writer, "mutation", "messages:send", {"channel": "across", "body": str(n)})
            expected = [str(i) for i in range(n + 1)]
            assert node.update(sub, lambda value, e=expected: value == e) == expected
        # And the other way round, with Int64 values.
        node.call(watcher, "mutation", "counters:increment", {"name": "across"})
        counter = node.subscribe(writer, "counters:get", {"name": "across"})
        assert node.update(counter, lambda value: value == 1) == 1
        node.call(watcher, "mutation", "counters:increment", {"name": "across"})
        assert node.update(counter, lambda value: value == 2) == 2
    finally:
        node.close()
