"""The one machinery of background work: items that run a function, with retries.

Scheduled functions, webhook events and work pool items are each a table whose rows are
their own queue entries; an :class:`ItemQueue` runs one such table for the worker:

- the items due are taken in one transaction (a batch). A **mutation** item runs inside it,
  in a savepoint: its writes and its item's outcome commit together, exactly once, and one
  that raises has its writes undone and its failure recorded while the others commit;
- an **action** item is claimed in that transaction (under the worker's lease) and runs
  after it commits, on its own task, so a slow one holds up nothing else; its outcome is
  recorded in a transaction of its own. One cut off by a crash is found by a live worker
  (:meth:`ItemQueue.recover`) and dealt with as the table says (failed, or tried again);
- what a failure leads to is the item's :class:`RetryPolicy`: another attempt after an
  exponential backoff scaled by a random 0.5-1.5 (so failing items do not retry in
  lockstep), until ``max_attempts``, unless the function raised
  :class:`~pyconvex.errors.NonRetryableError`.

Every failed attempt is logged, with the item and the traceback, to the Python log and to
the deployment's logs (``pyconvex logs``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import (
    ConflictError,
    FunctionNotFoundError,
    NonRetryableError,
    StoreUnavailableError,
)
from ..functions.logs import Execution, LogLine
from .worker import QueueBase

if TYPE_CHECKING:
    from ..database import DatabaseReader, DatabaseWriter

CONCURRENCY = 10  # action items of one queue that one process runs at once
# Errors that may pass if the outcome is written again a moment later.
TRANSIENT = (StoreUnavailableError, ConflictError, OSError)
PURGE_BATCH = 500  # finished rows deleted per transaction
# A batch takes no more items once its mutations have run this long: the rest go in the
# next one. One transaction then never runs for long (64 slow mutations would), so it
# conflicts little, and a retry that runs exclusive holds other writers back briefly.
BATCH_SECONDS = 0.1
# What an action cut off by the end of the worker running it failed with (Convex's words).
CUT_OFF = "Transient error while executing action: the worker running it stopped"
_log = logging.getLogger("pyconvex.scheduler")


def describe_failure(exc: BaseException) -> str:
    """``"ValueError: msg"`` for an item's recorded error, cut at 2,000 characters so that a
    huge message can never push the row past the document size limit."""
    text = str(exc)
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:2000]


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how far apart, a failing item is tried.

    Attempt ``n + 1`` follows failed attempt ``n`` after ``initial_backoff * base ** (n - 1)``
    seconds (at most ``max_backoff``) times a random factor between 0.5 and 1.5.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.25
    base: float = 2.0
    max_backoff: float = 3600.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError(f"max_attempts must be an int, not {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        for name, least in (("initial_backoff", 0.0), ("base", 1.0), ("max_backoff", 0.0)):
            number = getattr(self, name)
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                raise TypeError(f"{name} must be a number of seconds, not {number!r}")
            if not least <= number < float("inf"):
                raise ValueError(f"{name} must be a finite number of at least {least}")

    @classmethod
    def of(cls, given: Mapping[str, Any] | RetryPolicy) -> RetryPolicy:
        """A policy from a dict such as ``{"max_attempts": 5, "initial_backoff": 0.25,
        "base": 2}`` (any key left out keeps its default)."""
        if isinstance(given, RetryPolicy):
            return given
        if not isinstance(given, Mapping):
            raise TypeError(f"retry must be a dict or True/False, not {type(given).__name__}")
        unknown = set(given) - {"max_attempts", "initial_backoff", "base", "max_backoff"}
        if unknown:
            raise ValueError(f"Unknown retry setting(s): {', '.join(sorted(unknown))}")
        return cls(**given)

    def as_value(self) -> dict[str, Any]:
        """The policy as stored on an item's row."""
        return {
            "max_attempts": self.max_attempts,
            "initial_backoff": float(self.initial_backoff),
            "base": float(self.base),
            "max_backoff": float(self.max_backoff),
        }

    def delay(self, attempt: int) -> float:
        """Seconds between failed attempt ``attempt`` (1-based) and the next."""
        try:
            backoff = self.initial_backoff * self.base ** (attempt - 1)
        except OverflowError:
            backoff = self.max_backoff
        return float(min(backoff, self.max_backoff) * (0.5 + random.random()))

    def retry_after(self, attempts: int, error: BaseException) -> float | None:
        """Seconds until the next attempt after ``attempts`` attempts, the last of which
        raised ``error``; None if there is to be no other."""
        # A function that is not there (the code changed) is not mended by waiting either.
        final = isinstance(error, (NonRetryableError, FunctionNotFoundError))
        if final or attempts >= self.max_attempts:
            return None
        return self.delay(attempts)


NO_RETRY = RetryPolicy(max_attempts=1)


class Outcome(NamedTuple):
    """How one attempt ended: its return value, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None


def _bare(outcome: Outcome) -> Outcome:
    """``outcome`` without what may not fit in a row: the value, the long message."""
    if outcome.error is None:
        return Outcome()
    kind = NonRetryableError if isinstance(outcome.error, NonRetryableError) else RuntimeError
    return Outcome(error=kind(describe_failure(outcome.error)[:500]))


@dataclass
class _Batch:
    """What one batch keeps while its transaction runs (cleared when it runs again)."""

    worker: str
    now: float
    executions: list[Execution] = field(default_factory=list)
    failures: list[tuple[dict[str, Any], BaseException]] = field(default_factory=list)
    claimed: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)  # row, args
    lags: list[float] = field(default_factory=list)

    def clear(self) -> None:
        for kept in (self.executions, self.failures, self.claimed, self.lags):
            kept.clear()


class ItemQueue(QueueBase, ABC):
    """A :class:`~pyconvex.background.worker.WorkQueue` over a table of items that each run a
    function. Subclasses say where the items are and what an outcome writes."""

    #: Action items this process runs at once (more wait for a free slot).
    max_running = CONCURRENCY
    #: Whether how late items start is the scheduler lag of the Health metrics.
    observes_lag = False
    #: Whether action items are claimed and run (else every item runs as a mutation).
    runs_actions = True

    # -- what a table says -----------------------------------------------------------------

    @abstractmethod
    def pending(self, reader: DatabaseReader, until: float | None = None) -> Any:
        """The query of items waiting to run (due by ``until``, if given), soonest first."""

    # The next four are for queues that run actions (``runs_actions``): claimed under the
    # worker's lease, recorded after, recovered when the worker is gone.

    def in_flight(self, reader: DatabaseReader) -> Any:
        """The query of items whose action a worker has claimed."""
        raise NotImplementedError

    @abstractmethod
    def due_time(self, row: dict[str, Any]) -> float:
        """When ``row`` is due."""

    @abstractmethod
    def function(self, row: dict[str, Any]) -> str:
        """The function ``row`` runs."""

    @abstractmethod
    async def arguments(self, row: dict[str, Any]) -> dict[str, Any]:
        """The arguments ``row``'s function gets."""

    async def claim(self, system: DatabaseWriter, row: dict[str, Any], worker: str) -> None:
        """Mark ``row``'s action as running under ``worker``, its attempt counted."""
        raise NotImplementedError

    def claimed_by(self, row: dict[str, Any], worker: str) -> bool:
        """Whether ``row`` (as read now) is still running under ``worker``'s claim."""
        raise NotImplementedError

    @abstractmethod
    async def finish(
        self, system: DatabaseWriter, row: dict[str, Any], outcome: Outcome, *, claimed: bool
    ) -> None:
        """Record an attempt's ``outcome`` on ``row`` (as read now): success, a retry later, or
        a final failure. ``claimed``: the attempt was counted when its action was claimed."""

    #: What an attempt cut off by its worker's end is recorded as having failed with.
    cut_off_error = CUT_OFF

    async def cut_off(self, system: DatabaseWriter, row: dict[str, Any]) -> None:
        """Deal with ``row``, whose action a worker that is gone had claimed: by default, a
        failed attempt, retried as the item's policy says."""
        error = RuntimeError(self.cut_off_error)
        await self.finish(system, row, Outcome(error=error), claimed=True)

    def label(self, row: dict[str, Any]) -> str:
        """How logs name ``row``."""
        return f"{self.function(row)} ({row['_id']})"

    @abstractmethod
    def is_pending(self, row: dict[str, Any]) -> bool:
        """Whether ``row`` (as read now) still waits to run: not canceled, not taken."""

    async def gates(self, reader: DatabaseReader) -> Any:
        """What :meth:`admit` needs to know, read once per batch in its transaction."""
        return None

    async def admit(self, system: DatabaseWriter, row: dict[str, Any], gates: Any) -> bool:
        """Whether the due ``row`` may run now (a work pool refuses one over its
        parallelism); a row admitted counts in ``gates`` for the next."""
        return True

    # -- the work queue --------------------------------------------------------------------

    async def next_due(self) -> float | None:
        if len(self.running) >= self.max_running:
            return None  # the end of a run wakes the worker
        async with self.database.read(system=True) as reader:
            row = await self.pending(reader).first()
        return None if row is None else self.due_time(row)

    async def run_due(self, now: float, limit: int) -> int:
        """Take the items due by ``now`` (at most ``limit``): run the mutations in this
        transaction, claim the actions in it and start them once it commits; how many
        items were taken."""
        worker = await self.worker.claimant()
        free = self.max_running - len(self.running)
        batch = _Batch(worker, now)

        lanes = await self.lanes()  # read before the batch: see lanes()
        if lanes == []:
            return 0  # nothing waits in any lane: no transaction

        async def attempt(writer: DatabaseWriter) -> int:
            batch.clear()  # a batch that conflicted starts over (its logs too)
            system = writer.system_writer()
            gates = await self.gates(system)
            taken = 0
            began = time.monotonic()

            def full() -> bool:
                return taken >= limit or bool(taken and time.monotonic() - began > BATCH_SECONDS)

            async for rows in self.candidates(system, now, limit, lanes):
                for due in rows:
                    if full():
                        break
                    verdict = await self._take(writer, batch, due, gates, free)
                    if verdict is None and lanes is not None:
                        break  # this lane is held back: the rest of it too
                    taken += verdict is True
                if full():
                    break
            return taken

        try:
            taken: int = await self.database.transact(attempt)
        finally:
            for execution in batch.executions:
                execution.finish()
        if self.observes_lag:
            for lag in batch.lags:
                self.worker.observe_lag(lag)
        for row, error in batch.failures:
            _log.warning(
                "%s failed", self.label(row), exc_info=(type(error), error, error.__traceback__)
            )
        for row, args in batch.claimed:
            self.spawn(self._run_action(row, args, worker))
        return taken

    async def lanes(self) -> list[dict[str, Any]] | None:
        """The next item of each lane (a webhook endpoint, a pool) when the queue's items
        are held back lane by lane (:class:`~.lanes.LanedQueue`); None: one lane."""
        return None

    async def candidates(
        self,
        system: DatabaseWriter,
        now: float,
        limit: int,
        lanes: list[dict[str, Any]] | None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The due items a batch looks at, a lane at a time. ``claim``: the batch's read set
        holds the items it took, not the range around them, so work added meanwhile is no
        conflict."""
        yield await self.pending(system, now).claim(limit)

    async def _take(
        self, writer: DatabaseWriter, batch: _Batch, due: dict[str, Any], gates: Any, free: int
    ) -> bool | None:
        """Run (a mutation) or claim (an action) the due item ``due`` in the batch's
        transaction: True; False if it is no longer pending; None if it must wait (its
        gates are shut, or every action slot is taken)."""
        system = writer.system_writer()
        row: dict[str, Any] | None = due
        if writer.wrote(due["_id"]):  # an item run earlier in this batch changed it (canceled)
            row = await system.get(due["_id"])
        if row is None or not self.is_pending(row):
            return False
        path = self.function(row)
        try:
            fn = self.executor.resolve(path)
        except Exception as exc:  # the code changed under it (not retried)
            return await self._fail_at_once(system, batch, row, path, exc)
        is_action = fn.kind == "action" and self.runs_actions
        if is_action and len(batch.claimed) >= free:
            return None
        if not await self.admit(system, row, gates):
            return None
        try:
            # Once, here: an action gets them from the batch (a webhook's payload is parsed
            # from its body, a large one read from file storage).
            args = await self.arguments(row)
        except Exception as exc:  # its input is gone (a large body deleted by hand)
            return await self._fail_at_once(system, batch, row, path, exc)
        if is_action:
            await self.claim(system, row, batch.worker)
            batch.claimed.append((row, args))
        else:
            outcome = await self._run_nested(writer, row, path, args, batch.executions)
            if outcome.error is not None:
                batch.failures.append((row, outcome.error))
            await self.finish(system, row, outcome, claimed=False)
        batch.lags.append(batch.now - self.due_time(row))
        return True

    async def _fail_at_once(
        self,
        system: DatabaseWriter,
        batch: _Batch,
        row: dict[str, Any],
        path: str,
        exc: Exception,
    ) -> bool:
        """Record that ``row`` could not even start: its failure, logged."""
        execution = self.executor.execution(path)
        batch.executions.append(execution)
        batch.failures.append((row, exc))
        self._failed(execution, row, exc)
        await self.finish(system, row, Outcome(error=exc), claimed=False)
        return True

    async def _run_nested(
        self,
        writer: DatabaseWriter,
        row: dict[str, Any],
        path: str,
        args: dict[str, Any],
        kept: list[Execution],
    ) -> Outcome:
        value, error, execution = await self.run_nested_mutation(writer, path, args, kept)
        if error is not None:
            self._failed(execution, row, error)
            return Outcome(error=error)
        return Outcome(value)

    async def _run_action(self, row: dict[str, Any], args: dict[str, Any], worker: str) -> None:
        path = self.function(row)
        executor = self.executor
        try:
            with executor.executing(path) as execution:
                try:
                    outcome = Outcome(await executor.run(path, args, kind="action"))
                except Exception as exc:
                    outcome = Outcome(error=exc)
                    self._failed(execution, row, exc)
                    _log.warning(
                        "%s failed", self.label(row), exc_info=(type(exc), exc, exc.__traceback__)
                    )

            async def record(writer: DatabaseWriter, outcome: Outcome) -> None:
                system = writer.system_writer()
                current = await system.get(row["_id"])
                if current is not None and self.claimed_by(current, worker):
                    await self.finish(system, current, outcome, claimed=True)

            await self._until_recorded(record, outcome, row)
        finally:
            self.worker.wake()

    async def _until_recorded(
        self, record: Callable[..., Awaitable[None]], outcome: Outcome, row: Any
    ) -> None:
        """Commit an action's outcome, trying again while the database is away: given up,
        the row would stay claimed by this live worker, which no sweep recovers. An outcome
        that cannot be written at all (a row grown past the document limit) is recorded as
        its bare success or failure instead."""
        pause = 0.1
        bare = False
        while True:
            try:
                await self.database.transact(functools.partial(record, outcome=outcome))
                return
            except TRANSIENT:
                _log.exception("The outcome of %s could not be recorded; retrying", self.label(row))
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
            except Exception:
                if bare:  # the claim stays until this process ends; then it is recovered
                    _log.exception("The outcome of %s cannot be recorded", self.label(row))
                    return
                _log.exception("The outcome of %s cannot be recorded as it is", self.label(row))
                bare = True
                outcome = _bare(outcome)

    def _failed(self, execution: Execution, row: dict[str, Any], error: BaseException) -> None:
        """The failure in the deployment's logs (``pyconvex logs``), with its traceback."""
        trace = "".join(traceback.format_exception(error)).rstrip()
        execution.add("ERROR", f"{self.label(row)} failed:\n{trace}")

    async def recover(self) -> int:
        if not self.runs_actions:
            return 0  # nothing of it is ever claimed
        return await self.worker.sweep_abandoned(self.in_flight, self._cut_off)

    async def _cut_off(self, system: DatabaseWriter, row: dict[str, Any]) -> None:
        message = f"{self.label(row)} was cut off: the worker running it stopped"
        _log.warning(message)
        sink = self.executor.log_sink
        if sink is not None:
            line = LogLine(time.time(), "ERROR", message, self.function(row), "background")
            system.after_commit(lambda: sink([line]))
        await self.cut_off(system, row)

    async def purge(
        self,
        expired: Callable[[DatabaseReader], Any],
        also: Callable[[DatabaseWriter, dict[str, Any]], Awaitable[None]] | None = None,
    ) -> int:
        """Delete up to ``PURGE_BATCH`` rows of the query ``expired(reader)`` (and ``also``
        what each leaves behind) in one transaction; how many. Looks with a read first: most
        sweeps find nothing, and then take no write lock."""
        async with self.database.read(system=True) as reader:
            if await expired(reader).first() is None:
                return 0

        async def purge(writer: DatabaseWriter) -> int:
            system = writer.system_writer()
            rows = await expired(system).take(PURGE_BATCH)
            for row in rows:
                await system.delete(row["_id"])
                if also is not None:
                    await also(writer, row)
            return len(rows)

        purged: int = await self.database.transact(purge)
        return purged
