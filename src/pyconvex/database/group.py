"""Group commit: many small transactions committed as one, each answered after that commit.

    recorded = await database.transact_batched(record_event)   # instead of database.transact

While one batch holds the write lock, the transactions that arrive queue up;
the next batch takes all of them. Each runs in a savepoint of the shared
transaction, in arrival order, so one that raises undoes only its own writes
and gets its own exception; the others commit. That is as serializable as
running them one after another (which is what happens, inside one
transaction), and nobody hears "done" before the commit that makes it true.
A commit costs the same for one transaction or fifty, so under load the
per-transaction cost of committing falls with the batch size; with no load a
batch is one transaction and costs what ``transact`` costs.

If the shared transaction loses a race with another process (a conflict),
the whole batch runs again at once, exclusive (alone among writers, so it
cannot conflict again): no one transaction of it was at fault. If it fails
otherwise (a commit error), each transaction of the batch is run again on its
own with ``transact``'s retries, so a bad neighbour never fails a good one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConflictError

if TYPE_CHECKING:
    from . import Database
    from .transaction import DatabaseWriter

MAX_BATCH = 256  # bounds the time one batch holds the write lock

Work = Callable[["DatabaseWriter"], Awaitable[Any]]
_log = logging.getLogger("pyconvex.database")


class GroupCommit:
    """The queue of transactions waiting for the next batch of one :class:`Database`."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._queue: list[tuple[Work, bool, asyncio.Future[Any]]] = []
        self._draining = False

    async def run(self, fn: Work, *, system: bool) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, system, future))
        if not self._draining:
            self._draining = True
            # A task of its own: a caller that goes away must not take the batch with it.
            asyncio.get_running_loop().create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._commit(batch)
        finally:
            self._draining = False

    async def _commit(
        self, batch: list[tuple[Work, bool, asyncio.Future[Any]]], *, exclusive: bool = False
    ) -> None:
        from .transaction import DatabaseWriter

        database = self._database
        outcomes: list[tuple[asyncio.Future[Any], BaseException | None, Any]] = []
        try:
            async with database.write(exclusive=exclusive) as shared:
                txn = shared._txn
                for fn, system, future in batch:
                    writer = DatabaseWriter(database, txn, system=system)
                    try:
                        async with writer.savepoint():
                            outcomes.append((future, None, await fn(writer)))
                    except ConflictError:
                        raise
                    except Exception as exc:
                        outcomes.append((future, exc, None))
        except Exception as exc:
            if isinstance(exc, ConflictError) and not exclusive:
                await self._commit(batch, exclusive=True)
                return
            _log.warning("A group commit failed (%s); retrying its transactions one by one", exc)
            for fn, system, future in batch:
                await self._alone(fn, system, future)
            return
        for future, error, value in outcomes:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    async def _alone(self, fn: Work, system: bool, future: asyncio.Future[Any]) -> None:
        try:
            value = await self._database.transact(fn, system=system)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(value)
