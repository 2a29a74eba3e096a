"""The durable scheduler: ``ctx.scheduler`` and the worker that runs due jobs.

    job_id = await ctx.scheduler.run_after(60, internal.emails.send, {"to": email})
    job_id = await ctx.scheduler.run_at(datetime(2027, 1, 1, tzinfo=UTC), internal.reports.build, {})
    await ctx.scheduler.cancel(job_id)

A job is a row of ``_scheduled_functions``: ``name``, ``args``,
``scheduled_time`` and ``completed_time`` (epoch seconds) and ``state``
(``{"kind": "pending" | "in_progress" | "success" | "failed" | "canceled",
"error": ...}``). From a mutation, scheduling and cancelling are part of its
transaction (nothing is scheduled unless it commits); from an action they
happen at once.

Guarantees, as Convex's:

- a scheduled **mutation** runs exactly once: its writes and its job's
  ``success`` (or ``failed``, with its writes undone) commit together;
- a scheduled **action** runs at most once: its job is marked ``in_progress``
  and committed before it starts, and one found ``in_progress`` at start-up
  (cut off by a crash) is marked ``failed``, never run again.

The worker runs inside the server. A commit that schedules a job wakes it;
otherwise it sleeps until the next job is due (polling every few seconds as
a fallback), and it runs at most ``concurrency`` jobs at a time.

With several processes (``serve --workers``, several hosts), every worker looks
at the same due jobs. Two workers that start the same job race on its row: the
transaction that runs a job reads it and marks it done, so the second of them to
commit conflicts, runs again, finds the job no longer pending and leaves it.
Exactly once rests on the transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from . import ids, values
from .database.system import SCHEDULED_FUNCTIONS
from .errors import ConflictError, FunctionNotFoundError, InvalidValueError
from .functions.context import Auth
from .functions.logs import current_execution
from .tasks import cancel_and_wait

if TYPE_CHECKING:
    from .database import Database, DatabaseReader, DatabaseWriter
    from .deployment import Deployment
    from .functions import Executor, FunctionDefinition

POLL_SECONDS = 5.0
CHANNEL = "pyconvex_work"  # notified when a job or a webhook event is added
CONCURRENCY = 10
QUEUE_BATCH = 64  # items per batch of a WorkQueue: one transaction for its mutations
CUT_OFF = "Transient error while executing action: the server stopped while it was running"
_log = logging.getLogger("pyconvex.scheduler")


def _when(value: datetime | float | int) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"run_at() takes a datetime or epoch seconds, not {type(value).__name__}")
    return float(value)


class Scheduler:
    """Scheduling, cancelling and running jobs for one deployment."""

    def __init__(self, deployment: Deployment, *, clock: Callable[[], float] = time.time) -> None:
        self.deployment = deployment
        self.clock = clock
        self._wake = asyncio.Event()
        #: Set while the worker waits for work (tests wait on it, to act on an idle worker).
        self.idle = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._worker: asyncio.Task[None] | None = None
        # pyconvex's own background work kept in its own tables (webhook events), run by the worker.
        self.queues: list[WorkQueue] = []
        #: This process's name on the claims it makes (the name of a lease it holds).
        self.worker_id = "w" + uuid.uuid4().hex[:16]
        self._leased = False
        self._queue_tasks: dict[int, asyncio.Task[None]] = {}
        #: Told how late each due job starts (seconds past its scheduled time: the Health
        #: metrics' scheduler lag). Must be quick, must not raise.
        self.lag_observers: list[Callable[[float], None]] = []

    @property
    def database(self) -> Database:
        return self.deployment.database

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

    @property
    def executor(self) -> Executor:
        return self.deployment.executor

    # -- scheduling ------------------------------------------------------------------------

    def _target(
        self, ref: Any, args: dict[str, Any] | None
    ) -> tuple[FunctionDefinition, dict[str, Any]]:
        fn = self.executor.resolve(ref)
        if fn.kind == "query":
            raise FunctionNotFoundError(
                f"{fn.path} is a query: only mutations and actions can be scheduled"
            )
        args = {} if args is None else args
        if not isinstance(args, dict):
            raise InvalidValueError(
                f"Scheduled arguments must be a dict, not {type(args).__name__}"
            )
        values.check_value(args, what=f"Arguments scheduled for {fn.path}")
        return fn, args

    async def schedule_in(
        self, writer: DatabaseWriter, when: float, ref: Any, args: dict[str, Any] | None
    ) -> str:
        fn, args = self._target(ref, args)
        job_id = await writer.system_writer().insert(
            SCHEDULED_FUNCTIONS,
            {
                "name": fn.path,
                "args": args,
                "scheduled_time": float(when),
                "state": {"kind": "pending"},
            },
        )
        await self.work_added(writer)
        return job_id

    async def cancel_in(self, writer: DatabaseWriter, job_id: str) -> None:
        if not isinstance(job_id, str) or not ids.is_id_of(job_id, SCHEDULED_FUNCTIONS):
            raise InvalidValueError(
                f"{values.display_value(job_id)} is not a scheduled function id"
            )
        system = writer.system_writer()
        job = await system.get(job_id)
        if job is not None and job["state"]["kind"] == "pending":
            await system.patch(
                job_id, {"state": {"kind": "canceled"}, "completed_time": self.clock()}
            )

    def wake(self) -> None:
        self._wake.set()

    async def work_added(self, writer: DatabaseWriter) -> None:
        """Wake the workers once ``writer``'s transaction commits: this process's at once, the
        other processes' through the store's notifications (PostgreSQL's NOTIFY)."""
        writer.after_commit(self.wake)
        writer.notify(CHANNEL)

    # -- running ---------------------------------------------------------------------------

    async def due(self, now: float, limit: int) -> list[dict[str, Any]]:
        async with self.database.read(system=True) as reader:
            return await _pending(reader, until=now).take(limit)  # type: ignore[no-any-return]

    async def next_time(self, skip: dict[str, Any] | None = None) -> float | None:
        """When the next pending job (not among ``skip``) is due, or None."""
        skip = skip or {}
        async with self.database.read(system=True) as reader:
            jobs = await _pending(reader).take(len(skip) + 1)
        for job in jobs:
            if job["_id"] not in skip:
                return float(job["scheduled_time"])
        return None

    async def run_job(self, job: dict[str, Any]) -> None:
        """Run one due job to its end state (never raises for the job's own failure)."""
        executor = self.executor
        execution = executor.execution(job["name"])
        token = current_execution.set(execution)
        try:
            try:
                fn = executor.resolve(job["name"])
            except FunctionNotFoundError as exc:
                await self._finish(job["_id"], "failed", str(exc), only_from="pending")
                return
            if fn.kind == "mutation":
                await self._run_mutation(job)
            else:
                await self._run_action(job)
        finally:
            current_execution.reset(token)
            execution.finish()

    async def _run_mutation(self, job: dict[str, Any]) -> None:
        executor = self.executor
        job_id = job["_id"]

        async def attempt(writer: DatabaseWriter) -> None:
            system = writer.system_writer()
            current = await system.get(job_id)
            if current is None or current["state"]["kind"] != "pending":
                return  # gone, canceled, or already done by another worker
            state: dict[str, Any] = {"kind": "success"}
            try:
                await executor.run_nested(
                    job["name"], current["args"], writer, Auth(), kinds=("mutation",)
                )
            except ConflictError:
                raise
            except Exception as exc:  # its writes are undone (savepoint); record why
                state = {"kind": "failed", "error": describe_failure(exc)}
                _log.info("Scheduled mutation %s failed: %s", job["name"], exc)
            await system.patch(job_id, {"state": state, "completed_time": self.clock()})

        await self.database.transact(attempt)

    async def _run_action(self, job: dict[str, Any]) -> None:
        job_id = job["_id"]

        worker = await self.claimant()

        async def claim(writer: DatabaseWriter) -> bool:
            """Whether this worker took the job (committed before the action starts)."""
            system = writer.system_writer()
            current = await system.get(job_id)
            if current is None or current["state"]["kind"] != "pending":
                return False
            await system.patch(job_id, {"state": {"kind": "in_progress"}, "claimed_by": worker})
            return True

        if not await self.database.transact(claim):
            return
        try:
            await self.executor.run(job["name"], job["args"], kind="action")
        except Exception as exc:
            await self._finish(job_id, "failed", describe_failure(exc), only_from="in_progress")
            return
        await self._finish(job_id, "success", None, only_from="in_progress")

    async def _finish(self, job_id: str, kind: str, error: str | None, *, only_from: str) -> None:
        state: dict[str, Any] = {"kind": kind} if error is None else {"kind": kind, "error": error}

        async def mark(writer: DatabaseWriter) -> None:
            system = writer.system_writer()
            current = await system.get(job_id)
            if current is not None and current["state"]["kind"] == only_from:
                await system.patch(job_id, {"state": state, "completed_time": self.clock()})

        await self.database.transact(mark)

    async def recover(self) -> int:
        """Mark actions that a crash cut off as failed (they must not run twice).

        Only the claims of workers that are gone: another worker's running action (in
        another process, on another host) is left alone. Runs at start-up and every
        ``POLL_SECONDS`` after, so a worker that dies is swept up by the ones that live.
        """

        async def fail(system: DatabaseWriter, job: dict[str, Any]) -> None:
            await system.patch(
                job["_id"],
                {"state": {"kind": "failed", "error": CUT_OFF}, "completed_time": self.clock()},
            )

        recovered = await self.sweep_abandoned(
            lambda reader: reader.query(SCHEDULED_FUNCTIONS).with_index(
                "by_state", lambda q: q.eq("state.kind", "in_progress")
            ),
            fail,
        )
        for queue in self.queues:
            recovered += await queue.recover()
        return recovered

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

    async def next_due(self, *, without: WorkQueue | None = None) -> float | None:
        """When the next job or queued item (webhook event, say) is due, or None; leaving
        out the queue ``without`` (cron jobs, which come round forever)."""
        times = [await self.next_time()]
        times += [await queue.next_due() for queue in self.queues if queue is not without]
        return min((t for t in times if t is not None), default=None)

    async def run_queues(self, now: float, limit: int = QUEUE_BATCH) -> int:
        """Run the queues' items due by ``now``, one batch per queue; how many ran."""
        ran = 0
        for queue in self.queues:
            ran += await queue.run_due(now, limit)
        return ran

    # -- the worker ------------------------------------------------------------------------

    def start(self, *, concurrency: int = CONCURRENCY) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(concurrency))

    async def stop(self) -> None:
        worker, self._worker = self._worker, None
        await cancel_and_wait(worker)
        await cancel_and_wait(*self._running.values(), *self._queue_tasks.values())
        for queue in self.queues:
            stop = getattr(queue, "stop", None)  # a queue with work of its own in flight
            if stop is not None:
                await stop()

    async def _work(self, concurrency: int) -> None:
        await self.database.persistence.listen(CHANNEL, self.wake)
        recovered = await self.recover()
        if recovered:
            _log.warning(
                "%d scheduled action(s) were cut off by a stop and are marked failed", recovered
            )
        swept = time.monotonic()
        while True:
            self._wake.clear()
            try:
                if time.monotonic() - swept >= POLL_SECONDS:
                    swept = time.monotonic()
                    if await self.recover():
                        _log.warning("Work cut off by a worker that stopped is marked failed")
                await self._start_due(concurrency)
                upcoming = await self._start_queues()
                if len(self._running) < concurrency:
                    next_job = await self.next_time(self._running)
                    if next_job is not None:
                        upcoming = next_job if upcoming is None else min(upcoming, next_job)
                timeout = POLL_SECONDS
                if upcoming is not None:
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
                continue
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away for a moment: try again shortly
                _log.exception("The scheduler's worker hit an error; retrying")
                await asyncio.sleep(1.0)

    async def _start_due(self, concurrency: int) -> None:
        free = concurrency - len(self._running)
        if free <= 0:
            return
        now = self.clock()
        for job in await self.due(now, free + len(self._running)):
            if job["_id"] in self._running:
                continue
            if len(self._running) >= concurrency:
                break
            for observe in self.lag_observers:
                try:
                    observe(now - job["scheduled_time"])
                except Exception:  # an observer's bug must not stop the worker
                    _log.exception("A lag observer failed")
            task = asyncio.create_task(self._guarded(job))
            self._running[job["_id"]] = task

    async def _start_queues(self) -> float | None:
        """Start a batch on each idle queue with due items; when the next idle one is due."""
        upcoming: float | None = None
        for number, queue in enumerate(self.queues):
            if number in self._queue_tasks:
                continue  # its batch will wake us when it ends
            due = await queue.next_due()
            if due is None:
                continue
            now = self.clock()
            if due <= now:
                task = asyncio.create_task(self._guarded_batch(number, queue, now))
                self._queue_tasks[number] = task
            else:
                upcoming = due if upcoming is None else min(upcoming, due)
        return upcoming

    async def _guarded_batch(self, number: int, queue: WorkQueue, now: float) -> None:
        try:
            await queue.run_due(now, QUEUE_BATCH)
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("A batch of %s could not be run", type(queue).__name__)
        finally:
            self._queue_tasks.pop(number, None)
            self.wake()

    async def _guarded(self, job: dict[str, Any]) -> None:
        try:
            await self.run_job(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("Scheduled job %s (%s) could not be run", job["_id"], job["name"])
        finally:
            self._running.pop(job["_id"], None)
            self.wake()


class WorkQueue(Protocol):
    """Background work that lives in its own table (webhook events), run by the worker in batches.

    The rows themselves are the queue: nothing is written to ``_scheduled_functions``
    for them, which halves the writes of recording and finishing each item.
    """

    async def next_due(self) -> float | None:
        """When the soonest item is due (epoch seconds), or None if there is none."""

    async def run_due(self, now: float, limit: int) -> int:
        """Run up to ``limit`` items due by ``now`` to their next state; how many ran."""

    async def recover(self) -> int:
        """At start-up: deal with items a crash cut off; how many there were."""


def _pending(reader: DatabaseReader, until: float | None = None) -> Any:
    """Pending jobs, soonest first (only those due by ``until``, if given)."""

    def bounds(q: Any) -> Any:
        q = q.eq("state.kind", "pending")
        return q if until is None else q.lte("scheduled_time", until)

    return reader.query(SCHEDULED_FUNCTIONS).with_index("by_state", bounds)


def describe_failure(exc: BaseException) -> str:
    """``"ValueError: msg"`` for a job's ``error``, cut at 2,000 characters so that a huge
    message can never push the job's row past the document size limit."""
    text = str(exc)
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:2000]


class SchedulerApi:
    """``ctx.scheduler``. In a mutation, part of its transaction; in an action, immediate."""

    _sync_facade = True

    def __init__(self, scheduler: Scheduler, writer: DatabaseWriter | None) -> None:
        self._scheduler = scheduler
        self._writer = writer

    async def _in_transaction(self, fn: Callable[[DatabaseWriter], Any]) -> Any:
        if self._writer is not None:
            return await fn(self._writer)
        return await self._scheduler.database.transact(fn)

    async def run_after(self, seconds: float, ref: Any, args: dict[str, Any] | None = None) -> str:
        """Run ``ref(args)`` ``seconds`` from now; returns the job id."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds != seconds:
            raise TypeError(f"run_after() takes a number of seconds, not {seconds!r}")
        when = self._scheduler.clock() + max(float(seconds), 0.0)
        job_id: str = await self._in_transaction(
            lambda w: self._scheduler.schedule_in(w, when, ref, args)
        )
        return job_id

    async def run_at(
        self, when: datetime | float, ref: Any, args: dict[str, Any] | None = None
    ) -> str:
        """Run ``ref(args)`` at ``when`` (a datetime or epoch seconds); returns the job id."""
        at = _when(when)
        job_id: str = await self._in_transaction(
            lambda w: self._scheduler.schedule_in(w, at, ref, args)
        )
        return job_id

    async def cancel(self, job_id: str) -> None:
        """Cancel a job that has not started (a running or finished job is left alone)."""
        await self._in_transaction(lambda w: self._scheduler.cancel_in(w, job_id))
