"""Transactions the Convex way: snapshots, read sets, the committer, commit timestamps.

Every test runs on SQLite and on PostgreSQL. "Another process" is a second ``Database``
on the same store: it has its own committer and commit log in memory, and learns of the
first one's commits only through the store, exactly as another OS process does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conftest import ITEMS_SCHEMA
from pyconvex.database import Database, DatabaseWriter
from pyconvex.database.transaction import Transaction
from pyconvex.errors import ConflictError, InvalidQueryError, InvalidTimestampError
from pyconvex.persistence import open_persistence


def by_status(reader: Any, status: str) -> Any:
    return reader.query("items").with_index("by_status", lambda q: q.eq("status", status))


def begun(db: Database) -> list[int]:
    """Count the store write transactions ``db`` begins from now on (one per commit batch)."""
    calls: list[int] = []
    begin = db.persistence.begin_write

    async def counting() -> Any:
        calls.append(1)
        return await begin()

    db.persistence.begin_write = counting  # type: ignore[method-assign]
    return calls


def open_txn(db: Database) -> tuple[Transaction, DatabaseWriter]:
    """A transaction left open, to be committed (or not) by the test."""
    txn = Transaction(db.persistence, db.registry)
    return txn, DatabaseWriter(db.catalog, txn)


@pytest.fixture
async def other(db: Database, database_url: str) -> AsyncIterator[Database]:
    """A second process's database on the same store."""
    second = Database(open_persistence(database_url), ITEMS_SCHEMA)
    await second.setup()
    yield second
    await second.close()


# -- the committer -------------------------------------------------------------------------


async def test_concurrent_transactions_share_commits_each_with_its_own_timestamp(
    db: Database,
) -> None:
    commits = begun(db)
    done = await asyncio.gather(
        *(
            db.transact_at(lambda w, n=n: w.insert("items", {"name": f"item {n}"}))
            for n in range(50)
        )
    )
    ids, stamps = zip(*done, strict=True)
    assert len(set(ids)) == 50
    assert len(set(stamps)) == 50  # a timestamp of its own each, though they share commits
    assert len(commits) < 50
    async with db.read() as reader:
        names = sorted(doc["name"] for doc in await reader.query("items").collect())
    assert names == sorted(f"item {n}" for n in range(50))
    assert await db.head() == max(stamps)


async def test_a_transaction_that_fails_leaves_nothing_and_its_neighbours_commit(
    db: Database,
) -> None:
    async def good(w: DatabaseWriter) -> str:
        return await w.insert("items", {"name": "good"})

    async def bad(w: DatabaseWriter) -> None:
        await w.insert("items", {"name": "bad"})
        raise ValueError("nope")

    results = await asyncio.gather(
        db.transact(good), db.transact(bad), db.transact(good), return_exceptions=True
    )
    assert isinstance(results[1], ValueError) and str(results[1]) == "nope"
    async with db.read() as reader:
        names = [doc["name"] for doc in await reader.query("items").collect()]
    assert names == ["good", "good"]


async def test_a_batch_whose_store_commit_fails_leaves_nothing_and_the_next_commits(
    db: Database,
) -> None:
    begin = db.persistence.begin_write
    failed = False

    async def failing_once() -> Any:
        nonlocal failed
        txn = await begin()
        if not failed:
            failed = True

            async def commit() -> None:
                await txn.close()
                raise RuntimeError("disk on fire")

            txn.commit = commit  # type: ignore[method-assign]
        return txn

    db.persistence.begin_write = failing_once  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(db.transact(lambda w, n=n: w.insert("items", {"name": str(n)})) for n in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, RuntimeError) for r in results)  # the batch: none of it committed
    async with db.read() as reader:
        assert await reader.query("items").collect() == []
    await db.transact(lambda w: w.insert("items", {"name": "after"}))
    async with db.read() as reader:
        assert [d["name"] for d in await reader.query("items").collect()] == ["after"]


@pytest.mark.parametrize("n", [1, 300])
async def test_batches_of_any_size(db: Database, n: int) -> None:
    ids = await asyncio.gather(
        *(db.transact(lambda w: w.insert("items", {"name": "x"})) for _ in range(n))
    )
    assert len(set(ids)) == n


# -- reading one's own writes -------------------------------------------------------------


async def test_a_transaction_reads_its_own_writes_through_every_index(db: Database) -> None:
    keep = await db.transact(lambda w: w.insert("items", {"name": "keep", "status": "a", "n": 1}))
    move = await db.transact(lambda w: w.insert("items", {"name": "move", "status": "a", "n": 2}))
    gone = await db.transact(lambda w: w.insert("items", {"name": "gone", "status": "a", "n": 3}))

    async def change(w: DatabaseWriter) -> dict[str, Any]:
        new = await w.insert("items", {"name": "new", "status": "a", "n": 0})
        await w.patch(move, {"status": "b"})
        await w.delete(gone)
        seen = {
            "a": [d["name"] for d in await by_status(w, "a").collect()],
            "b": [d["name"] for d in await by_status(w, "b").collect()],
            "a desc by n": [
                d["name"]
                for d in await w.query("items")
                .with_index("by_status_n", lambda q: q.eq("status", "a"))
                .order("desc")
                .collect()
            ],
            "all": [d["name"] for d in await w.query("items").collect()],
            "first": (await by_status(w, "a").first() or {}).get("name"),
            "get gone": await w.get(gone),
            "get new": (await w.get(new) or {}).get("name"),
        }
        async with w.savepoint():
            await w.patch(keep, {"status": "b"})
        try:
            async with w.savepoint():
                await w.insert("items", {"name": "undone", "status": "a"})
                raise RuntimeError
        except RuntimeError:
            pass
        seen["after savepoints"] = [d["name"] for d in await by_status(w, "b").collect()]
        seen["undone"] = [d["name"] for d in await by_status(w, "a").collect()]
        return seen

    seen = await db.transact(change)
    assert seen == {
        "a": ["keep", "new"],
        "b": ["move"],
        "a desc by n": ["keep", "new"],
        "all": ["keep", "move", "new"],
        "first": "keep",
        "get gone": None,
        "get new": "new",
        "after savepoints": ["keep", "move"],
        "undone": ["new"],
    }
    async with db.read() as reader:
        assert [d["name"] for d in await by_status(reader, "b").collect()] == ["keep", "move"]
    # Every index entry of the deleted document went with it (a table's size is its count).
    assert (await db.tables())["items"] == 3


async def test_a_document_a_transaction_read_is_not_fetched_again(db: Database) -> None:
    """What a query found is patched without another trip to the store (a queue batch
    patches every item it took: on PostgreSQL each trip is a round trip), the snapshot's
    version; a large scan keeps no more than a bounded amount of it."""
    small = [
        await db.transact(lambda w, i=i: w.insert("items", {"name": f"s{i}", "status": "s"}))
        for i in range(3)
    ]
    big = "x" * 100_000
    large = [
        await db.transact(lambda w, i=i: w.insert("loose", {"i": i, "blob": big}))
        for i in range(20)
    ]
    txn, writer = open_txn(db)
    snapshot = await txn.snapshot()
    fetched: list[str] = []
    get = snapshot.get

    async def counting(doc_id: str) -> Any:
        fetched.append(doc_id)
        return await get(doc_id)

    snapshot.get = counting  # type: ignore[method-assign]
    found = await by_status(writer, "s").collect()
    # Committed meanwhile by someone else: the transaction keeps reading its snapshot.
    await db.transact(lambda w: w.patch(small[0], {"name": "changed"}))
    for doc in found:
        assert await writer.get(doc["_id"]) == doc
        await writer.patch(doc["_id"], {"n": 1})
    assert fetched == []
    assert [d["name"] for d in found] == ["s0", "s1", "s2"]

    # 2 MB of documents scanned: only about 1 MiB of them is kept, the rest fetched again.
    assert len(await writer.query("loose").collect()) == 20
    for i, doc_id in enumerate(large):
        assert (await writer.get(doc_id) or {}).get("i") == i
    assert 5 <= len(fetched) < 20
    await txn.release()


# -- read sets -------------------------------------------------------------------------------


async def test_an_insert_into_a_range_another_transaction_found_empty_is_a_conflict(
    db: Database,
) -> None:
    txn, writer = open_txn(db)
    assert await by_status(writer, "x").collect() == []
    await writer.insert("items", {"name": "mine", "status": "y"})
    await db.transact(lambda w: w.insert("items", {"name": "phantom", "status": "x"}))
    with pytest.raises(ConflictError, match='"items" table changed'):
        await db.committer.commit(txn)
    async with db.read() as reader:
        assert [d["name"] for d in await reader.query("items").collect()] == ["phantom"]


async def test_writes_outside_what_was_read_are_no_conflict(db: Database) -> None:
    first = await db.transact(lambda w: w.insert("items", {"name": "first", "status": "x"}))
    txn, writer = open_txn(db)
    assert (await by_status(writer, "x").first() or {})["_id"] == first  # read up to `first`
    await writer.insert("items", {"name": "mine", "status": "y"})
    # After `first` in the index (a later creation time), and in another range altogether.
    await db.transact(lambda w: w.insert("items", {"name": "later", "status": "x"}))
    await db.transact(lambda w: w.insert("items", {"name": "elsewhere", "status": "z"}))
    assert await db.committer.commit(txn) > 0


async def test_a_write_to_a_document_read_by_id_is_a_conflict(db: Database) -> None:
    doc = await db.transact(lambda w: w.insert("items", {"name": "a"}))
    txn, writer = open_txn(db)
    await writer.get(doc)
    await writer.insert("items", {"name": "mine"})
    await db.transact(lambda w: w.patch(doc, {"name": "b"}))
    with pytest.raises(ConflictError):
        await db.committer.commit(txn)


async def test_a_change_to_a_document_read_through_a_range_is_a_conflict(db: Database) -> None:
    """Its index keys stay the same; what the range led to does not (write skew otherwise)."""
    doc = await db.transact(lambda w: w.insert("items", {"name": "a", "status": "x", "n": 1}))
    for query in (
        lambda w: by_status(w, "x").collect(),  # a schema index whose key does not change
        lambda w: w.query("items").collect(),  # the creation-time index
    ):
        txn, writer = open_txn(db)
        assert len(await query(writer)) == 1
        await writer.insert("items", {"name": "mine"})
        await db.transact(lambda w: w.patch(doc, {"n": 2}))
        with pytest.raises(ConflictError):
            await db.committer.commit(txn)


async def test_a_document_leaving_a_range_is_a_conflict_for_its_readers(db: Database) -> None:
    doc = await db.transact(lambda w: w.insert("items", {"name": "a", "status": "x"}))
    txn, writer = open_txn(db)
    assert len(await by_status(writer, "x").collect()) == 1
    await writer.insert("items", {"name": "mine"})
    await db.transact(lambda w: w.patch(doc, {"status": "y"}))  # its old key was in the range
    with pytest.raises(ConflictError):
        await db.committer.commit(txn)


async def test_check_then_insert_under_concurrency_inserts_once(db: Database) -> None:
    async def insert_once(w: DatabaseWriter) -> bool:
        if await by_status(w, "once").first() is not None:
            return False
        await w.insert("items", {"name": "once", "status": "once"})
        return True

    results = await asyncio.gather(*(db.transact(insert_once) for _ in range(20)))
    assert results.count(True) == 1
    async with db.read() as reader:
        assert len(await by_status(reader, "once").collect()) == 1


async def test_another_processs_commit_is_a_conflict_too(db: Database, other: Database) -> None:
    doc = await db.transact(lambda w: w.insert("items", {"name": "a", "n": 0}))
    txn, writer = open_txn(db)
    seen = await writer.get(doc)
    assert seen is not None
    await writer.patch(doc, {"n": seen["n"] + 1})
    await other.transact(lambda w: w.patch(doc, {"n": 10}))  # learned from the store's log
    with pytest.raises(ConflictError):
        await db.committer.commit(txn)

    both_read = asyncio.Barrier(2)
    attempts = 0

    async def increment(w: DatabaseWriter) -> None:
        nonlocal attempts
        attempts += 1
        current = await w.get(doc)
        assert current is not None
        if attempts <= 2:
            await both_read.wait()  # the first attempts of both read the same value
        await w.patch(doc, {"n": current["n"] + 1})

    async with asyncio.timeout(30):
        await asyncio.gather(db.transact(increment), other.transact(increment))
    async with db.read() as reader:
        assert (await reader.get(doc) or {})["n"] == 12  # neither increment was lost
    assert attempts == 3  # the loser ran once more (exclusive), the winner once


async def test_an_exclusive_transaction_holds_back_the_commits_of_every_process(
    db: Database, other: Database
) -> None:
    order: list[str] = []
    async with db.committer.exclusive() as txn:
        writer = DatabaseWriter(db.catalog, txn)
        await writer.insert("items", {"name": "exclusive"})
        waiting = asyncio.create_task(other.transact(lambda w: w.insert("items", {"name": "o"})))
        await asyncio.sleep(0.2)  # not a synchronisation: room for `waiting` to (wrongly) commit
        assert not waiting.done()
        order.append("exclusive")
        await db.committer.commit_exclusive(txn)
    await asyncio.wait_for(waiting, 30)
    order.append("other")
    async with db.read() as reader:
        assert [d["name"] for d in await reader.query("items").collect()] == ["exclusive", "o"]


# -- timestamps and reads in the past -------------------------------------------------------


async def test_reads_at_a_timestamp_see_the_database_as_that_commit_left_it(
    db: Database, other: Database
) -> None:
    a, ts1 = await db.transact_at(lambda w: w.insert("items", {"name": "a", "status": "x"}))
    _, ts2 = await db.transact_at(lambda w: w.patch(a, {"status": "y"}))
    b, ts3 = await other.transact_at(lambda w: w.insert("items", {"name": "b", "status": "x"}))
    _, ts4 = await db.transact_at(lambda w: w.delete(a))
    assert ts1 < ts2 < ts3 < ts4 == await db.head()

    async def view(database: Database, ts: int) -> dict[str, Any]:
        async with database.read(ts=ts) as reader:
            return {
                "x": [d["name"] for d in await by_status(reader, "x").collect()],
                "y": [d["name"] for d in await by_status(reader, "y").collect()],
                "a": (await reader.get(a) or {}).get("status"),
                "b": (await reader.get(b) or {}).get("status"),
            }

    for database in (db, other):  # the other process learns of db's commits from the store
        assert await view(database, ts1) == {"x": ["a"], "y": [], "a": "x", "b": None}
        assert await view(database, ts2) == {"x": [], "y": ["a"], "a": "y", "b": None}
        assert await view(database, ts3) == {"x": ["b"], "y": ["a"], "a": "y", "b": "x"}
        assert await view(database, ts4) == {"x": ["b"], "y": [], "a": None, "b": "x"}
    with pytest.raises(InvalidTimestampError, match="newer than the newest commit"):
        async with db.read(ts=ts4 + 1):
            pass
    with pytest.raises(InvalidTimestampError, match="out of retention"):
        async with db.read(ts=ts4 - 10**12):
            pass


async def test_timestamps_of_two_processes_interleave_strictly_increasing(
    db: Database, other: Database
) -> None:
    async def insert(database: Database, n: int) -> int:
        _, ts = await database.transact_at(lambda w: w.insert("items", {"name": str(n)}))
        return ts

    stamps = await asyncio.gather(
        *(insert(db if n % 2 else other, n) for n in range(100))
    )  # fmt: skip
    assert len(set(stamps)) == 100
    snapshot = await db.persistence.begin_read()
    try:
        logged = [ts for ts, _ in await snapshot.commits(0)]
    finally:
        await snapshot.close()
    assert set(stamps) <= set(logged)
    assert logged == sorted(set(logged))


async def test_a_worker_that_claims_a_batch_conflicts_with_changes_to_it_not_additions(
    db: Database,
) -> None:
    first = await db.transact(lambda w: w.insert("items", {"name": "a", "status": "todo"}))
    txn, writer = open_txn(db)
    system = writer.system_writer()
    taken = await by_status(system, "todo").claim(10)
    assert [d["_id"] for d in taken] == [first]
    await system.patch(first, {"status": "done"})
    # Work added to the queue meanwhile is the next batch's: no conflict.
    await db.transact(lambda w: w.insert("items", {"name": "b", "status": "todo"}))
    assert await db.committer.commit(txn) > 0

    txn, writer = open_txn(db)
    system = writer.system_writer()
    [second] = await by_status(system, "todo").claim(10)
    await system.patch(second["_id"], {"status": "done"})
    # The item it took, changed by someone else (another worker): a conflict.
    await db.transact(lambda w: w.patch(second["_id"], {"name": "changed"}))
    with pytest.raises(ConflictError):
        await db.committer.commit(txn)

    with pytest.raises(InvalidQueryError, match="pyconvex's own workers"):
        async with db.read() as reader:
            await by_status(reader, "todo").claim(1)
