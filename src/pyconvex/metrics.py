"""The Health page's metrics, recorded by the server itself, across all its processes.

Each process counts in memory what it serves (HTTP requests per port; function calls per
function with their errors and a latency histogram; how late scheduled jobs start) in
10-second buckets, and once a second writes the buckets that changed to the ``_metrics``
system table, one document per (process, bucket), in one transaction, along with samples
of the backlogs read from the database. Buckets older than an hour are deleted. Reading
merges every process's documents:

    metrics = Metrics()
    backend.request_observers.append(metrics.request)        # what Backend does
    deployment.call_observers.append(metrics.call)
    deployment.scheduler.lag_observers.append(metrics.lag)
    metrics.start(deployment.database)                       # flushes every second
    ...
    report = await health(deployment.database)
    report["functions"][0]
    # {"name": "items:create", "kind": "mutation", "calls": 120, "errors": 2,
    #  "p50_ms": 1.9, "p95_ms": 4.5, "p99_ms": 9.5}

Latencies go into fixed, log-spaced buckets (four per doubling from 0.25 ms to 65 s), the
same in every process, so histograms add up and percentiles of the sum are those of all the
calls, within one bucket (about 19%).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import secrets
import socket
import struct
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .database import IndexRange
from .database.system import METRICS, SCHEDULED_FUNCTIONS, WEBHOOK_EVENTS
from .tasks import cancel_and_wait

if TYPE_CHECKING:
    from .database import Database, DatabaseWriter
    from .functions.define import FunctionDefinition

__all__ = [
    "BACKLOG_LIMIT",
    "BUCKET_SECONDS",
    "RETENTION_SECONDS",
    "Metrics",
    "health",
    "percentile",
]

BUCKET_SECONDS = 10
FLUSH_SECONDS = 1.0
RETENTION_SECONDS = 3600
# Each process sweeps old buckets about this often (jittered, so that processes seldom
# sweep the same documents at once and conflict), at most SWEEP_BATCH at a time.
SWEEP_SECONDS = 60.0
SWEEP_BATCH = 500
# The last flush when a server stops must not hold up its exit when the database is away.
STOP_FLUSH_SECONDS = 2.0
# Backlogs are counted up to this (a count's cost grows with what it counts, and on SQLite
# it runs on the event loop: 10,000 index entries take about half a millisecond).
BACKLOG_LIMIT = 10_000
# Paths beyond this many in one bucket are counted as OTHER: keeps a document far below the
# 1 MiB limit (only the app's own functions are recorded, so it is a safety net).
MAX_FUNCTIONS = 1000
OTHER = "(other)"

LOWEST = 0.00025
STEPS = 4  # buckets per doubling
DOUBLINGS = 18  # up to 0.25 ms * 2**18 = 65.5 s
OVERFLOW = STEPS * DOUBLINGS + 1
#: Latency buckets: 0 is under 0.25 ms, n in 1..72 is [LOWEST * 2**((n-1)/4),
#: LOWEST * 2**(n/4)), and OVERFLOW is 65.5 s or more.
LATENCY_BUCKETS = OVERFLOW + 1
# The buckets' edges: a bisection is exact at an edge, and twice as fast as a logarithm.
_EDGES = [LOWEST * 2 ** (n / STEPS) for n in range(STEPS * DOUBLINGS + 1)]

_log = logging.getLogger("pyconvex.metrics")


def latency_bucket(seconds: float) -> int:
    """The histogram bucket of a duration: ``latency_bucket(0.001) == 9`` (1 ms)."""
    return bisect_right(_EDGES, seconds)


def bucket_seconds(bucket: int) -> float:
    """The duration a bucket stands for: its geometric middle (its edge at either end)."""
    if bucket <= 0:
        return LOWEST
    if bucket >= OVERFLOW:
        return float(LOWEST * 2**DOUBLINGS)
    return float(LOWEST * 2 ** ((bucket - 0.5) / STEPS))


def percentile(histogram: Sequence[int], q: float) -> float:
    """The ``q``-quantile (0 < q <= 1) in seconds of a histogram (a count per latency
    bucket; nearest rank; 0.0 when empty)."""
    total = sum(histogram)
    if total == 0:
        return 0.0
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket, n in enumerate(histogram):
        seen += n
        if seen >= rank:
            return bucket_seconds(bucket)
    raise AssertionError("unreachable")  # pragma: no cover


def _pack(histogram: list[int]) -> bytes:
    """The used buckets as little-endian uint32 (bucket, count) pairs: a reader of an hour of
    documents decodes these bytes several times faster than as lists of numbers."""
    flat = [x for pair in enumerate(histogram) if pair[1] for x in pair]
    return struct.pack(f"<{len(flat)}I", *flat)


def _add_packed(histogram: list[int], packed: bytes) -> None:
    flat = struct.unpack(f"<{len(packed) // 4}I", packed)
    for bucket, n in zip(flat[::2], flat[1::2], strict=True):
        histogram[bucket] += n


class _Function:
    __slots__ = ("calls", "errors", "histogram", "kind")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls = 0
        self.errors = 0
        self.histogram = [0] * LATENCY_BUCKETS


class _Bucket:
    """One process's counts for one 10-second bucket."""

    __slots__ = (
        "api",
        "changes",
        "flushed",
        "functions",
        "lag",
        "scheduler_backlog",
        "site",
        "start",
        "webhook_backlog",
    )

    def __init__(self, start: float) -> None:
        self.start = start
        self.api = 0
        self.site = 0
        self.functions: dict[str, _Function] = {}
        self.lag = 0.0
        self.scheduler_backlog = 0
        self.webhook_backlog = 0
        # Bumped by every record; the flush that wrote up to ``changes`` sets ``flushed``,
        # so what is recorded while a flush awaits its commit is flushed the next time.
        self.changes = 0
        self.flushed = 0

    def document(self, process: str) -> dict[str, Any]:
        latency = [0] * LATENCY_BUCKETS
        for stats in self.functions.values():
            for i, n in enumerate(stats.histogram):
                latency[i] += n
        return {
            "process": process,
            "start": float(self.start),
            "requests": {"api": self.api, "site": self.site},
            "functions": [
                {
                    "name": name,
                    "kind": stats.kind,
                    "calls": stats.calls,
                    "errors": stats.errors,
                    "histogram": _pack(stats.histogram),
                }
                for name, stats in self.functions.items()
            ],
            "latency": _pack(latency),
            "scheduler_lag": self.lag,
            "scheduler_backlog": self.scheduler_backlog,
            "webhook_backlog": self.webhook_backlog,
        }


class Metrics:
    """One process's recorder: cheap ``request``/``call``/``lag`` observers for the hot path
    (no awaits, no locks: they run on the event loop), and ``flush`` to the database."""

    def __init__(self, *, process: str | None = None, clock: Callable[[], float] = time.time):
        #: Unique per process start: ``serve --workers`` forks, then each worker makes its own.
        self.process = process or (f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}")
        self._clock = clock
        self._buckets: dict[float, _Bucket] = {}
        self._current = _Bucket(-math.inf)
        # Requests since the last flush: plain counters, because they are counted for every
        # request; a flush adds them to the bucket it flushes in (within a second of them).
        self._api_requests = 0
        self._site_requests = 0
        self._task: asyncio.Task[None] | None = None
        self._database: Database | None = None
        self._next_sweep = 0.0
        self._failing = False

    # -- recording (the hot path) ----------------------------------------------------------

    def _bucket(self) -> _Bucket:
        now = self._clock()
        bucket = self._current
        if not 0.0 <= now - bucket.start < BUCKET_SECONDS:
            bucket = self._roll(now)
        return bucket

    def _roll(self, now: float) -> _Bucket:
        start = float(math.floor(now / BUCKET_SECONDS) * BUCKET_SECONDS)
        bucket = self._buckets.get(start)
        if bucket is None:
            bucket = self._buckets[start] = _Bucket(start)
            # Bounds memory while nothing flushes (no database, or one away for long).
            for old in [s for s in self._buckets if s < now - RETENTION_SECONDS]:
                del self._buckets[old]
        self._current = bucket
        return bucket

    def request(self, port: str) -> None:
        """An HTTP request on the ``"api"`` or the ``"site"`` port (counted by ``Backend``
        before it serves one; the dashboard's page views are not counted)."""
        if port == "site":
            self._site_requests += 1
        else:
            self._api_requests += 1

    def _fold_requests(self) -> None:
        if self._api_requests or self._site_requests:
            bucket = self._bucket()
            bucket.api += self._api_requests
            bucket.site += self._site_requests
            bucket.changes += 1
            self._api_requests = self._site_requests = 0

    def call(self, fn: FunctionDefinition, seconds: float, error: Exception | None) -> None:
        """A call observer (``Deployment.call_observers``)."""
        bucket = self._bucket()
        path = fn.path or OTHER  # None only for a function no app has loaded
        stats = bucket.functions.get(path)
        if stats is None:
            name = path if len(bucket.functions) < MAX_FUNCTIONS else OTHER
            stats = bucket.functions.get(name)
            if stats is None:
                stats = bucket.functions[name] = _Function(fn.kind)
        stats.calls += 1
        if error is not None:
            stats.errors += 1
        stats.histogram[bisect_right(_EDGES, seconds)] += 1  # latency_bucket, inlined
        bucket.changes += 1

    def lag(self, seconds: float) -> None:
        """A lag observer (``Scheduler.lag_observers``): how late a due job started."""
        bucket = self._bucket()
        if seconds > bucket.lag:
            bucket.lag = seconds
            bucket.changes += 1

    def with_unflushed(
        self, documents: list[dict[str, Any]], since: float, until: float
    ) -> list[dict[str, Any]]:
        """``documents`` read from the database, with this process's counts as they are now
        in place of what it last flushed: the process that answers sees itself at once."""
        self._fold_requests()
        mine = {
            float(bucket.start): bucket.document(self.process)
            for bucket in self._buckets.values()
            # The clock may have passed into a newer bucket than the window's last meanwhile.
            if since <= bucket.start <= until and bucket.changes != bucket.flushed
        }
        kept = [d for d in documents if d["process"] != self.process or d["start"] not in mine]
        return kept + list(mine.values())

    # -- storing ---------------------------------------------------------------------------

    async def flush(self, database: Database) -> bool:
        """Sample the backlogs, write the buckets that changed and sweep old ones, in one
        transaction; False (counts kept for the next flush) if the database failed."""
        self._fold_requests()
        now = self._clock()
        pending: list[tuple[_Bucket, int, dict[str, Any]]] = []
        sweep = now >= self._next_sweep
        try:
            await self._sample(database, now)
            pending = [
                (bucket, bucket.changes, bucket.document(self.process))
                for bucket in self._buckets.values()
                if bucket.changes != bucket.flushed
            ]
            if pending or sweep:
                await database.transact(
                    lambda writer: _write(writer, self.process, pending, now, sweep),
                    system=True,
                )
        except Exception:
            if not self._failing:  # once per outage, not once a second
                _log.warning("Could not record metrics; will retry", exc_info=True)
            self._failing = True
            return False
        if self._failing:
            _log.info("Recording metrics again")
        self._failing = False
        if sweep:
            self._next_sweep = now + SWEEP_SECONDS * random.uniform(0.5, 1.5)
        for bucket, changes, _ in pending:
            bucket.flushed = changes
        for start in [
            s
            for s, b in self._buckets.items()
            if b is not self._current and b.changes == b.flushed and s + BUCKET_SECONDS <= now
        ]:
            del self._buckets[start]
        return True

    async def _sample(self, database: Database, now: float) -> None:
        """The backlogs now, kept as the bucket's maximum."""
        async with database.persistence.reading() as snapshot:

            async def count(table: str, index: str, bounds: Callable[[Any], Any]) -> int:
                fields = database.declared_indexes(table)[index]
                info = await database.registry.find(snapshot, table, index, fields)
                if info is None:
                    return 0  # the table has never had a document
                range_ = IndexRange(f"{table}.{index}", (*fields, "_creationTime"))
                bounds(range_)
                return await snapshot.count(info.id, *range_.byte_range(), BACKLOG_LIMIT)

            scheduler = await count(
                SCHEDULED_FUNCTIONS,
                "by_state",
                lambda q: q.eq("state.kind", "pending").lte("scheduled_time", now),
            )
            webhooks = min(
                BACKLOG_LIMIT,
                await count(WEBHOOK_EVENTS, "by_endpoint", lambda q: q.eq("status", "pending"))
                + await count(
                    WEBHOOK_EVENTS, "by_endpoint", lambda q: q.eq("status", "processing")
                ),
            )
        if scheduler or webhooks:
            bucket = self._bucket()
            if scheduler > bucket.scheduler_backlog or webhooks > bucket.webhook_backlog:
                bucket.scheduler_backlog = max(bucket.scheduler_backlog, scheduler)
                bucket.webhook_backlog = max(bucket.webhook_backlog, webhooks)
                bucket.changes += 1

    # -- the flushing task -----------------------------------------------------------------

    def start(self, database: Database) -> None:
        """Flush to ``database`` every second until :meth:`stop`."""
        self._database = database
        if self._task is None:
            self._task = asyncio.create_task(self._flush_every_second(database))

    async def _flush_every_second(self, database: Database) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush(database)

    async def stop(self) -> None:
        """Stop flushing, after a last flush of what is left (given up after 2 s)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        database, self._database = self._database, None
        if task is not None and database is not None:
            try:
                async with asyncio.timeout(STOP_FLUSH_SECONDS):
                    await self.flush(database)
            except TimeoutError:
                _log.warning("The last metrics were not recorded: the database did not answer")


async def _write(
    writer: DatabaseWriter,
    process: str,
    pending: list[tuple[_Bucket, int, dict[str, Any]]],
    now: float,
    sweep: bool,
) -> None:
    for bucket, _, document in pending:
        start = bucket.start
        existing = (
            await writer.query(METRICS)
            .with_index("by_process", lambda q: q.eq("process", process).eq("start", start))  # noqa: B023 (read at once)
            .first()
        )
        if existing is None:
            await writer.insert(METRICS, document)
        else:
            await writer.replace(existing["_id"], document)
    if sweep:
        cutoff = float(now - RETENTION_SECONDS - BUCKET_SECONDS)
        old = (
            await writer.query(METRICS)
            .with_index("by_start", lambda q: q.lt("start", cutoff))
            .take(SWEEP_BATCH)
        )
        for document in old:
            await writer.delete(document["_id"])


# -- reading ------------------------------------------------------------------------------


async def health(
    database: Database,
    *,
    now: float | None = None,
    window: float = RETENTION_SECONDS,
    local: Metrics | None = None,
) -> dict[str, Any]:
    """Every process's metrics over the ``window`` seconds up to ``now``, merged (JSON-able):

    ``{"now", "bucket_seconds": 10, "processes": n, "series": {"t": [bucket starts],
    "requests": [per second], "calls": [per second], "error_rate": [failed / calls],
    "scheduler_lag": [max seconds], "scheduler_backlog": [max], "webhook_backlog": [max],
    "p50_ms", "p95_ms", "p99_ms": [latency of all calls in the bucket]},
    "functions": [{"name", "kind", "calls", "errors", "p50_ms", "p95_ms", "p99_ms"}, ...]}``
    with every bucket of the window (zero-filled, the newest still filling; backlogs counted
    up to ``BACKLOG_LIMIT``) and functions by calls, most first. A process's counts arrive within a second or so (its next flush).
    """
    now = time.time() if now is None else now
    count = max(1, math.ceil(window / BUCKET_SECONDS))
    last = math.floor(now / BUCKET_SECONDS) * BUCKET_SECONDS
    first = last - (count - 1) * BUCKET_SECONDS
    async with database.read(system=True) as reader:
        documents = await (
            reader.query(METRICS)
            .with_index(
                "by_start", lambda q: q.gte("start", float(first)).lte("start", float(last))
            )
            .collect()
        )
    if local is not None:
        documents = local.with_unflushed(documents, first, last)
    requests = [0.0] * count
    calls = [0.0] * count
    errors = [0.0] * count
    lag = [0.0] * count
    scheduler_backlog = [0] * count
    webhook_backlog = [0] * count
    latency = [[0] * LATENCY_BUCKETS for _ in range(count)]
    functions: dict[str, _Function] = {}
    packed: dict[str, list[bytes]] = {}
    processes = set()
    for document in documents:
        i = int((document["start"] - first) // BUCKET_SECONDS)
        processes.add(document["process"])
        requests[i] += document["requests"]["api"] + document["requests"]["site"]
        lag[i] = max(lag[i], document["scheduler_lag"])
        scheduler_backlog[i] = max(scheduler_backlog[i], int(document["scheduler_backlog"]))
        webhook_backlog[i] = max(webhook_backlog[i], int(document["webhook_backlog"]))
        if document.get("latency"):
            _add_packed(latency[i], document["latency"])
        for stats in document["functions"]:
            calls[i] += stats["calls"]
            errors[i] += stats["errors"]
            merged = functions.get(stats["name"])
            if merged is None:
                merged = functions[stats["name"]] = _Function(stats["kind"])
                packed[stats["name"]] = []
            merged.calls += int(stats["calls"])
            merged.errors += int(stats["errors"])
            packed[stats["name"]].append(stats["histogram"])
    for name, merged in functions.items():
        _add_packed(merged.histogram, b"".join(packed[name]))  # one unpacking per function
    return {
        "now": now,
        "bucket_seconds": BUCKET_SECONDS,
        "processes": len(processes),
        "series": {
            "t": [float(first + i * BUCKET_SECONDS) for i in range(count)],
            "requests": [n / BUCKET_SECONDS for n in requests],
            "calls": [n / BUCKET_SECONDS for n in calls],
            "error_rate": [e / c if c else 0.0 for e, c in zip(errors, calls, strict=True)],
            "scheduler_lag": lag,
            "scheduler_backlog": scheduler_backlog,
            "webhook_backlog": webhook_backlog,
            **{
                f"p{q}_ms": [round(percentile(h, q / 100) * 1000, 3) for h in latency]
                for q in (50, 95, 99)
            },
        },
        "functions": sorted(
            (
                {
                    "name": name,
                    "kind": merged.kind,
                    "calls": merged.calls,
                    "errors": merged.errors,
                    **{
                        f"p{q}_ms": round(percentile(merged.histogram, q / 100) * 1000, 3)
                        for q in (50, 95, 99)
                    },
                }
                for name, merged in functions.items()
            ),
            key=lambda row: (-row["calls"], row["name"]),
        ),
    }
