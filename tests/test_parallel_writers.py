"""PostgreSQL: the writers of different processes run at once, a conflict's retry runs alone,
and workers take work with FOR UPDATE SKIP LOCKED. Each ``Database`` here has a store of its
own: two stores are two processes, as far as PostgreSQL can tell."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

from conftest import eventually
from pyconvex import v
from pyconvex.database import Database, DatabaseWriter
from pyconvex.persistence import open_persistence
from pyconvex.persistence.postgres import PostgresPersistence
from pyconvex.schema import define_schema, define_table

SCHEMA = define_schema(
    {
        "jobs": define_table({"n": v.number(), "state": v.string()}).index("by_state", ["state"]),
        "counters": define_table({"value": v.number()}),
    }
)
GUARD = 30  # seconds: only a hang would take this long


@pytest.fixture
async def two(postgres_url: str) -> AsyncIterator[tuple[Database, Database]]:
    first = Database(open_persistence(postgres_url), SCHEMA)
    await first.setup()
    # A table's first write numbers its natural index (one shared row): done here, once, so
    # that the writers below do not all wait on that row.
    for table, fields in (("jobs", {"n": -1, "state": "setup"}), ("counters", {"value": -1})):
        await first.transact(lambda w, t=table, f=fields: w.insert(t, f))
    second = Database(open_persistence(postgres_url), SCHEMA)
    await second.setup()
    yield first, second
    await first.close()
    await second.close()


async def _until_a_writer_waits(url: str) -> None:
    """Return once some session waits for the writers' advisory lock."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:

        async def waiting() -> bool:
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            row = await cursor.fetchone()
            return bool(row and row[0])

        await eventually(waiting, "no writer ever waited", timeout=GUARD)


async def test_writers_of_two_processes_run_at_once(two: tuple[Database, Database]) -> None:
    first, second = two
    async with first.write() as holding:
        await holding.insert("counters", {"value": 1})
        # Before, every writer queued on one lock: this would wait for the block to end.
        async with asyncio.timeout(GUARD), second.write() as other:
            await other.insert("counters", {"value": 2})
    async with first.read() as reader:
        assert sorted(c["value"] for c in await reader.query("counters").collect()) == [-1, 1, 2]


async def test_an_exclusive_writer_waits_for_the_others_and_runs_alone(
    two: tuple[Database, Database], postgres_url: str
) -> None:
    first, second = two
    order: list[str] = []

    async def exclusive() -> None:
        async with second.write(exclusive=True) as writer:
            order.append("exclusive began")
            await writer.insert("counters", {"value": 2})

    async with first.write() as holding:
        await holding.insert("counters", {"value": 1})
        task = asyncio.create_task(exclusive())
        await _until_a_writer_waits(postgres_url)
        assert not task.done()
        order.append("shared committing")
    async with asyncio.timeout(GUARD):
        await task
    assert order == ["shared committing", "exclusive began"]


async def test_a_conflict_is_retried_alone_and_both_increments_count(
    two: tuple[Database, Database],
) -> None:
    first, second = two
    counter = await first.transact(lambda w: w.insert("counters", {"value": 0}))
    both_read = asyncio.Barrier(2)
    attempts: list[tuple[str, bool]] = []
    for name, database in (("first", first), ("second", second)):
        _record_begins(database, name, attempts)

    def increment(name: str) -> Callable[[DatabaseWriter], Any]:
        async def fn(writer: DatabaseWriter) -> None:
            doc = await writer.get(counter)
            assert doc is not None
            if sum(1 for who, _ in attempts if who == name) == 1:
                await both_read.wait()  # the first attempts read the same value
            await writer.patch(counter, {"value": doc["value"] + 1})

        return fn

    async with asyncio.timeout(GUARD):
        await asyncio.gather(
            first.transact(increment("first")), second.transact(increment("second"))
        )
    async with first.read() as reader:
        doc = await reader.get(counter)
    assert doc is not None and doc["value"] == 2
    # One of them lost the race and ran once more, exclusive; the winner ran once, shared.
    assert sorted(attempts) in (
        [("first", False), ("first", True), ("second", False)],
        [("first", False), ("second", False), ("second", True)],
    )


def _record_begins(database: Database, name: str, attempts: list[tuple[str, bool]]) -> None:
    store = database.persistence
    begin = store.begin_write

    async def recording(*, exclusive: bool = False) -> Any:
        attempts.append((name, exclusive))
        return await begin(exclusive=exclusive)

    store.begin_write = recording  # type: ignore[method-assign]


async def _jobs(database: Database, count: int) -> list[str]:
    async def add(writer: DatabaseWriter) -> list[str]:
        return [await writer.insert("jobs", {"n": n, "state": "pending"}) for n in range(count)]

    ids: list[str] = await database.transact(add)
    return ids


async def test_lock_skips_documents_another_writer_holds(two: tuple[Database, Database]) -> None:
    first, second = two
    a, b = await _jobs(first, 2)
    async with first.write(system=True) as holding:
        locked = await holding.lock(a)
        assert locked is not None and locked["_id"] == a  # the document, read with its lock
        async with asyncio.timeout(GUARD), second.write(system=True) as other:
            assert not await other.lock(a)  # at once: skipped, not waited for
            assert await other.lock(b)
    async with second.write(system=True) as after:
        assert await after.lock(a)  # let go with the transaction


async def test_claims_of_two_workers_take_different_documents(
    two: tuple[Database, Database],
) -> None:
    first, second = two
    ids = await _jobs(first, 5)

    def pending(writer: DatabaseWriter) -> Any:
        return writer.query("jobs").with_index("by_state", lambda q: q.eq("state", "pending"))

    async with first.write(system=True) as holding:
        mine = await pending(holding).claim(2)
        async with asyncio.timeout(GUARD), second.write(system=True) as other:
            theirs = await pending(other).claim(2)
            rest = await pending(other).claim(10)
    assert [d["_id"] for d in mine] == ids[:2]
    assert [d["_id"] for d in theirs] == ids[2:4]
    assert [d["_id"] for d in rest] == ids[2:]  # its own are its own; the first's skipped


async def test_claim_and_lock_are_for_system_writers(two: tuple[Database, Database]) -> None:
    from pyconvex.errors import InvalidQueryError

    first, _ = two
    (a,) = await _jobs(first, 1)
    async with first.write() as writer:
        with pytest.raises(InvalidQueryError, match="pyconvex's own workers"):
            await writer.lock(a)
        with pytest.raises(InvalidQueryError, match="pyconvex's own workers"):
            await writer.query("jobs").claim(1)
    async with first.read(system=True) as reader:
        with pytest.raises(InvalidQueryError, match="pyconvex's own workers"):
            await reader.query("jobs").claim(1)


async def test_a_write_that_failed_in_the_pipeline_fails_the_commit_and_leaves_nothing(
    two: tuple[Database, Database],
) -> None:
    from pyconvex.errors import ConflictError

    first, second = two
    counter = await first.transact(lambda w: w.insert("counters", {"value": 0}))
    with pytest.raises(ConflictError):
        async with first.write() as late:
            assert await late.get(counter) is not None  # its snapshot is taken here
            await second.transact(lambda w: w.patch(counter, {"value": 1}))
            await late.insert("counters", {"value": 100})
            await late.patch(counter, {"value": 2})  # sent, not answered: fails on the server
    async with first.read() as reader:
        values = sorted(c["value"] for c in await reader.query("counters").collect())
    assert values == [-1, 1]  # the insert sent before the failure was rolled back with it
    # The writers' lock was let go and the connection is usable: an exclusive writer (which
    # waits for every other) gets in at once.
    async with asyncio.timeout(GUARD):
        await first.transact(lambda w: w.patch(counter, {"value": 3}))
        async with second.write(exclusive=True) as alone:
            assert (await alone.get(counter) or {})["value"] == 3


async def test_a_writer_cancelled_while_it_waits_for_the_lock_gives_its_connection_back(
    two: tuple[Database, Database], postgres_url: str
) -> None:
    first, second = two
    store = second.persistence
    assert isinstance(store, PostgresPersistence)

    async def exclusive() -> None:
        async with second.write(exclusive=True):
            raise AssertionError("never gets in: cancelled while it waits")

    async with first.write() as holding:
        await holding.insert("counters", {"value": 1})
        task = asyncio.create_task(exclusive())
        await _until_a_writer_waits(postgres_url)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    async with asyncio.timeout(GUARD):
        await second.transact(lambda w: w.insert("counters", {"value": 2}))
    pool = store._pool
    assert pool is not None
    stats = pool.get_stats()
    assert stats["pool_available"] == stats["pool_size"]  # every connection came back
