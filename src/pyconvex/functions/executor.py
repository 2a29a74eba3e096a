"""Running functions: resolve, validate, open the right transaction, enforce limits.

One executor serves a loaded app over one database. It is the only place
that knows how each kind runs:

- a query reads one snapshot;
- a mutation runs in a serializable transaction, retried from the top when it
  conflicts, and commits only if the handler returns;
- an action runs outside any transaction.

Handler time is limited (1 s for queries and mutations, 10 minutes for
actions by default). A plain ``def`` handler runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from .. import values
from ..database.documents import DatabaseWriter
from ..database.readset import ReadSet
from ..database.system import SESSION_REQUESTS
from ..errors import (
    ArgumentValidationError,
    FunctionNotFoundError,
    FunctionTimeoutError,
    InvalidValueError,
    ReturnsValidationError,
    ValidationError,
)
from .context import ActionCtx, Auth, MutationCtx, QueryCtx
from .deadlines import Deadlines
from .define import FunctionDefinition, Kind
from .facade import SyncFacade
from .logs import Execution, LogLine, Sink, current_execution, current_function, new_request_id
from .refs import function_path
from .registry import App

if TYPE_CHECKING:
    from ..database import Database, DatabaseReader
    from ..env import EnvStore
    from ..storage import FileStorage
    from .scheduling import JobScheduler


@dataclass(slots=True)
class QueryRun:
    """A query run for a subscription: its outcome, its log lines, what it read (so that
    one can tell which commits change its result) and where its paginated read ended."""

    value: Any
    error: Exception | None
    log_lines: list[str]
    reads: ReadSet
    journal: str | None


@dataclass(slots=True)
class MutationRun:
    """A mutation run for a client session: its outcome, log lines and commit timestamp."""

    value: Any
    error: Exception | None
    log_lines: list[str]
    ts: int


@dataclass(frozen=True)
class TimeLimits:
    """Seconds of handler time per kind (Convex: 1 s for queries and mutations, 10 min for
    actions and HTTP actions)."""

    query: float = 1.0
    mutation: float = 1.0
    action: float = 600.0
    http_action: float = 600.0

    def of(self, kind: Kind) -> float:
        return float(getattr(self, kind))


#: Told of each function call that ran: its definition, its seconds (transaction and commit
#: included), and the exception it ended with (None if it succeeded). Must be quick, must not
#: raise. Calls whose arguments were refused before they ran are not told.
CallObserver = Callable[[FunctionDefinition, float, Exception | None], None]


def _lines(execution: Execution) -> list[str]:
    return [str(line) for line in execution.lines]


# A session request's result is kept for a resend up to this size (a document's limit is
# 1 MiB); a larger one is resent as null, with a log line saying why.
MAX_KEPT_OUTCOME = 512 * 1024
_json = msgspec.json.Encoder()


def _recalled(outcome: bytes | None) -> tuple[Any, list[str]]:
    """A recorded mutation's value and log lines, for the same request sent again."""
    if outcome is None:
        return None, ["[WARN] The result of this mutation was too large to keep for a resend"]
    value, lines = msgspec.json.decode(outcome)
    return value, lines


# Validation errors logged already (an action's ctx.run_mutation, then the action itself).
_logged: weakref.WeakSet[BaseException] = weakref.WeakSet()

# Like FastAPI (anyio's default of 40 tokens): enough threads that a few slow
# blocking actions do not starve quick ``def`` queries.
_THREADS = ThreadPoolExecutor(max_workers=40, thread_name_prefix="pyconvex-handler")


class Executor:
    """Runs the functions of one :class:`App` against one :class:`Database`."""

    def __init__(
        self,
        app: App,
        database: Database,
        *,
        limits: TimeLimits | None = None,
        env: EnvStore | None = None,
        log_sink: Sink | None = None,
        files: FileStorage | None = None,
        scheduler: JobScheduler | None = None,
        call_observers: list[CallObserver] | None = None,
    ) -> None:
        self.app = app
        self.database = database
        self.limits = limits or TimeLimits()
        self.env = env
        self.log_sink = log_sink
        self._files = files
        self._scheduler = scheduler
        # HTTP actions without an identity share one ctx: it holds no per-request state.
        self.anonymous_action_ctx = ActionCtx(self, Auth())
        #: The time limits of the calls in flight (HTTP actions' too).
        self.deadlines = Deadlines()
        # The deployment's list, shared by the executors of its reloads (the Health metrics).
        self.call_observers = call_observers if call_observers is not None else []

    @property
    def files(self) -> FileStorage:
        if self._files is None:
            raise RuntimeError("This executor has no file storage")
        return self._files

    @property
    def scheduler(self) -> JobScheduler:
        if self._scheduler is None:
            raise RuntimeError("This executor has no scheduler")
        return self._scheduler

    # -- resolving ---------------------------------------------------------------------

    def resolve(self, ref: Any, *, public_only: bool = False) -> FunctionDefinition:
        """The function a reference names; ``public_only`` hides internal functions."""
        functions = self.app.functions
        if ref.__class__ is str and ref in functions:
            fn: FunctionDefinition | None = functions[ref]  # a full path: the common case
            path = ref
        else:
            try:
                path = function_path(ref)
            except (ValueError, TypeError) as exc:
                raise FunctionNotFoundError(str(exc)) from None
            fn = functions.get(path)
        if fn is None or (public_only and not fn.is_public):
            scope = "public function" if public_only else "function"
            raise FunctionNotFoundError(f"Could not find {scope} for '{path}'.")
        return fn

    @staticmethod
    def _check_kind(fn: FunctionDefinition, kinds: tuple[Kind, ...]) -> None:
        if fn.kind not in kinds:
            raise FunctionNotFoundError(
                f"Trying to execute {fn.path} as {kinds[0].capitalize()}, but it is defined as "
                f"{fn.kind.capitalize()}."
            )

    # -- validation --------------------------------------------------------------------

    @staticmethod
    def _args(fn: FunctionDefinition, args: Any) -> dict[str, Any]:
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ArgumentValidationError(
                f"Arguments of {fn.path} must be an object, not {values.display_value(args)}"
            )
        try:
            values.check_value(args, what="Arguments")
        except InvalidValueError as exc:
            raise ArgumentValidationError(str(exc)) from None
        if fn.args is None:
            return args
        try:
            result: dict[str, Any] = fn.args.validate(args)
        except ValidationError as exc:
            raise ArgumentValidationError(str(exc)) from None
        return result

    @staticmethod
    def _returns(fn: FunctionDefinition, result: Any) -> Any:
        try:
            values.check_value(result, what=f"Return value of {fn.path}")
        except InvalidValueError as exc:
            raise ReturnsValidationError(str(exc)) from None
        if fn.returns is None:
            return result
        try:
            return fn.returns.validate(result)
        except ValidationError as exc:
            raise ReturnsValidationError(str(exc)) from None

    # -- invoking ----------------------------------------------------------------------

    @staticmethod
    def call_handler(
        handler: Callable[..., Any], is_async: bool, ctx: Any, arg: Any
    ) -> Awaitable[Any]:
        """Start ``handler(ctx, arg)``: a coroutine, or a plain ``def`` in a worker thread.

        The thread runs in a copy of the caller's context, so the execution's
        log capture and environment follow it there.
        """
        if is_async:
            work: Awaitable[Any] = handler(ctx, arg)
            return work
        loop = asyncio.get_running_loop()
        facade_arg = SyncFacade(arg, loop) if getattr(type(arg), "_sync_facade", False) else arg
        call = functools.partial(handler, SyncFacade(ctx, loop), facade_arg)
        return loop.run_in_executor(_THREADS, contextvars.copy_context().run, call)

    async def _invoke(self, fn: FunctionDefinition, ctx: Any, args: dict[str, Any]) -> Any:
        seconds = self.limits.of(fn.kind)
        token = current_function.set(fn.path)
        limit = self.deadlines.begin(seconds)
        try:
            result = await self.call_handler(fn.handler, fn.is_async, ctx, args)
        except asyncio.CancelledError:
            if not self.deadlines.end(limit):
                raise  # cancelled by someone else: the client went away, the server stops
            limit.task.uncancel()
            raise FunctionTimeoutError(
                f"Function execution timed out (maximum duration: {seconds:g}s)"
            ) from None
        finally:
            self.deadlines.end(limit)
            current_function.reset(token)
        return self._returns(fn, result)

    def _called(self, fn: FunctionDefinition, started: float, error: Exception | None) -> None:
        self._tell(fn, time.perf_counter() - started, error)

    def _tell(self, fn: FunctionDefinition, seconds: float, error: Exception | None) -> None:
        for observe in self.call_observers:
            try:
                observe(fn, seconds, error)
            except Exception:  # an observer's bug must not fail the call
                logging.getLogger("pyconvex.functions").exception("A call observer failed")

    def execution(self, name: str | None, *, request_id: str | None = None) -> Execution:
        """A new top-level execution whose logs go to this deployment's sinks."""
        return Execution(name, self.log_sink, self.env, request_id)

    async def run(
        self,
        ref: Any,
        args: dict[str, Any] | None = None,
        *,
        kind: Kind | None = None,
        public_only: bool = False,
        auth: Auth | None = None,
        ts: int | None = None,
    ) -> Any:
        """Run a function as a top-level call (its own transaction) and return its value;
        a query at the commit timestamp ``ts`` if given (else at the newest)."""
        try:
            fn, checked = await self._prepare(ref, args, kind, public_only)
            auth = auth or Auth()
            if current_execution.get() is not None:
                return await self._run_top(fn, checked, auth, ts)
            with self.executing(fn.path):
                return await self._run_top(fn, checked, auth, ts)
        except ValidationError as exc:
            self._log_refused(exc, ref)
            raise

    def _log_refused(self, exc: Exception, ref: Any) -> None:
        """Arguments, a return value or a write that a validator refused reach the caller only
        as an error value: log them too, as ERROR with the request id, once however many
        calls the error passes through."""
        if not isinstance(exc, ValidationError) or exc in _logged or self.log_sink is None:
            return
        _logged.add(exc)
        execution = current_execution.get()
        request_id = execution.request_id if execution is not None else new_request_id()
        name = ref if isinstance(ref, str) else getattr(ref, "path", None)
        message = f"{type(exc).__name__}: {exc}"
        self.log_sink([LogLine(time.time(), "ERROR", message, name, request_id)])

    async def _prepare(
        self, ref: Any, args: Any, kind: Kind | None, public_only: bool
    ) -> tuple[FunctionDefinition, dict[str, Any]]:
        """The function ``ref`` names (of ``kind``, if given), its checked arguments, and
        the env vars fresh enough for it."""
        fn = self.resolve(ref, public_only=public_only)
        if kind is not None:
            self._check_kind(fn, (kind,))
        checked = self._args(fn, args)
        if self.env is not None and self.env.stale():
            await self.env.refresh()
        return fn, checked

    @contextlib.contextmanager
    def executing(self, ref: Any) -> Iterator[Execution]:
        """A new execution of ``ref`` (its log lines), the current one while the block
        runs, finished (its lines sent to the log sink) after."""
        execution = self.execution(ref if isinstance(ref, str) else None)
        token = current_execution.set(execution)
        try:
            yield execution
        finally:
            current_execution.reset(token)
            execution.finish()

    async def _run_top(
        self, fn: FunctionDefinition, checked: dict[str, Any], auth: Auth, ts: int | None
    ) -> Any:
        started = time.perf_counter()
        try:
            if fn.kind == "query":
                async with self.database.read(ts=ts) as reader:
                    result = await self._invoke(fn, QueryCtx(self, reader, auth), checked)
            elif fn.kind == "mutation":
                execution = current_execution.get()
                mark = len(execution.lines) if execution is not None else 0

                async def attempt(writer: DatabaseWriter) -> Any:
                    if execution is not None:  # a conflict retry: keep the last attempt's logs
                        execution.rewind(mark)
                    return await self._invoke(fn, MutationCtx(self, writer, auth), checked)

                result = await self.database.transact(attempt)
            else:
                result = await self._invoke(fn, ActionCtx(self, auth), checked)
        except Exception as exc:
            self._called(fn, started, exc)
            raise
        self._called(fn, started, None)
        return result

    async def run_query_at(
        self,
        ref: Any,
        args: Any,
        *,
        auth: Auth,
        ts: int,
        journal: str | None = None,
        public_only: bool = False,
    ) -> QueryRun:
        """Run a query at the commit ``ts`` and keep what it read (never raises for the
        query's own failure: that is the run's ``error``)."""
        reads, journal_out = ReadSet(), None
        fn: FunctionDefinition | None = None
        with self.executing(ref) as execution:
            try:
                fn, checked = await self._prepare(ref, args, "query", public_only)
                started = time.perf_counter()
                async with self.database.read(ts=ts) as reader:
                    txn = reader._txn
                    txn.journal = journal
                    try:
                        value = await self._invoke(fn, QueryCtx(self, reader, auth), checked)
                    finally:
                        reads, journal_out = txn.reads, txn.journal_out
            except Exception as exc:
                if fn is not None:
                    self._called(fn, started, exc)
                self._log_refused(exc, ref)
                return QueryRun(None, exc, _lines(execution), reads, journal_out)
            self._called(fn, started, None)
            return QueryRun(value, None, _lines(execution), reads, journal_out)

    async def run_mutation_once(
        self,
        ref: Any,
        args: Any,
        *,
        auth: Auth,
        request: tuple[str, int],
        public_only: bool = False,
    ) -> MutationRun:
        """Run a mutation of a client session exactly once: ``request`` (session id,
        request id) is recorded in the same transaction, and a request already recorded
        (a client re-sending it after a reconnect) gets its first run's result again,
        without running it. The run's value is Convex JSON. Never raises for the
        mutation's own failure."""
        session_id, request_id = request
        fn: FunctionDefinition | None = None
        with self.executing(ref) as execution:
            try:
                fn, checked = await self._prepare(ref, args, "mutation", public_only)
                started = time.perf_counter()

                async def attempt(writer: DatabaseWriter) -> tuple[Any, list[str] | None]:
                    execution.rewind(0)  # a conflict retry keeps only the last attempt's logs
                    system = writer.system_writer()
                    done = await (
                        system.query(SESSION_REQUESTS)
                        .with_index(
                            "by_request",
                            lambda q: q.eq("session_id", session_id).eq("request_id", request_id),
                        )
                        .first()
                    )
                    if done is not None:
                        return _recalled(done["outcome"])
                    result = await self._invoke(fn, MutationCtx(self, writer, auth), checked)
                    value = values.to_convex_json(result)  # not a value: fails, writes undone
                    outcome = _json.encode([value, _lines(execution)])
                    await system.insert(
                        SESSION_REQUESTS,
                        {
                            "session_id": session_id,
                            "request_id": request_id,
                            "outcome": outcome if len(outcome) <= MAX_KEPT_OUTCOME else None,
                        },
                    )
                    return value, None

                (value, replayed), ts = await self.database.transact_at(attempt)
            except Exception as exc:
                if fn is not None:
                    self._called(fn, started, exc)
                self._log_refused(exc, ref)
                return MutationRun(None, exc, _lines(execution), 0)
            if replayed is None:  # one answered from its record did not run again
                self._called(fn, started, None)
            lines = replayed if replayed is not None else _lines(execution)
            return MutationRun(value, None, lines, ts)

    async def run_nested(
        self,
        ref: Any,
        args: dict[str, Any] | None,
        db: DatabaseReader,
        auth: Auth,
        *,
        kinds: tuple[Kind, ...],
    ) -> Any:
        """Run a query or mutation inside the caller's transaction."""
        fn = self.resolve(ref)
        self._check_kind(fn, kinds)
        checked = self._args(fn, args)
        started = time.perf_counter()
        try:
            if fn.kind == "query":
                result = await self._invoke(fn, QueryCtx(self, db, auth), checked)
            else:
                writer: DatabaseWriter = db  # type: ignore[assignment]
                async with writer.savepoint():
                    result = await self._invoke(fn, MutationCtx(self, writer, auth), checked)
        except Exception as exc:
            self._called(fn, started, exc)
            raise
        if self.call_observers:
            seconds = time.perf_counter() - started
            if isinstance(db, DatabaseWriter):
                # Told once the transaction commits: one that conflicts runs its body (and
                # this call) again, and must not count it twice.
                db.after_commit(functools.partial(self._tell, fn, seconds, None))
            else:
                self._tell(fn, seconds, None)
        return result

    async def run_in_mutation(self, fn: Any, *, auth: Auth | None = None) -> Any:
        """Run ``fn(ctx)`` with a mutation ``ctx`` in one transaction (tests and admin tools)."""

        async def body(writer: DatabaseWriter) -> Any:
            result = fn(MutationCtx(self, writer, auth or Auth()))
            return await result if asyncio.iscoroutine(result) else result

        return await self.database.transact(body)
