"""The ``ctx`` each kind of function receives.

- query: ``db`` (read), ``auth``, ``run_query``
- mutation: the query's, with ``db`` writable, plus ``run_mutation``
- action and HTTP action: ``run_query``, ``run_mutation``, ``run_action``, ``auth``

Queries and mutations called from a query or mutation run inside the caller's
transaction (a nested mutation in a savepoint, so its failure undoes only its
own writes); each call from an action is a transaction of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .scheduling import SchedulerApi

if TYPE_CHECKING:
    from ..database import DatabaseReader, DatabaseWriter
    from ..storage.api import StorageActions, StorageReader, StorageWriter
    from .executor import Executor


class Auth:
    """``ctx.auth``: who is calling."""

    _sync_facade = True

    def __init__(self, identity: Any = None) -> None:
        self._identity = identity

    async def get_user_identity(self) -> Any:
        """The caller's identity, or None for an anonymous call."""
        return self._identity


class QueryCtx:
    """``ctx`` of a query."""

    _sync_facade = True

    def __init__(self, executor: Executor, db: DatabaseReader, auth: Auth) -> None:
        self._executor = executor
        self.db = db
        self.auth = auth

    @property
    def storage(self) -> StorageReader:
        """Stored files: ``get_url``, ``get_metadata``."""
        from ..storage.api import StorageReader

        return StorageReader(self._executor.files, self.db)

    async def run_query(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        """Run another query in this transaction and return its result."""
        return await self._executor.run_nested(ref, args, self.db, self.auth, kinds=("query",))


class MutationCtx(QueryCtx):
    """``ctx`` of a mutation."""

    db: DatabaseWriter

    def __init__(self, executor: Executor, db: DatabaseWriter, auth: Auth) -> None:
        super().__init__(executor, db, auth)

    @property
    def storage(self) -> StorageWriter:
        """Stored files, plus ``delete`` and ``generate_upload_url`` in this transaction."""
        from ..storage.api import StorageWriter

        return StorageWriter(self._executor.files, self.db)

    @property
    def scheduler(self) -> SchedulerApi:
        """Schedule or cancel jobs, as part of this mutation's transaction."""
        return SchedulerApi(self._executor.scheduler, self._executor.database, self.db)

    async def run_mutation(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        """Run another mutation in this transaction (all-or-nothing with the caller)."""
        return await self._executor.run_nested(ref, args, self.db, self.auth, kinds=("mutation",))


class ActionCtx:
    """``ctx`` of an action (and of an HTTP action): no ``db``, each call its own transaction."""

    _sync_facade = True

    def __init__(self, executor: Executor, auth: Auth) -> None:
        self._executor = executor
        self.auth = auth

    @property
    def storage(self) -> StorageActions:
        """Stored files: ``store``, ``get``, ``get_url``, ``get_metadata``, ``delete``, ..."""
        from ..storage.api import StorageActions

        return StorageActions(self._executor.files)

    @property
    def scheduler(self) -> SchedulerApi:
        """Schedule or cancel jobs (at once: an action has no transaction)."""
        return SchedulerApi(self._executor.scheduler, self._executor.database, None)

    async def run_query(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        """Run a query (public or internal) and return its result."""
        return await self._executor.run(ref, args, kind="query", auth=self.auth)

    async def run_mutation(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        """Run a mutation in its own transaction and return its result."""
        return await self._executor.run(ref, args, kind="mutation", auth=self.auth)

    async def run_action(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        """Run another action and return its result."""
        return await self._executor.run(ref, args, kind="action", auth=self.auth)


async def in_system_transaction(
    ctx: Any, body: Callable[[Any], Awaitable[Any]], *, write: bool = True, what: str = "This"
) -> Any:
    """Run ``body(system db)`` in the mutation's transaction (a query's snapshot), or in a
    transaction of its own from an action: how pyconvex's components (rate limits, work
    pools) keep their state in system tables, atomic with the function that calls them."""
    db = getattr(ctx, "db", None)
    if db is not None:
        if write and not hasattr(db, "system_writer"):
            raise TypeError(f"{what} runs in a mutation or an action, not a query")
        return await body(db.system_writer() if write else db.system)
    database = ctx._executor.database  # an action: no transaction of its own
    if not write:
        async with database.read(system=True) as reader:
            return await body(reader)

    async def run(writer: Any) -> Any:
        return await body(writer.system_writer())

    return await database.transact(run)
