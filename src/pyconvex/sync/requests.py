"""Forgetting the record of sessions' mutations.

Each mutation a client sends over the sync protocol is recorded (``_session_requests``)
in the transaction that runs it, so that the same request sent again after a reconnect
gets its first result back instead of running twice. Convex keeps these records for 14
days; so does pyconvex: every hour, each process deletes the older ones (a few
transactions of at most 1,000 deletions each).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ..database.system import SESSION_REQUESTS

if TYPE_CHECKING:
    from ..database import Database, DatabaseWriter

RETENTION_SECONDS = 14 * 24 * 3600
EVERY_SECONDS = 3600.0
BATCH = 1000
_log = logging.getLogger("pyconvex.sync")


async def forget_requests(database: Database, every: float = EVERY_SECONDS) -> None:
    """Every ``every`` seconds until cancelled, forget the records older than 14 days."""
    while True:
        await asyncio.sleep(every)
        try:
            await forget_old_requests(database, time.time() - RETENTION_SECONDS)
        except Exception:  # the store may be away: the next round will do
            _log.warning("Could not forget old session requests", exc_info=True)


async def forget_old_requests(database: Database, before: float) -> int:
    """Delete the records made before ``before`` (seconds since the epoch); how many."""

    async def batch(writer: DatabaseWriter) -> int:
        system = writer.system_writer()
        old = await (
            system.query(SESSION_REQUESTS)
            .with_index("by_creation_time", lambda q: q.lt("_creationTime", before * 1000))
            .take(BATCH)
        )
        for doc in old:
            await system.delete(doc["_id"])
        return len(old)

    forgotten = 0
    while True:
        done: int = await database.transact(batch)
        forgotten += done
        if done < BATCH:
            return forgotten
