"""Running cron jobs: the scheduler's work queue of ``_cron_jobs`` rows.

Each job is a row with its schedule and the time of its next run. The scheduler's worker asks
:meth:`CronQueue.next_due` when to wake, and :meth:`CronQueue.run_due` runs what is due:

- a mutation job runs inside the transaction that moves its row to the next run and writes
  its log, so it runs exactly once per run, whichever process gets there first;
- an action job is marked running in one commit, run, then recorded and moved on in another:
  at most once. A run cut off by a crash is recorded as failed when a worker finds it.

The next run follows the scheduled time of the one that ran, not the time it finished; runs
that fell in the past meanwhile (the deployment was down) are skipped, with a log row and a
WARN line saying how many. The last ``KEPT_RUNS`` runs of each job are kept.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from .. import values
from ..crons import Calendar, CronJob, Interval, Schedule
from ..database.system import CRON_JOB_LOGS, CRON_JOBS
from ..functions.logs import Execution, LogLine
from .cronspec import CronSpec
from .items import CUT_OFF, describe_failure
from .worker import QueueBase

if TYPE_CHECKING:
    from ..database import Database, DatabaseReader, DatabaseWriter

KEPT_RUNS = 5
MAX_RESULT = 1000
MAX_LOG_BYTES = 1000
_log = logging.getLogger("pyconvex.crons")


def parse_schedule(text: str) -> Schedule:
    """The schedule a ``_cron_jobs`` row names (``str()`` of an Interval or a Calendar)."""
    if text.startswith("every ") and text.endswith(" s"):
        return Interval(int(text[6:-2]))
    return Calendar(CronSpec.parse(text.removeprefix("cron ")))


def advance(schedule: Schedule, scheduled: float, now: float) -> tuple[float, int]:
    """The run after the one scheduled at ``scheduled``, skipping those already past ``now``;
    and how many were skipped."""
    following = schedule.following(scheduled)
    skipped = 0
    while following < now:
        skipped += 1
        following = schedule.following(following)
    return following, skipped


def _due(reader: DatabaseReader, until: float | None = None) -> Any:
    def bounds(q: Any) -> Any:
        q = q.eq("state", "idle")
        return q if until is None else q.lte("next_ts", until)

    return reader.query(CRON_JOBS).with_index("by_due", bounds)


class CronQueue(QueueBase):
    """The :class:`~pyconvex.background.worker.WorkQueue` of cron jobs."""

    # -- deploying -------------------------------------------------------------------------

    async def sync(self, jobs: dict[str, CronJob]) -> None:
        """Bring ``_cron_jobs`` in line with the app's jobs, by name: new ones are added
        (first run from now), changed ones get their next run from now, removed ones go
        with their logs. Unchanged ones keep their next run, however many processes start."""
        now = self.worker.clock()

        async def apply(writer: DatabaseWriter) -> None:
            system = writer.system_writer()
            existing = {row["name"]: row for row in await system.query(CRON_JOBS).collect()}
            for name, job in jobs.items():
                fields = {"function": job.function, "args": job.args, "schedule": str(job.schedule)}
                row = existing.pop(name, None)
                first = job.schedule.first(now)
                if row is None:
                    await system.insert(
                        CRON_JOBS, {"name": name, **fields, "next_ts": first, "state": "idle"}
                    )
                elif _canonical(_definition(row)) != _canonical(fields):
                    # A run in flight finishes under its claim, then follows the new schedule.
                    moved = {} if row["state"] == "running" else {"next_ts": first}
                    await system.patch(row["_id"], {**fields, **moved})
            for row in existing.values():
                await system.delete(row["_id"])
                for log in await _logs(system, row["name"]).collect():
                    await system.delete(log["_id"])

        await self.database.transact(apply)

    # -- the work queue --------------------------------------------------------------------

    async def next_due(self) -> float | None:
        async with self.database.read(system=True) as reader:
            row = await _due(reader).first()
        return None if row is None else float(row["next_ts"])

    async def run_due(self, now: float, limit: int) -> int:
        async with self.database.read(system=True) as reader:
            rows = await _due(reader, now).take(limit)
        for row in rows:
            try:
                fn = self.executor.resolve(row["function"])
            except Exception as exc:  # the code changed under it: a failed run, move on
                await self._finish(row, error=exc, lines=[], claimed=False)
                continue
            if fn.kind == "mutation":
                await self._run_mutation(row)
            elif await self._claim(row):
                self.spawn(self._run_action(row))
        return len(rows)

    async def recover(self) -> int:
        """Action runs a stopped worker left ``running``: failed, and on to the next run."""
        now = self.worker.clock()

        async def fail(system: DatabaseWriter, row: dict[str, Any]) -> None:
            await self._record(system, row, now, error=CUT_OFF, lines=[])

        return await self.worker.sweep_abandoned(
            lambda reader: reader.query(CRON_JOBS).with_index(
                "by_due", lambda q: q.eq("state", "running")
            ),
            fail,
        )

    # -- running ---------------------------------------------------------------------------

    async def _run_mutation(self, row: dict[str, Any]) -> None:
        executions: list[Execution] = []

        async def attempt(writer: DatabaseWriter) -> None:
            executions.clear()
            system = writer.system_writer()
            current = await system.get(row["_id"])
            if current is None or not _still_due(current, row):
                return  # another process ran it, or a deploy changed it
            result, error, execution = await self.run_nested_mutation(
                writer, row["function"], row["args"], executions
            )
            now = self.worker.clock()
            await self._record(
                system, current, now, result=result, error=error, lines=execution.lines
            )

        try:
            await self.database.transact(attempt)
        finally:
            for execution in executions:
                execution.finish()

    async def _claim(self, row: dict[str, Any]) -> bool:
        """Mark an action job running under this worker, if it is still due as read."""
        worker = await self.worker.claimant()

        async def claim(writer: DatabaseWriter) -> bool:
            system = writer.system_writer()
            current = await system.get(row["_id"])
            if current is None or not _still_due(current, row):
                return False
            await system.patch(row["_id"], {"state": "running", "claimed_by": worker})
            return True

        claimed: bool = await self.database.transact(claim)
        return claimed

    async def _run_action(self, row: dict[str, Any]) -> None:
        executor = self.executor
        result: Any = None
        error: Exception | None = None
        with executor.executing(row["function"]) as execution:
            try:
                result = await executor.run(row["function"], row["args"])
            except Exception as exc:
                error = exc
        await self._finish(row, result=result, error=error, lines=execution.lines, claimed=True)

    async def _finish(
        self,
        row: dict[str, Any],
        *,
        result: Any = None,
        error: BaseException | str | None = None,
        lines: list[LogLine],
        claimed: bool,
    ) -> None:
        """Record a run made outside the row's transaction: an action under this worker's
        claim (a deploy may have changed the job meanwhile), or a job that could not start."""
        worker = self.worker.worker_id

        async def record(writer: DatabaseWriter) -> None:
            system = writer.system_writer()
            current = await system.get(row["_id"])
            if current is None:
                return
            if claimed:
                if current["state"] != "running" or current.get("claimed_by") != worker:
                    return
            elif not _still_due(current, row):
                return
            now = self.worker.clock()
            await self._record(system, current, now, result=result, error=error, lines=lines)

        await self.database.transact(record)

    async def _record(
        self,
        system: DatabaseWriter,
        row: dict[str, Any],
        now: float,
        *,
        result: Any = None,
        error: BaseException | str | None = None,
        lines: list[LogLine],
    ) -> None:
        """Log the run of ``row`` and move it on to its next run (skipping past ones)."""
        scheduled = row["next_ts"]
        log: dict[str, Any] = {
            "name": row["name"],
            "scheduled": scheduled,
            "finished": now,
            "status": "success" if error is None else "failed",
            "log_lines": _cut_lines(lines),
        }
        if error is not None:
            log["error"] = error if isinstance(error, str) else describe_failure(error)[:MAX_RESULT]
        elif result is not None:
            log["result"] = json.dumps(values.to_convex_json(result, wire=False))[:MAX_RESULT]
        await system.insert(CRON_JOB_LOGS, log)
        following, skipped = advance(parse_schedule(row["schedule"]), scheduled, now)
        if skipped:
            message = (
                f"Skipping {skipped} run(s) of job {row['name']} because multiple scheduled "
                "runs are in the past"
            )
            _log.warning(message)
            sink = self.executor.log_sink
            if sink is not None:
                sink([LogLine(now, "WARN", message, row["function"], "cron")])
            await system.insert(
                CRON_JOB_LOGS,
                {
                    "name": row["name"],
                    "scheduled": following - 1e-6,  # sorts after the run, before the next
                    "finished": now,
                    "status": "skipped",
                    "log_lines": [message],
                    "skipped": float(skipped),
                },
            )
        await system.patch(row["_id"], {"next_ts": following, "state": "idle", "claimed_by": None})
        for old in (await _logs(system, row["name"]).order("desc").collect())[KEPT_RUNS:]:
            await system.delete(old["_id"])


async def listing(database: Database) -> list[dict[str, Any]]:
    """Every job with its schedule, target, next run and last runs (newest first), as JSON
    (``pyconvex crons list``, ``GET /api/crons``, the dashboard)."""
    async with database.read(system=True) as reader:
        jobs = await reader.query(CRON_JOBS).collect()
        found = []
        for job in sorted(jobs, key=lambda row: row["name"]):
            last = await _logs(reader, job["name"]).order("desc").collect()
            found.append(
                {
                    "name": job["name"],
                    "schedule": job["schedule"],
                    "function": job["function"],
                    "args": values.to_convex_json(job["args"], wire=False),
                    "next_run": job["next_ts"],
                    "running": job["state"] == "running",
                    "runs": [
                        {key: run[key] for key in run if not key.startswith("_") and key != "name"}
                        for run in last
                    ],
                }
            )
    return found


def _still_due(current: dict[str, Any] | None, row: dict[str, Any]) -> bool:
    """Whether the job read as due (``row``) still is, as this transaction sees it."""
    return (
        current is not None and current["state"] == "idle" and current["next_ts"] == row["next_ts"]
    )


def _definition(row: dict[str, Any]) -> dict[str, Any]:
    return {"function": row["function"], "args": row["args"], "schedule": row["schedule"]}


def _canonical(fields: dict[str, Any]) -> bytes:
    """Compared as stored, not with ``==``: 5 and Int64(5), True and 1 are different
    arguments, and a NaN is equal to itself."""
    return values.dumps(fields, wire=False)


def _logs(reader: DatabaseReader, name: str) -> Any:
    return reader.query(CRON_JOB_LOGS).with_index("by_name", lambda q: q.eq("name", name))


def _cut_lines(lines: list[LogLine]) -> list[str]:
    kept: list[str] = []
    used = 0
    for line in lines:
        text = str(line)
        used += len(text.encode())
        if used > MAX_LOG_BYTES:
            break
        kept.append(text)
    return kept
