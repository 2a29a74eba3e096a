"""Group commit: transactions queued together share one commit and keep their own outcomes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pyconvex.database import Database, DatabaseWriter


async def test_concurrent_transactions_share_commits_and_keep_their_results(db: Database) -> None:
    commits = 0
    persistence = db.persistence
    begin = persistence.begin_write

    async def counting_begin(*, exclusive: bool = False) -> Any:
        nonlocal commits
        commits += 1
        return await begin(exclusive=exclusive)

    persistence.begin_write = counting_begin  # type: ignore[method-assign]

    async def insert(n: int) -> Any:
        return await db.transact_batched(lambda w: w.insert("items", {"name": f"item {n}"}))

    ids = await asyncio.gather(*(insert(n) for n in range(50)))
    assert len(set(ids)) == 50
    assert commits < 50  # they were grouped (the first alone, the rest together)
    async with db.read() as reader:
        names = sorted(doc["name"] for doc in await reader.query("items").collect())
    assert names == sorted(f"item {n}" for n in range(50))


async def test_a_failing_transaction_undoes_only_its_own_writes(db: Database) -> None:
    async def good(w: DatabaseWriter) -> str:
        return await w.insert("items", {"name": "good"})

    async def bad(w: DatabaseWriter) -> None:
        await w.insert("items", {"name": "bad"})
        raise ValueError("nope")

    results = await asyncio.gather(
        db.transact_batched(good), db.transact_batched(bad), db.transact_batched(good),
        return_exceptions=True,
    )  # fmt: skip
    assert isinstance(results[1], ValueError) and str(results[1]) == "nope"
    async with db.read() as reader:
        names = [doc["name"] for doc in await reader.query("items").collect()]
    assert names == ["good", "good"]


async def test_later_transactions_in_a_batch_see_earlier_ones(db: Database) -> None:
    """What makes deduplication inside one batch work: it is serial inside the transaction."""

    async def insert_once(w: DatabaseWriter) -> bool:
        found = (
            await w.query("items").with_index("by_status", lambda q: q.eq("status", "x")).first()
        )
        if found is not None:
            return False
        await w.insert("items", {"name": "once", "status": "x"})
        return True

    results = await asyncio.gather(*(db.transact_batched(insert_once) for _ in range(10)))
    assert results.count(True) == 1


def _first_commit_fails(db: Database, error: Exception) -> list[bool]:
    """Make the first write transaction's commit raise ``error``; the exclusive flag of
    every write transaction begun is recorded in the list returned."""
    persistence = db.persistence
    begin = persistence.begin_write
    begun: list[bool] = []

    async def failing_once(*, exclusive: bool = False) -> Any:
        txn = await begin(exclusive=exclusive)
        begun.append(exclusive)
        if len(begun) == 1:

            async def commit() -> None:
                await txn.close()
                raise error

            txn.commit = commit  # type: ignore[method-assign]
        return txn

    persistence.begin_write = failing_once  # type: ignore[method-assign]
    return begun


async def _insert_five_together(db: Database) -> None:
    # Queued in one go, before the batch's task first runs: they form one batch.
    ids = await asyncio.gather(
        *(db.transact_batched(lambda w, n=n: w.insert("items", {"name": str(n)})) for n in range(5))
    )
    assert len(set(ids)) == 5
    async with db.read() as reader:
        assert len(await reader.query("items").collect()) == 5  # the failed batch left nothing


async def test_a_batch_that_loses_a_race_runs_again_whole_and_exclusive(db: Database) -> None:
    from pyconvex.errors import ConflictError

    begun = _first_commit_fails(db, ConflictError("simulated"))
    await _insert_five_together(db)
    assert begun == [False, True]  # the batch, then the batch again, alone


async def test_a_batch_whose_commit_fails_otherwise_retries_each_on_its_own(
    db: Database,
) -> None:
    begun = _first_commit_fails(db, RuntimeError("simulated"))
    await _insert_five_together(db)
    assert begun == [False] * 6  # the batch, then each of the five on its own


@pytest.mark.parametrize("n", [1, 300])
async def test_batches_of_any_size(db: Database, n: int) -> None:
    ids = await asyncio.gather(
        *(db.transact_batched(lambda w: w.insert("items", {"name": "x"})) for _ in range(n))
    )
    assert len(set(ids)) == n
