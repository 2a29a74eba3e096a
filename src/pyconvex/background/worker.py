"""The worker that runs a deployment's background work: one loop over its work queues.

Every kind of background work lives in a table whose rows are their own queue entries:
scheduled functions, recorded webhook events, work pool items, cron jobs. Each table has a
:class:`WorkQueue`; the worker asks each when its next item is due, runs a batch of each one
that is, and sleeps until the soonest of them (a commit that adds work wakes it, in this
process at once and in the others through the store's notifications; otherwise it looks
again every ``POLL_SECONDS``).

The worker is handed what it needs (a :class:`Host`: the database and the current
executor): nothing here imports the deployment that assembles it.

With several processes (``serve --workers``, several hosts) every worker looks at the same
rows. Two that take the same item race on its row: the transaction that takes an item reads
it and moves it on, so the second to commit conflicts, runs again and finds it taken. A
running action is claimed under the worker's *lease*, so that a crashed worker's claims can
be told from a live one's and recovered (:meth:`Worker.sweep_abandoned`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConflictError
from ..functions.context import Auth
from ..functions.logs import Execution, current_execution
from ..tasks import cancel_and_wait

if TYPE_CHECKING:
    from ..database import Database, DatabaseReader, DatabaseWriter
    from ..functions import Executor

POLL_SECONDS = 5.0
CHANNEL = "pyconvex_work"  # notified when background work is added or a slot frees up
QUEUE_BATCH = 64  # items per batch of a queue: one transaction for its mutations
_log = logging.getLogger("pyconvex.scheduler")


class Host(Protocol):
    """What the worker runs on (a deployment): read at each use, since a reload swaps the
    executor."""

    @property
    def database(self) -> Database: ...

    @property
    def executor(self) -> Executor: ...


class WorkQueue(Protocol):
    """Background work kept in its own table, run by the worker in batches."""

    async def next_due(self) -> float | None:
        """When the soonest item this process could run is due (epoch seconds), or None."""

    async def run_due(self, now: float, limit: int) -> int:
        """Run up to ``limit`` items due by ``now`` to their next state; how many ran.
        Actions may go on running after it returns (see :meth:`settle`)."""

    async def recover(self) -> int:
        """Deal with items that a worker which is gone had claimed; how many there were."""

    async def settle(self) -> None:
        """Wait for this process's items in flight (tests: what was due has then run)."""

    async def stop(self) -> None:
        """Cancel this process's items in flight (the server is stopping)."""


class QueueBase:
    """What every work queue has: its worker, and this process's runs in flight (each on a
    task of its own, so a slow one holds up nothing else)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.running: set[asyncio.Task[None]] = set()

    @property
    def database(self) -> Database:
        return self.worker.database

    @property
    def executor(self) -> Executor:
        return self.worker.executor

    def spawn(self, run: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(run)
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def settle(self) -> None:
        """Wait for the runs in flight (tests: all that was due has then run)."""
        while self.running:
            await asyncio.gather(*self.running, return_exceptions=True)

    async def stop(self) -> None:
        await cancel_and_wait(*self.running)

    async def run_nested_mutation(
        self, writer: DatabaseWriter, path: str, args: dict[str, Any], kept: list[Execution]
    ) -> tuple[Any, Exception | None, Execution]:
        """Run the mutation ``path(args)`` in ``writer``'s transaction, as an execution of
        its own (added to ``kept``, to be finished once the transaction ends): (its value,
        what it raised, the execution). A failure undoes only its own writes (a savepoint);
        a conflict is raised, as the whole transaction runs again."""
        executor = self.executor
        execution = executor.execution(path)
        kept.append(execution)
        token = current_execution.set(execution)
        try:
            value = await executor.run_nested(path, args, writer, Auth(), kinds=("mutation",))
        except ConflictError:
            raise
        except Exception as exc:
            return None, exc, execution
        finally:
            current_execution.reset(token)
        return value, None, execution


class Worker:
    """The background worker of one deployment (``deployment.scheduler``)."""

    def __init__(self, host: Host, *, clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.clock = clock
        self._wake = asyncio.Event()
        #: Set while the worker waits for work (tests wait on it, to act on an idle worker).
        self.idle = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self.queues: list[WorkQueue] = []
        #: This process's name on the claims it makes (the name of a lease it holds).
        self.worker_id = "w" + uuid.uuid4().hex[:16]
        self._leased = False
        self._batches: dict[int, asyncio.Task[None]] = {}
        # Queues whose last batch took nothing, and when: items due by then are held back
        # (or the database is away), so they wait for a wake-up or the next poll.
        self._stalled: dict[int, float] = {}
        #: Told how late each due scheduled job starts (seconds past its scheduled time: the
        #: Health metrics' scheduler lag). Must be quick, must not raise.
        self.lag_observers: list[Callable[[float], None]] = []

    @property
    def database(self) -> Database:
        return self.host.database

    @property
    def executor(self) -> Executor:
        return self.host.executor

    # -- claims ----------------------------------------------------------------------------

    async def claimant(self) -> str:
        """This worker's id, for a claim: its lease is held first, so the claim is never
        mistaken for a dead worker's."""
        if not self._leased:
            await self.database.persistence.hold_lease(self.worker_id)
            self._leased = True
        return self.worker_id

    async def abandoned(self, claimed_by: str | None) -> bool:
        """Whether a claim was made by a worker that is gone (crashed, or stopped mid-way)."""
        if claimed_by is None:
            return True  # made before claims were named: only a restart leaves these behind
        if claimed_by == self.worker_id:
            return False
        return not await self.database.persistence.lease_alive(claimed_by)

    async def sweep_abandoned(
        self,
        claimed: Callable[[DatabaseReader], Any],
        mend: Callable[[DatabaseWriter, dict[str, Any]], Awaitable[None]],
    ) -> int:
        """``mend`` each row of the query ``claimed(reader)`` whose claim a dead worker made
        (in one transaction); how many. Looks with a read first: most sweeps find nothing,
        and then take no write lock."""
        async with self.database.read(system=True) as reader:
            rows = await claimed(reader).collect()
        if not any([await self.abandoned(row.get("claimed_by")) for row in rows]):
            return 0

        async def sweep(writer: DatabaseWriter) -> int:
            system = writer.system_writer()
            rows = await claimed(system).collect()
            cut_off = [row for row in rows if await self.abandoned(row.get("claimed_by"))]
            for row in cut_off:
                await mend(system, row)
            return len(cut_off)

        swept: int = await self.database.transact(sweep)
        return swept

    # -- waking ----------------------------------------------------------------------------

    def wake(self) -> None:
        self._stalled.clear()
        self._wake.set()

    def work_added(self, writer: DatabaseWriter) -> None:
        """Wake the workers once ``writer``'s transaction commits: this process's at once, the
        other processes' through the store's notifications (PostgreSQL's NOTIFY)."""
        writer.after_commit(self.wake)
        writer.notify(CHANNEL)

    def observe_lag(self, seconds: float) -> None:
        for observe in self.lag_observers:
            try:
                observe(seconds)
            except Exception:  # an observer's bug must not stop the worker
                _log.exception("A lag observer failed")

    # -- running ---------------------------------------------------------------------------

    async def recover(self) -> int:
        """Items that workers which are gone left claimed (at start-up, then every
        ``POLL_SECONDS``, so a worker that dies is swept up by the ones that live). One
        queue's failure is logged and keeps no other from its sweep."""
        recovered = 0
        for queue in self.queues:
            try:
                recovered += await queue.recover()
            except Exception:
                _log.exception("%s could not sweep up after stopped workers", type(queue).__name__)
        return recovered

    async def next_due(self, *, without: WorkQueue | None = None) -> float | None:
        """When the next item of any queue is due, or None; leaving out the queue
        ``without`` (cron jobs, which come round forever)."""
        times = [await queue.next_due() for queue in self.queues if queue is not without]
        return min((t for t in times if t is not None), default=None)

    async def run_queues(self, now: float, limit: int = QUEUE_BATCH) -> int:
        """Run the queues' items due by ``now``, one batch per queue; how many ran."""
        ran = 0
        for queue in self.queues:
            ran += await queue.run_due(now, limit)
        return ran

    async def settle(self) -> None:
        """Wait for every queue's items in flight."""
        for queue in self.queues:
            await queue.settle()

    # -- the loop --------------------------------------------------------------------------

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._work())

    async def stop(self) -> None:
        task, self._loop_task = self._loop_task, None
        await cancel_and_wait(task)
        await cancel_and_wait(*self._batches.values())
        for queue in self.queues:
            await queue.stop()

    async def _work(self) -> None:
        await self.database.persistence.listen(CHANNEL, self.wake)
        swept: float | None = None
        while True:
            self._wake.clear()
            try:
                if swept is None or time.monotonic() - swept >= POLL_SECONDS:
                    recovered = await self.recover()
                    if recovered:
                        _log.warning("%d background item(s) cut off by a stop recovered", recovered)
                    swept = time.monotonic()
                upcoming = await self._start_batches()
                timeout = POLL_SECONDS
                if upcoming is not None and math.isfinite(upcoming):
                    timeout = min(max(upcoming - self.clock(), 0.0), POLL_SECONDS)
                if timeout > 0:
                    self.idle.set()
                    try:
                        # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a
                        # cancellation (stop()) that lands as the wait ends (a wake-up).
                        async with asyncio.timeout(timeout):
                            await self._wake.wait()
                    finally:
                        self.idle.clear()
            except TimeoutError:
                self._stalled.clear()  # time has passed: what could not run may run now
                continue
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away for a moment: try again shortly
                _log.exception("The scheduler's worker hit an error; retrying")
                await asyncio.sleep(1.0)

    async def _start_batches(self) -> float | None:
        """Start a batch on each idle queue with due items; when the next idle one is due."""
        upcoming: float | None = None
        for number, queue in enumerate(self.queues):
            if number in self._batches:
                continue  # its batch will wake us when it ends
            try:
                due = await queue.next_due()
            except Exception:  # one queue's trouble holds up no other queue
                _log.exception("%s could not say when its next item is due", type(queue).__name__)
                self._stalled[number] = self.clock()
                continue
            if due is None or due <= self._stalled.get(number, -math.inf):
                continue
            now = self.clock()
            if due <= now:
                self._batches[number] = asyncio.create_task(self._batch(number, queue, now))
            else:
                upcoming = due if upcoming is None else min(upcoming, due)
        return upcoming

    async def _batch(self, number: int, queue: WorkQueue, now: float) -> None:
        taken = 0
        try:
            taken = await queue.run_due(now, QUEUE_BATCH)
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("A batch of %s could not be run", type(queue).__name__)
        finally:
            self._batches.pop(number, None)
            if not taken:
                # Due, yet nothing could be taken (the database is away, or the items are
                # held back): not again until something changes, or time passes.
                self._stalled[number] = now
            self._wake.set()
