"""The recent commits of a deployment, in memory: what each wrote, by timestamp.

The committer appends every commit it makes, and those of other processes
sharing the store as it learns of them (from the store's commit log, under the
write lock); a transaction that read at timestamp S is checked against the
entries after S. Entries older than :data:`WINDOW_NS` are dropped: a
transaction that began before the oldest one kept cannot be checked, so it
conflicts and runs again (Convex's ``MAX_TRANSACTION_WINDOW`` does the same).

    log = CommitLog()
    log.start(head=0)
    log.extend([(5, Writes(docs={"abc"}))])
    log.conflict(reads, since=3)      # the Writes it overlaps, or None
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from .readset import ReadSet, Writes

WINDOW_NS = 60_000_000_000  # a minute: far beyond any transaction's time limit by default

# What a transaction too old to check conflicts with.
TOO_OLD = Writes(everything=True)


class CommitLog:
    """Recent commits, oldest first."""

    def __init__(self, window_ns: int = WINDOW_NS) -> None:
        self._entries: deque[tuple[int, Writes]] = deque()
        self._window = window_ns
        #: The newest commit known here (None until :meth:`start`).
        self.head: int | None = None
        #: Every commit after this timestamp is in the log.
        self.floor = 0

    def start(self, head: int) -> None:
        """Begin at the store's newest commit: nothing before it is known here."""
        self.head = self.floor = head

    def extend(self, commits: list[tuple[int, Writes]]) -> None:
        """Add commits, oldest first (those already here are skipped)."""
        head = self.head
        entries = self._entries
        for ts, writes in commits:
            if head is None or ts > head:
                entries.append((ts, writes))
                head = ts
        self.head = head
        if head is not None:
            horizon = max(head, time.time_ns()) - self._window
            while len(entries) > 1 and entries[0][0] < horizon:
                self.floor = entries.popleft()[0]

    def after(self, ts: int) -> Iterator[tuple[int, Writes]]:
        """The commits after ``ts``, newest first."""
        for entry in reversed(self._entries):
            if entry[0] <= ts:
                return
            yield entry

    def conflict(self, reads: ReadSet, since: int) -> Writes | None:
        """The writes of a commit after ``since`` that overlap ``reads``, or None.

        A transaction older than what the log keeps conflicts with :data:`TOO_OLD`.
        """
        if not reads:
            return None
        if since < self.floor or self.head is None:
            return TOO_OLD
        for _ts, writes in self.after(since):
            if writes.overlaps(reads):
                return writes
        return None
