"""``ctx.db``: reading and writing documents inside one transaction.

A :class:`DatabaseReader` wraps a read snapshot; a :class:`DatabaseWriter`
wraps a serializable write transaction. Every write validates the document
(value limits, then the schema) before anything is stored, and keeps every
index of the table in step with the document.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from .. import ids, values
from ..errors import InvalidQueryError, InvalidValueError
from ..persistence import ReadTransaction, WriteTransaction
from ..schema import check_table_name
from . import keys
from .indexes import CREATION_INDEX, IndexInfo
from .query import QueryInitializer
from .system import SYSTEM_TABLES

if TYPE_CHECKING:
    from . import Database

SYSTEM_FIELDS = ("_id", "_creationTime")


def _is_system(table: str) -> bool:
    return table.startswith("_")


class DatabaseReader:
    """Read access to documents: ``get`` and ``query``.

    doc = await ctx.db.get(item_id)
    new = ctx.db.query("items").with_index("by_status", lambda q: q.eq("status", "new"))
    await new.take(10)
    """

    _sync_facade = True

    def __init__(self, database: Database, txn: ReadTransaction, *, system: bool = False) -> None:
        self._database = database
        self._txn = txn
        self._system = system  # may touch system tables (internal callers only)

    # -- internals shared with queries and writers ------------------------------------

    def _check_readable(self, table: str) -> None:
        if _is_system(table) and not self._system:
            raise InvalidQueryError(
                f'Table "{table}" is a system table: read it with ctx.db.system.query("{table}")'
            )

    def _index_fields(self, table: str, name: str) -> tuple[str, ...]:
        """The declared fields of an index (``InvalidQueryError`` if there is no such index)."""
        if name == CREATION_INDEX:
            return ()
        declared = self._database.declared_indexes(table)
        if name not in declared:
            raise InvalidQueryError(
                f'Index "{table}.{name}" not found. Declare it in schema.py with '
                f'define_table(...).index("{name}", [...]).'
            )
        return declared[name]

    async def _stored_index(
        self, table: str, name: str, fields: tuple[str, ...]
    ) -> IndexInfo | None:
        """The stored index, or None while the table has no documents."""
        return await self._database.registry.find(self._txn, table, name, fields)

    def _decode(self, raw: bytes) -> dict[str, Any]:
        doc: dict[str, Any] = values.decode(raw)
        return doc

    async def _load(self, doc_id: str) -> tuple[str, dict[str, Any]] | None:
        row = await self._txn.get(doc_id)
        if row is None:
            return None
        return row[0], self._decode(row[1])

    # -- public API --------------------------------------------------------------------

    async def get(self, doc_id: str) -> dict[str, Any] | None:
        """The document with this id, or None if there is none."""
        if not ids.is_id(doc_id):
            raise InvalidQueryError(
                f"Invalid argument `id` for `db.get`: {values.display_value(doc_id)} is not an id"
            )
        found = await self._load(doc_id)
        if found is None or (_is_system(found[0]) and not self._system):
            return None
        return found[1]

    def query(self, table: str) -> QueryInitializer:
        """Start a query over ``table`` (in ``_creationTime`` order unless an index is chosen)."""
        self._check_readable(table)
        check_table_name(table, system=self._system)
        return QueryInitializer(self, table)

    def normalize_id(self, table: str, doc_id: str) -> str | None:
        """``doc_id`` if it is an id of ``table``, else None."""
        return doc_id if ids.is_id_of(doc_id, table) else None

    @property
    def system(self) -> DatabaseReader:
        """Read-only access to system tables (``_scheduled_functions``, ``_storage``, ...)."""
        return DatabaseReader(self._database, self._txn, system=True)


class DatabaseWriter(DatabaseReader):
    """Read and write access: ``insert``, ``patch``, ``replace``, ``delete``.

    item_id = await ctx.db.insert("items", {"name": "x"})
    await ctx.db.patch(item_id, {"status": "done"})
    """

    _txn: WriteTransaction

    def __init__(self, database: Database, txn: WriteTransaction, *, system: bool = False) -> None:
        super().__init__(database, txn, system=system)

    @property
    def system(self) -> DatabaseReader:
        # Reads only: user code never writes system tables (internal code uses system=True writers).
        return DatabaseReader(self._database, self._txn, system=True)

    def system_writer(self) -> DatabaseWriter:
        """A writer of system tables in this same transaction (pyconvex's own use, not users')."""
        return DatabaseWriter(self._database, self._txn, system=True)

    async def lock(self, doc_id: str) -> dict[str, Any] | None:
        """The document, held by this transaction until it ends; None at once if another
        writer holds it now (``FOR UPDATE SKIP LOCKED``), or if it is gone.
        For pyconvex's own workers (a system writer), not user code."""
        if not self._system:
            raise InvalidQueryError("lock() is for pyconvex's own workers")
        row = (await self._txn.lock([doc_id])).get(doc_id)
        return None if row is None else self._decode(row[1])

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested scope whose writes are undone if it raises; the transaction goes on."""
        try:
            async with self._txn.savepoint():
                yield
        except BaseException:
            # An index allocated inside was rolled back too: forget the cached registry.
            if self._database.registry_changed(self._txn):
                self._database.registry.invalidate()
            raise

    def _check_writable(self, table: str) -> None:
        if _is_system(table) and not self._system:
            raise InvalidQueryError(
                f'Table "{table}" is a system table: user code cannot write to it'
            )
        check_table_name(table, system=self._system)

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

    async def _indexes(self, table: str) -> list[IndexInfo]:
        registry = self._database.registry
        cached = registry.table_indexes.get(table)
        if cached is not None:
            return cached
        out = []
        for name, fields in {CREATION_INDEX: (), **self._database.declared_indexes(table)}.items():
            info, created = await registry.ensure(self._txn, table, name, fields)
            if created:
                self._database.note_registry_change(self._txn)
            out.append(info)
        # Cleared with the rest of the registry (a rollback that allocated, a schema change).
        registry.table_indexes[table] = out
        return out

    async def _write(self, table: str, doc: dict[str, Any], old: dict[str, Any] | None) -> None:
        values.check_value(doc, limits=values.DOCUMENT_LIMITS, what=f'Document in table "{table}"')
        encoded = values.encode(doc)
        if len(encoded) > values.DOCUMENT_LIMITS.max_size:
            raise InvalidValueError(
                f'Document in table "{table}" is {len(encoded)} bytes, over the 1 MiB limit'
            )
        txn = self._txn
        doc_id = doc["_id"]
        await txn.put(doc_id, table, encoded)
        tail = keys.identity_key(doc)  # the same for every index, and unchanged by a patch
        for index in await self._indexes(table):
            fields = index.fields
            new_key = keys.fields_key(doc, fields) + tail if fields else tail
            if old is not None:
                if not fields:
                    continue  # the creation-time index: its key cannot change
                old_key = keys.fields_key(old, fields) + tail
                if old_key == new_key:
                    continue
                await txn.delete_index(index.id, old_key)
            await txn.put_index(index.id, new_key, doc_id)

    def _validated(self, table: str, fields: dict[str, Any]) -> dict[str, Any]:
        user = {k: v for k, v in fields.items() if k not in SYSTEM_FIELDS}
        if _is_system(table):
            definition = SYSTEM_TABLES.get(table)
            if definition is None or definition.document is None:
                return user
            # A system document that does not fit its table is a bug in pyconvex, not user input.
            checked: dict[str, Any] = definition.document.validate(user)
            return checked
        schema = self._database.schema
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
        doc = {"_id": ids.new_id(table), "_creationTime": self._database.creation_time(), **body}
        await self._write(table, doc, None)
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
        if await self._txn.get(str(doc_id)) is not None:
            raise InvalidQueryError(f"Document {doc_id} already exists")
        body = self._validated(table, doc)
        await self._write(table, {"_id": doc_id, "_creationTime": created, **body}, None)

    async def _existing(self, doc_id: str, op: str) -> tuple[str, dict[str, Any]]:
        if not ids.is_id(doc_id):
            raise InvalidQueryError(
                f"Invalid argument `id` for `db.{op}`: {values.display_value(doc_id)} is not an id"
            )
        found = await self._load(doc_id)
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
        table, old = await self._existing(doc_id, "patch")
        fields = self._fields(table, fields, "patch")
        self._check_system_fields(old, fields, "patch")
        body = self._validated(table, {**old, **fields})
        await self._write(
            table, {"_id": old["_id"], "_creationTime": old["_creationTime"], **body}, old
        )

    async def replace(self, doc_id: str, fields: dict[str, Any]) -> None:
        """Replace every field of the document (``_id`` and ``_creationTime`` stay)."""
        table, old = await self._existing(doc_id, "replace")
        fields = self._fields(table, fields, "replace")
        self._check_system_fields(old, fields, "replace")
        body = self._validated(table, fields)
        await self._write(
            table, {"_id": old["_id"], "_creationTime": old["_creationTime"], **body}, old
        )

    async def delete(self, doc_id: str) -> None:
        """Delete the document."""
        table, old = await self._existing(doc_id, "delete")
        txn = self._txn
        for index in await self._indexes(table):
            await txn.delete_index(index.id, index.key(old))
        await txn.delete(doc_id)
