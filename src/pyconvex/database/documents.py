"""``ctx.db``: reading and writing documents inside one transaction.

A :class:`DatabaseReader` reads a transaction's snapshot; a :class:`DatabaseWriter`
also buffers writes in it. Every write validates the document (value limits,
then the schema) before anything is buffered; the committer keeps every index of
the table in step with the document when the transaction commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from .. import ids, values
from ..errors import InvalidQueryError, InvalidValueError
from ..schema import check_table_name
from .catalog import Catalog
from .query import QueryInitializer
from .system import SYSTEM_TABLES
from .transaction import Transaction

SYSTEM_FIELDS = ("_id", "_creationTime")
_WRITABLE: set[str] = set()  # user table names seen to be valid


def _is_system(table: str) -> bool:
    return table.startswith("_")


class DatabaseReader:
    """Read access to documents: ``get`` and ``query``.

    doc = await ctx.db.get(item_id)
    new = ctx.db.query("items").with_index("by_status", lambda q: q.eq("status", "new"))
    await new.take(10)
    """

    _sync_facade = True

    def __init__(self, catalog: Catalog, txn: Transaction, *, system: bool = False) -> None:
        self._catalog = catalog
        self._txn = txn
        self._system = system  # may touch system tables (internal callers only)

    def _check_readable(self, table: str) -> None:
        if _is_system(table) and not self._system:
            raise InvalidQueryError(
                f'Table "{table}" is a system table: read it with ctx.db.system.query("{table}")'
            )

    async def get(self, doc_id: str) -> dict[str, Any] | None:
        """The document with this id, or None if there is none."""
        if not ids.is_id(doc_id):
            raise InvalidQueryError(
                f"Invalid argument `id` for `db.get`: {values.display_value(doc_id)} is not an id"
            )
        found = await self._txn.load(doc_id)
        if found is None or (_is_system(found[0]) and not self._system):
            return None
        return found[1]

    def query(self, table: str) -> QueryInitializer:
        """Start a query over ``table`` (in ``_creationTime`` order unless an index is chosen)."""
        self._check_readable(table)
        check_table_name(table, system=self._system)
        return QueryInitializer(self._txn, self._catalog, table, system=self._system)

    def normalize_id(self, table: str, doc_id: str) -> str | None:
        """``doc_id`` if it is an id of ``table``, else None."""
        return doc_id if ids.is_id_of(doc_id, table) else None

    @property
    def system(self) -> DatabaseReader:
        """Read-only access to system tables (``_scheduled_functions``, ``_storage``, ...)."""
        return DatabaseReader(self._catalog, self._txn, system=True)


class DatabaseWriter(DatabaseReader):
    """Read and write access: ``insert``, ``patch``, ``replace``, ``delete``.

    item_id = await ctx.db.insert("items", {"name": "x"})
    await ctx.db.patch(item_id, {"status": "done"})
    """

    @property
    def system(self) -> DatabaseReader:
        # Reads only: user code never writes system tables (internal code uses system=True writers).
        return DatabaseReader(self._catalog, self._txn, system=True)

    def system_writer(self) -> DatabaseWriter:
        """A writer of system tables in this same transaction (pyconvex's own use, not users')."""
        return DatabaseWriter(self._catalog, self._txn, system=True)

    def after_commit(self, hook: Any) -> None:
        """Call ``hook()`` once this transaction has committed (never if it does not).

        Hooks must tolerate running after a savepoint that was rolled back: they are for
        wake-ups and clean-ups that re-check what they act on.
        """
        self._txn.after_commit(hook)

    def notify(self, channel: str) -> None:
        """Wake ``channel``'s listeners in every process once this transaction commits."""
        self._txn.notify(channel)

    def wrote(self, doc_id: str) -> bool:
        """Whether this transaction has written the document ``doc_id`` (so a copy read
        before may be out of date)."""
        return doc_id in self._txn.writes

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested scope whose writes are undone if it raises; the transaction goes on."""
        mark = self._txn.mark()
        try:
            yield
        except BaseException:
            self._txn.rollback(mark)
            raise

    def _check_writable(self, table: str) -> None:
        if table in _WRITABLE:
            return
        if _is_system(table) and not self._system:
            raise InvalidQueryError(
                f'Table "{table}" is a system table: user code cannot write to it'
            )
        check_table_name(table, system=self._system)
        if not _is_system(table) and len(_WRITABLE) < 4096:
            _WRITABLE.add(table)  # a valid user table name stays valid

    def _fields(self, table: str, fields: Any, op: str) -> dict[str, Any]:
        if not isinstance(fields, dict):
            raise InvalidValueError(f"db.{op} takes a dict of fields, not {type(fields).__name__}")
        for name in fields:
            if isinstance(name, str) and name.startswith("_") and name not in SYSTEM_FIELDS:
                raise InvalidValueError(
                    f"Field name {name!r} in table \"{table}\" starts with '_', which is reserved "
                    "for system fields"
                )
        return fields

    def _write(
        self,
        table: str,
        doc: dict[str, Any],
        old: dict[str, Any] | None,
        before: bytes | None,
    ) -> None:
        values.check_value(doc, limits=values.DOCUMENT_LIMITS, what=f'Document in table "{table}"')
        encoded = values.encode(doc)
        if len(encoded) > values.DOCUMENT_LIMITS.max_size:
            raise InvalidValueError(
                f'Document in table "{table}" is {len(encoded)} bytes, over the 1 MiB limit'
            )
        self._txn.put(table, doc["_id"], doc, encoded, old=old, before=before)

    def _validated(self, table: str, fields: dict[str, Any]) -> dict[str, Any]:
        user = (
            {k: v for k, v in fields.items() if k not in SYSTEM_FIELDS}
            if "_id" in fields or "_creationTime" in fields
            else fields
        )
        if _is_system(table):
            definition = SYSTEM_TABLES.get(table)
            if definition is None or definition.document is None:
                return user
            # A system document that does not fit its table is a bug in pyconvex, not user input.
            checked: dict[str, Any] = definition.document.validate(user)
            return checked
        schema = self._catalog.schema
        return schema.validate_document(table, user) if schema is not None else user

    async def insert(self, table: str, fields: dict[str, Any]) -> str:
        """Insert a document and return its new ``_id``."""
        self._check_writable(table)
        fields = self._fields(table, fields, "insert")
        for name in SYSTEM_FIELDS:
            if name in fields:
                raise InvalidValueError(
                    f"db.insert: field {name} is set by the database, not by you"
                )
        body = self._validated(table, fields)
        doc = {"_id": ids.new_id(table), "_creationTime": self._catalog.creation_time(), **body}
        self._write(table, doc, None, None)
        return str(doc["_id"])

    async def restore(self, table: str, doc: dict[str, Any]) -> None:
        """Write a document exactly as exported, ``_id`` and ``_creationTime`` included
        (``pyconvex import``). It is validated like any write; its id must be new."""
        self._check_writable(table)
        doc_id, created = doc.get("_id"), doc.get("_creationTime")
        if not ids.is_id_of(doc_id, table):
            raise InvalidValueError(
                f'{values.display_value(doc_id)} is not an id of table "{table}"'
            )
        if not isinstance(created, float):
            raise InvalidValueError(f"Document {doc_id} has no float _creationTime")
        if await self._txn.load(str(doc_id)) is not None:
            raise InvalidQueryError(f"Document {doc_id} already exists")
        body = self._validated(table, doc)
        self._write(table, {"_id": doc_id, "_creationTime": created, **body}, None, None)

    async def _existing(self, doc_id: str, op: str) -> tuple[str, dict[str, Any], bytes | None]:
        if not ids.is_id(doc_id):
            raise InvalidQueryError(
                f"Invalid argument `id` for `db.{op}`: {values.display_value(doc_id)} is not an id"
            )
        found = await self._txn.load(doc_id)
        if found is None or (_is_system(found[0]) and not self._system):
            raise InvalidQueryError(
                f"Delete on nonexistent document ID {doc_id}"
                if op == "delete"
                else f"Update on nonexistent document ID {doc_id}"
            )
        self._check_writable(found[0])
        return found

    def _check_system_fields(self, old: dict[str, Any], fields: dict[str, Any], op: str) -> None:
        for name in SYSTEM_FIELDS:
            if name in fields and fields[name] != old[name]:
                raise InvalidValueError(f"db.{op}: cannot change the system field {name}")

    async def patch(self, doc_id: str, fields: dict[str, Any]) -> None:
        """Shallow-merge ``fields`` into the document."""
        table, old, before = await self._existing(doc_id, "patch")
        fields = self._fields(table, fields, "patch")
        self._check_system_fields(old, fields, "patch")
        body = self._validated(table, {**old, **fields})
        new = {"_id": old["_id"], "_creationTime": old["_creationTime"], **body}
        self._write(table, new, old, before)

    async def replace(self, doc_id: str, fields: dict[str, Any]) -> None:
        """Replace every field of the document (``_id`` and ``_creationTime`` stay)."""
        table, old, before = await self._existing(doc_id, "replace")
        fields = self._fields(table, fields, "replace")
        self._check_system_fields(old, fields, "replace")
        body = self._validated(table, fields)
        new = {"_id": old["_id"], "_creationTime": old["_creationTime"], **body}
        self._write(table, new, old, before)

    async def delete(self, doc_id: str) -> None:
        """Delete the document."""
        table, old, before = await self._existing(doc_id, "delete")
        self._txn.put(table, doc_id, None, None, old=old, before=before)
