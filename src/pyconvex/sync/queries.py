"""Query results shared by every subscriber, kept until a commit changes what they read.

    queries = Queries(deployment)
    result = await queries.at(key, ts)      # a cached run valid at ts, or a new run at ts
    queries.watch(key, session.wake)        # called when a commit invalidates it

A result is computed at a commit timestamp and remembers what it read (its read set).
Every commit this process learns of (its own, and other processes' through the store's
commit log) is checked against the read sets of the results in the cache: a result stays
valid until the first later commit that writes inside what it read, and only the
subscribers of that result are woken. Identical subscriptions (the same function, the same
arguments, the same identity, the same journal) of any number of sessions share one run
and one cached result.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from ..database.readset import ReadSet, Writes
from ..errors import StoreUnavailableError
from ..functions import Auth
from ..functions.executor import QueryRun
from ..functions.failures import client_message, error_data
from ..tasks import cancel_and_wait
from ..values import from_convex_json, to_convex_json
from .requests import forget_requests

if TYPE_CHECKING:
    from ..deployment import Deployment

#: How often another process's commits are looked for where the store cannot say (SQLite).
POLL_SECONDS = 0.05
_log = logging.getLogger("pyconvex.sync")


class QueryKey(NamedTuple):
    """What makes two subscriptions the same query (a tuple: hashed in C, as every
    transition looks up each of its queries)."""

    path: str
    args: bytes  # the arguments as canonical JSON
    identity: str  # who asks (a query may read ctx.auth)
    journal: str | None
    admin: bool = False


@dataclass(slots=True)
class Result:
    """One run of a query, as its subscribers are sent it."""

    ts: int  # the commit it was read at
    value: Any  # Convex JSON, when ``error`` is None
    error: str | None
    error_data: Any
    log_lines: list[str]
    journal: str | None
    reads: ReadSet
    digest: bytes  # of what a client is sent: an unchanged digest is not sent again
    invalid_at: int | None = None  # the first later commit that wrote inside its reads

    def valid_at(self, ts: int) -> bool:
        return self.ts <= ts and (self.invalid_at is None or ts < self.invalid_at)


@dataclass(slots=True, eq=False)  # hashed by identity: kept in the read indexes' sets
class _Entry:
    result: Result | None = None
    # A run in a task of its own: the sessions waiting for it may go away mid-run.
    running: asyncio.Task[Result] | None = None
    running_ts: int = -1
    running_generation: int = -1
    watchers: dict[int, Callable[[], None]] = field(default_factory=dict)


class Queries:
    """The query results of one deployment's sessions, and the commits that invalidate them."""

    def __init__(self, deployment: Deployment, *, production: bool = False) -> None:
        self._deployment = deployment
        self._production = production
        self._entries: dict[QueryKey, _Entry] = {}
        # The entries whose valid result read each index, and each document by id: a
        # commit is checked against the results that read something it wrote, not all.
        self._by_index: dict[int, set[_Entry]] = {}
        self._by_doc: dict[str, set[_Entry]] = {}
        #: The newest commit whose effect on every cached result is known.
        self.head = 0
        # Bumped when the functions change: runs of older code are not kept.
        self._generation = 0
        self._starting: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[None]] = []
        self._runs: set[asyncio.Task[Result]] = set()
        #: Runs of queries, and re-runs whose result came out unchanged (a write that did
        #: not touch a query re-runs nothing: the benchmark checks these stay rare).
        self.runs = 0
        self.unchanged_runs = 0
        deployment.database.committer.on_commits(self._commits)

    async def start(self) -> None:
        """Learn the newest commit, and follow the other processes' from now on (once, however
        many sessions ask at once)."""
        if self._starting is None:
            self._starting = asyncio.get_running_loop().create_task(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        database = self._deployment.database
        try:
            await database.committer.refresh()
        except BaseException:
            self._starting = None  # the next session tries again
            raise
        self.head = max(self.head, database.committer.head or 0)
        loop = asyncio.get_running_loop()
        self._background = [
            loop.create_task(database.committer.follow(POLL_SECONDS)),
            loop.create_task(forget_requests(database)),
        ]

    async def stop(self) -> None:
        starting, self._starting = self._starting, None
        background, self._background = self._background, []
        await cancel_and_wait(starting, *background, *self._runs)

    async def catch_up(self, ts: int) -> None:
        """Learn the commits up to ``ts`` at least (made by another process, say)."""
        if ts > self.head:
            await self._deployment.database.committer.refresh()

    def clear(self) -> None:
        """Forget every result (the functions changed: a reload); their watchers are woken."""
        self._generation += 1
        entries = list(self._entries.values())
        for entry in entries:
            self._set(entry, None)
        for entry in entries:
            for wake in list(entry.watchers.values()):
                wake()

    # -- subscribers ---------------------------------------------------------------------

    def watch(self, key: QueryKey, token: int, wake: Callable[[], None]) -> None:
        """Call ``wake()`` whenever ``key``'s result goes stale (``token`` names the watch)."""
        self._entries.setdefault(key, _Entry()).watchers[token] = wake

    def unwatch(self, key: QueryKey, token: int) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.watchers.pop(token, None)
            self._forget_unwatched(key, entry)

    def _forget_unwatched(self, key: QueryKey, entry: _Entry) -> None:
        """Drop ``entry`` if nobody watches it and no run fills it: its result is not kept."""
        if not entry.watchers and entry.running is None and self._entries.get(key) is entry:
            del self._entries[key]
            self._set(entry, None)

    def watched(self) -> int:
        """How many distinct queries have subscribers."""
        return sum(1 for entry in self._entries.values() if entry.watchers)

    def rekey(
        self,
        old: QueryKey,
        journal: str | None,
        token: int,
        wake: Callable[[], None],
        result: Result,
    ) -> QueryKey:
        """Move a watch to the same query with the journal its last run left (its next runs
        read as far as that one did), keeping that run as the new key's result."""
        new = old._replace(journal=journal)
        entry = self._entries.setdefault(new, _Entry())
        if entry.result is None or entry.result.ts <= result.ts:
            # A copy: an invalidation marks each entry's result, and wakes its own watchers.
            # It replaces an older one (maybe invalid, and then checked by no commit).
            self._set(entry, dataclasses.replace(result))
        entry.watchers[token] = wake
        return new

    def cached(self, key: QueryKey, ts: int) -> Result | None:
        entry = self._entries.get(key)
        result = entry.result if entry is not None else None
        return result if result is not None and result.valid_at(ts) else None

    async def at(self, key: QueryKey, ts: int, auth: Auth) -> Result:
        """``key``'s result at ``ts``: the cached one if still valid then, else a new run
        (one run for every subscriber that asks at once)."""
        entry = self._entries.setdefault(key, _Entry())
        result = entry.result
        if result is not None and result.valid_at(ts):
            return result
        task = entry.running
        if task is None or entry.running_ts != ts or entry.running_generation != self._generation:
            task = asyncio.get_running_loop().create_task(self._fill(key, entry, ts, auth))
            self._runs.add(task)
            task.add_done_callback(self._ran)
            entry.running, entry.running_ts = task, ts
            entry.running_generation = self._generation
        return await asyncio.shield(task)

    def _ran(self, task: asyncio.Task[Result]) -> None:
        self._runs.discard(task)
        if not task.cancelled():
            task.exception()  # seen: every waiter gets it, or none is left to

    async def _fill(self, key: QueryKey, entry: _Entry, ts: int, auth: Auth) -> Result:
        try:
            while True:
                generation = self._generation
                result = await self._run(key, ts, auth)
                if generation == self._generation:
                    break  # else the functions changed while it ran: run the new ones
            current = self._entries.get(key) is entry  # else dropped meanwhile: keep nothing
            if current and (entry.result is None or entry.result.ts <= result.ts):
                if entry.result is not None and entry.result.digest == result.digest:
                    self.unchanged_runs += 1
                self._set(entry, result)
            return result
        finally:
            if entry.running is asyncio.current_task():
                entry.running = None
            self._forget_unwatched(key, entry)

    async def _run(self, key: QueryKey, ts: int, auth: Auth) -> Result:
        self.runs += 1
        try:
            args = from_convex_json(msgspec.json.decode(key.args), numbers="float")
        except ValueError as exc:  # not a Convex value: the query fails, as a call would
            run = QueryRun(None, exc, [], ReadSet(), None)
        else:
            run = await self._deployment.executor.run_query_at(
                key.path,
                args,
                auth=auth,
                ts=ts,
                journal=key.journal,
                public_only=not key.admin,
            )
        if isinstance(run.error, StoreUnavailableError):
            raise run.error  # not the query's failure: nothing to keep, try again later
        error, data, value = None, None, None
        if run.error is None:
            try:
                value = to_convex_json(run.value)
            except ValueError as exc:
                run.error = exc
        if run.error is not None:
            error = client_message(
                run.error, secrets.token_hex(8), self._deployment, production=self._production
            )
            data = error_data(run.error)
        # Of what the run came to: a failure's message names a new request id each time, and
        # the same failure again is no change.
        failure = None if run.error is None else [type(run.error).__name__, str(run.error)]
        digest = hashlib.sha256(
            msgspec.json.encode([value, failure, data, run.log_lines, run.journal])
        ).digest()
        result = Result(ts, value, error, data, run.log_lines, run.journal, run.reads, digest)
        # The commits since ``ts`` were checked before this result existed: check them now.
        for commit_ts, writes in self._deployment.database.committer.log.after(ts):
            if writes.overlaps(run.reads):
                result.invalid_at = commit_ts
        return result

    # -- commits -------------------------------------------------------------------------

    def _set(self, entry: _Entry, result: Result | None) -> None:
        """Make ``result`` ``entry``'s, keeping the read indexes in line."""
        old = entry.result
        if old is not None and old.invalid_at is None:
            self._unindex(entry, old)
        entry.result = result
        if result is not None and result.invalid_at is None:
            for index_id in result.reads.ranges:
                self._by_index.setdefault(index_id, set()).add(entry)
            for doc_id in result.reads.docs:
                self._by_doc.setdefault(doc_id, set()).add(entry)

    def _unindex(self, entry: _Entry, result: Result) -> None:
        for index_id in result.reads.ranges:
            _discard(self._by_index, index_id, entry)
        for doc_id in result.reads.docs:
            _discard(self._by_doc, doc_id, entry)

    def _commits(self, commits: list[tuple[int, Writes]]) -> None:
        woken: list[Callable[[], None]] = []
        for ts, writes in commits:
            if ts <= self.head:
                continue
            self.head = ts
            if writes.everything:
                candidates = set(self._entries.values())
            else:
                candidates = set()
                for index_id in writes.keys:
                    candidates.update(self._by_index.get(index_id, ()))
                for doc_id in writes.docs:
                    candidates.update(self._by_doc.get(doc_id, ()))
            for entry in candidates:
                result = entry.result
                if result is None or result.invalid_at is not None or result.ts >= ts:
                    continue
                if writes.overlaps(result.reads):
                    result.invalid_at = ts
                    self._unindex(entry, result)  # invalid from now on: nothing to check
                    woken.extend(entry.watchers.values())
        for wake in woken:
            wake()


def _discard(index: dict[Any, set[_Entry]], key: Any, entry: _Entry) -> None:
    found = index.get(key)
    if found is not None:
        found.discard(entry)
        if not found:
            del index[key]
