"""Mutations of an app under concurrency, on SQLite and PostgreSQL: a bank that must not
lose money, and batch neighbours that a failing or hanging mutation must not disturb."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pyconvex.deployment import Deployment
from pyconvex.functions import TimeLimits
from pyconvex.functions.context import Auth

BANK = Path(__file__).parent / "apps" / "bank"
ACCOUNTS = ["alice", "bob", "carol", "dave", "erin"]
START = 1000.0


@pytest.fixture
async def bank(database_url: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    async with Deployment(
        BANK,
        database_url=database_url,
        storage_url=(tmp_path / "files").as_uri(),
        limits=TimeLimits(mutation=0.5),
    ) as deployment:
        for name in ACCOUNTS:
            await deployment.executor.run("bank:open_account", {"name": name, "balance": START})
        yield deployment


async def test_16_clients_transferring_keep_the_sum_apply_each_transfer_once_and_serialize(
    bank: Deployment,
) -> None:
    executor = bank.executor
    rng = random.Random(7)
    committed: dict[str, int] = {}  # transfer id -> commit timestamp

    async def client(number: int) -> None:
        for k in range(12):
            source, target = rng.sample(ACCOUNTS, 2)
            args = {
                "transfer_id": f"{number}-{k}",
                "source": source,
                "target": target,
                "amount": float(rng.randint(1, 400)),
                "pause": rng.choice([0.0, 0.001, 0.005]),  # read, await, then write
            }
            _, ts = await bank.database.transact_at(
                lambda w, args=args: executor.run_nested(
                    "bank:transfer", args, w, Auth(), kinds=("mutation",)
                )
            )
            committed[args["transfer_id"]] = ts

    async with asyncio.timeout(120):
        await asyncio.gather(*(client(n) for n in range(16)))

    balances = await executor.run("bank:balances")
    assert sum(balances.values()) == START * len(ACCOUNTS)  # no money made or lost
    records = await executor.run("bank:transfers")
    # Every transfer was acknowledged and is applied exactly once.
    assert sorted(r["transfer_id"] for r in records) == sorted(committed)
    # Replayed one by one in commit-timestamp order, each saw exactly the balances that the
    # transfers before it left: the history is serial.
    state = dict.fromkeys(ACCOUNTS, START)
    for record in sorted(records, key=lambda r: committed[r["transfer_id"]]):
        assert (state[record["source"]], state[record["target"]]) == (
            record["seen_source"],
            record["seen_target"],
        ), record
        state[record["source"]] -= record["amount"]
        state[record["target"]] += record["amount"]
    assert state == balances
    assert len(set(committed.values())) == len(committed)


async def test_a_failing_and_a_timed_out_mutation_leave_their_30_batch_neighbours_alone(
    bank: Deployment,
) -> None:
    from pyconvex.errors import ConvexError, FunctionTimeoutError

    executor = bank.executor
    begin = bank.database.persistence.begin_write
    batches = 0

    async def counting() -> Any:
        nonlocal batches
        batches += 1
        return await begin()

    bank.database.persistence.begin_write = counting  # type: ignore[method-assign]
    calls = [executor.run("bank:note", {"text": f"n{n}", "tag": "ok"}) for n in range(30)]
    calls.insert(10, executor.run("bank:note_then_fail", {"text": "bad"}))
    calls.insert(20, executor.run("bank:note_then_hang", {"text": "slow"}))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[10], ConvexError)
    assert isinstance(results[20], FunctionTimeoutError)
    assert sum(1 for r in results if isinstance(r, str)) == 30
    assert batches < 30  # the 30 shared commits
    assert len(await executor.run("bank:notes", {"tag": "ok"})) == 30
    assert await executor.run("bank:notes", {"tag": "failed"}) == []
    assert await executor.run("bank:notes", {"tag": "hung"}) == []
