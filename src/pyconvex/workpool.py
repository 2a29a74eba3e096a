"""Work pools: background work with bounded parallelism, retries and a completion callback.

    from pyconvex.workpool import Workpool, NonRetryableError

    emails = Workpool("emails", max_parallelism=10,
                      retry={"max_attempts": 5, "initial_backoff": 0.25, "base": 2})

    @mutation
    async def sign_up(ctx, args):
        user = await ctx.db.insert("users", {"email": args["email"]})
        await emails.enqueue_action(ctx, internal.emails.welcome, {"user": user},
                                    on_complete=internal.emails.sent, context={"user": user})

What Convex's ``@convex-dev/workpool`` does, in Python:

- ``enqueue_action`` / ``enqueue_mutation`` from a mutation add the work in the mutation's
  transaction (nothing is enqueued unless it commits); from an action, at once.
- At most ``max_parallelism`` items of the pool run at once, across every process.
- A failed action is retried after ``initial_backoff * base ** (attempt - 1)`` seconds times
  a random 0.5-1.5, until ``max_attempts`` attempts, unless it raised
  :class:`NonRetryableError`. A mutation is not retried: it is transactional, and its
  failure is its answer.
- ``on_complete`` (a mutation) gets ``{"work_id", "context", "result"}`` once, in a
  transaction of its own, with ``result`` one of ``{"kind": "success", "return_value"}``,
  ``{"kind": "failed", "error"}``, ``{"kind": "canceled"}``.
- ``status`` is ``{"state": "pending" | "running" | "finished", "previous_attempts": n}``,
  kept for a day after the work finished (then ``finished`` with 0 attempts, as Convex's).
- ``cancel`` / ``cancel_all`` stop work that has not started, and retries; work already
  running goes on to its end, and is reported ``canceled`` unless it succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import ids, values
from .background.items import NO_RETRY, RetryPolicy
from .background.pools import MAX_PARALLELISM, conclude, of_pool
from .database.system import WORKPOOL_WORK
from .errors import InvalidValueError, NonRetryableError
from .functions.context import in_system_transaction
from .functions.scheduling import finite_seconds

__all__ = ["DEFAULT_RETRY", "NonRetryableError", "Workpool"]

#: Convex's default retry behaviour: five attempts, 0.25 s before the second, doubling.
DEFAULT_RETRY = RetryPolicy(max_attempts=5, initial_backoff=0.25, base=2.0)


def _policy(retry: Mapping[str, Any] | RetryPolicy | bool | None) -> RetryPolicy:
    if retry is True:
        return DEFAULT_RETRY
    if retry is False or retry is None:
        return NO_RETRY
    return RetryPolicy.of(retry)


class Workpool:
    """A named pool of background work (its items live in ``_workpool_work``).

        pool = Workpool("emails", max_parallelism=10, retry={"max_attempts": 3})
        work_id = await pool.enqueue_action(ctx, internal.emails.send, {"to": address})

    ``retry`` is a dict of ``max_attempts``, ``initial_backoff`` (seconds) and ``base``,
    ``True`` for :data:`DEFAULT_RETRY`, or ``False`` (the default, as Convex's
    ``retryActionsByDefault``) for a single attempt.
    """

    def __init__(
        self,
        name: str,
        *,
        max_parallelism: int = 10,
        retry: Mapping[str, Any] | RetryPolicy | bool = False,
    ) -> None:
        if not isinstance(name, str) or not name or not name.isprintable():
            raise ValueError(f"A work pool's name must be a printable string, not {name!r}")
        if isinstance(max_parallelism, bool) or not isinstance(max_parallelism, int):
            raise TypeError(f"max_parallelism must be an int, not {max_parallelism!r}")
        if not 1 <= max_parallelism <= MAX_PARALLELISM:
            raise ValueError(f"max_parallelism must be between 1 and {MAX_PARALLELISM}")
        self.name = name
        self.max_parallelism = max_parallelism
        self.retry = _policy(retry)

    def __repr__(self) -> str:
        return f"Workpool({self.name!r}, max_parallelism={self.max_parallelism})"

    async def enqueue_action(
        self,
        ctx: Any,
        ref: Any,
        args: dict[str, Any] | None = None,
        *,
        on_complete: Any = None,
        context: Any = None,
        retry: Mapping[str, Any] | RetryPolicy | bool | None = None,
        run_after: float = 0.0,
    ) -> str:
        """Run the action ``ref(args)`` in this pool, retried per ``retry`` (the pool's if
        None); its work id.

            work_id = await pool.enqueue_action(ctx, internal.sync.pull, {"page": 1})
        """
        policy = self.retry if retry is None else _policy(retry)
        return await self._enqueue(
            ctx, ref, args, "action", on_complete, context, policy, run_after
        )

    async def enqueue_mutation(
        self,
        ctx: Any,
        ref: Any,
        args: dict[str, Any] | None = None,
        *,
        on_complete: Any = None,
        context: Any = None,
        run_after: float = 0.0,
    ) -> str:
        """Run the mutation ``ref(args)`` in this pool (not retried); its work id.

        work_id = await pool.enqueue_mutation(ctx, internal.counters.bump, {"by": 1})
        """
        return await self._enqueue(
            ctx, ref, args, "mutation", on_complete, context, NO_RETRY, run_after
        )

    async def _enqueue(
        self,
        ctx: Any,
        ref: Any,
        args: dict[str, Any] | None,
        kind: str,
        on_complete: Any,
        context: Any,
        policy: RetryPolicy,
        run_after: float,
    ) -> str:
        executor = ctx._executor
        fn = executor.resolve(ref)
        if fn.kind != kind:
            raise InvalidValueError(f"{fn.path} is a {fn.kind}: enqueue_{kind} takes a {kind}")
        args = {} if args is None else args
        if not isinstance(args, dict):
            raise InvalidValueError(f"Arguments for {fn.path} must be a dict, not {type(args)}")
        values.check_value(args, what=f"Arguments enqueued for {fn.path}")
        values.check_value(context, what="A work pool's context")
        delay = finite_seconds(run_after, "run_after")
        fields: dict[str, Any] = {
            "pool": self.name,
            "function": fn.path,
            "args": args,
            "status": "pending",
            "attempts": 0,
            "max_parallelism": self.max_parallelism,
            "context": context,
        }
        if on_complete is not None:
            done = executor.resolve(on_complete)
            if done.kind != "mutation":
                raise InvalidValueError(f"on_complete must be a mutation; {done.path} is not")
            fields["on_complete"] = done.path
        if policy.max_attempts > 1:
            fields["retry"] = policy.as_value()
        jobs = executor.scheduler

        async def add(system: Any) -> str:
            fields["next_attempt_at"] = jobs.clock() + max(delay, 0.0)
            work_id: str = await system.insert(WORKPOOL_WORK, fields)
            jobs.work_added(system)
            return work_id

        work_id: str = await in_system_transaction(ctx, add, what="Enqueueing work")
        return work_id

    async def status(self, ctx: Any, work_id: str) -> dict[str, Any]:
        """``{"state": "pending" | "running" | "finished", "previous_attempts": n}``.

        if (await pool.status(ctx, work_id))["state"] == "finished": ...
        """
        _check_id(work_id)

        async def read(db: Any) -> dict[str, Any]:
            row = await db.get(work_id)
            if row is None or row["pool"] != self.name:
                return {"state": "finished", "previous_attempts": 0}
            state, attempts = row["status"], int(row["attempts"])
            if state == "running":
                return {"state": "running", "previous_attempts": attempts - 1}
            if state == "pending":
                return {"state": "pending", "previous_attempts": attempts}
            return {"state": "finished", "previous_attempts": attempts}

        found: dict[str, Any] = await in_system_transaction(ctx, read, write=False)
        return found

    async def cancel(self, ctx: Any, work_id: str) -> None:
        """Cancel work that has not finished: one not started never runs (its on_complete
        gets ``{"kind": "canceled"}``); one running is not retried.

            await pool.cancel(ctx, work_id)
        """
        _check_id(work_id)

        async def cancel(system: Any) -> None:
            row = await system.get(work_id)
            if row is not None and row["pool"] == self.name:
                await _cancel(ctx, system, row)

        await in_system_transaction(ctx, cancel, what="Canceling work")

    async def cancel_all(self, ctx: Any) -> int:
        """Cancel every item of this pool that has not finished; how many.

        await pool.cancel_all(ctx)
        """

        async def cancel(system: Any) -> int:
            rows = await of_pool(system, self.name, "pending").collect()
            rows += await of_pool(system, self.name, "running").collect()
            for row in rows:
                await _cancel(ctx, system, row)
            return len(rows)

        count: int = await in_system_transaction(ctx, cancel, what="Canceling work")
        return count


async def _cancel(ctx: Any, system: Any, row: dict[str, Any]) -> None:
    if row["status"] == "pending":
        now = ctx._executor.scheduler.clock()
        await conclude(system, row, {"kind": "canceled"}, now)
        ctx._executor.scheduler.work_added(system)  # its on_complete is due
    elif row["status"] == "running":
        await system.patch(row["_id"], {"canceled": True})


def _check_id(work_id: Any) -> None:
    if not isinstance(work_id, str) or not ids.is_id_of(work_id, WORKPOOL_WORK):
        raise InvalidValueError(f"{values.display_value(work_id)} is not a work id")
