"""What the database knows of its tables: the schema, the system tables, their indexes.

Shared by the readers and writers of ``ctx.db`` (which indexes a table declares, how
to validate its documents) and by the committer (which index entries a write makes).
"""

from __future__ import annotations

import time

from ..errors import InvalidQueryError
from ..schema import SchemaDefinition
from .indexes import CREATION_INDEX, IndexRegistry
from .system import SYSTEM_TABLES


class Catalog:
    """The schema, and the stored numbers of the indexes it declares."""

    def __init__(self, schema: SchemaDefinition | None = None) -> None:
        self._schema = schema
        self.registry = IndexRegistry()
        self._last_creation_time = 0.0

    @property
    def schema(self) -> SchemaDefinition | None:
        return self._schema

    @schema.setter
    def schema(self, schema: SchemaDefinition | None) -> None:
        self._schema = schema
        self.registry.table_indexes = {}  # the declared indexes may differ now
        self.registry.generation += 1

    def declared_indexes(self, table: str) -> dict[str, tuple[str, ...]]:
        if table.startswith("_"):
            definition = SYSTEM_TABLES.get(table)
            return definition.indexes if definition is not None else {}
        return self._schema.indexes(table) if self._schema is not None else {}

    def index_fields(self, table: str, name: str) -> tuple[str, ...]:
        """The declared fields of an index (``InvalidQueryError`` if there is no such index)."""
        if name == CREATION_INDEX:
            return ()
        declared = self.declared_indexes(table)
        if name not in declared:
            raise InvalidQueryError(
                f'Index "{table}.{name}" not found. Declare it in schema.py with '
                f'define_table(...).index("{name}", [...]).'
            )
        return declared[name]

    def creation_time(self) -> float:
        """Milliseconds since the epoch, strictly increasing within this process (every
        write runs on the event loop's thread: no lock needed)."""
        now = time.time() * 1000.0
        last = self._last_creation_time
        if now <= last:
            now = last + 0.001
        self._last_creation_time = now
        return now
