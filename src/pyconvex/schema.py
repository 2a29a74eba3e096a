"""Schemas: which tables exist, what their documents look like, which indexes they have.

>>> from pyconvex import define_schema, define_table, v
>>> schema = define_schema({
...     "apiKeys": define_table({"key": v.string(), "userId": v.string()})
...         .index("by_key", ["key"]).index("by_user", ["userId"]),
... })
>>> schema.tables["apiKeys"].indexes
{'by_key': ('key',), 'by_user': ('userId',)}
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import SchemaValidationError, ValidationError
from .validators import (
    AnyValidator,
    ObjectValidator,
    UnionValidator,
    Validator,
    as_object_validator,
)

TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
INDEX_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
RESERVED_INDEXES = frozenset({"by_id", "by_creation_time"})
MAX_INDEX_FIELDS = 16


def _caller() -> str:
    frame = sys._getframe(2)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def check_table_name(table: str, *, system: bool = False) -> None:
    """Raise ``ValueError`` unless ``table`` is a valid (user or, if allowed, system) table name."""
    if not isinstance(table, str):
        raise ValueError(f"Table name must be a string, not {type(table).__name__}")
    name = table[1:] if system and table.startswith("_") else table
    if not TABLE_NAME.match(name):
        if table.startswith("_"):
            raise ValueError(
                f'Table "{table}" is a system table (names starting with _ are reserved)'
            )
        raise ValueError(
            f'Invalid table name "{table}": use letters, digits and underscores, '
            "starting with a letter, at most 64 characters"
        )


class TableDefinition:
    """One table of a schema: its document validator and its indexes."""

    def __init__(self, document: Validator | None) -> None:
        self.document = document
        self.indexes: dict[str, tuple[str, ...]] = {}
        self.defined_at = _caller()

    def index(self, name: str, fields: Sequence[str]) -> TableDefinition:
        """Add an index; ``_creationTime`` is appended to every index automatically."""
        where = _caller()
        if not isinstance(name, str) or not INDEX_NAME.match(name) or name in RESERVED_INDEXES:
            raise ValueError(
                f"{where}: invalid index name {name!r} (reserved or not an identifier)"
            )
        if name in self.indexes:
            raise ValueError(f"{where}: duplicate index name {name!r}")
        if isinstance(fields, str) or not fields:
            raise ValueError(f"{where}: index {name!r} needs a non-empty list of field names")
        fields = tuple(fields)
        if len(fields) > MAX_INDEX_FIELDS:
            raise ValueError(f"{where}: index {name!r} has more than {MAX_INDEX_FIELDS} fields")
        if len(set(fields)) != len(fields):
            raise ValueError(f"{where}: index {name!r} repeats a field")
        for field in fields:
            if not isinstance(field, str) or not field or field.startswith("$"):
                raise ValueError(f"{where}: index {name!r} has an invalid field {field!r}")
            if field in ("_creationTime", "_id"):
                raise ValueError(
                    f"{where}: index {name!r} must not list {field}: every index ends with "
                    "_creationTime automatically"
                )
            top = field.split(".", 1)[0]
            if isinstance(self.document, ObjectValidator) and top not in self.document.fields:
                raise ValueError(
                    f"{where}: index {name!r} uses field {field!r}, which is not in the table's "
                    "validator"
                )
        self.indexes[name] = fields
        return self


def define_table(document: Mapping[str, Validator] | Validator) -> TableDefinition:
    """A table whose documents match ``document`` (a dict of validators, or an object/union)."""
    if isinstance(document, Validator) and not isinstance(document, ObjectValidator):
        members = document.members if isinstance(document, UnionValidator) else (document,)
        if not all(isinstance(m, (ObjectValidator, AnyValidator)) for m in members):
            raise TypeError("define_table() takes object validators (or a union of them)")
        return TableDefinition(document)
    return TableDefinition(as_object_validator(document))


class SchemaDefinition:
    """The app's schema: tables by name. Documents are validated on every write."""

    def __init__(
        self,
        tables: Mapping[str, TableDefinition],
        *,
        schema_validation: bool = True,
        strict_table_name_types: bool = True,
    ) -> None:
        for name, table in tables.items():
            try:
                check_table_name(name)
            except ValueError as exc:
                raise ValueError(f"{_caller()}: {exc}") from None
            if not isinstance(table, TableDefinition):
                raise TypeError(f'Table "{name}" must be defined with define_table(...)')
        self.tables: dict[str, TableDefinition] = dict(tables)
        self.schema_validation = schema_validation
        self.strict_table_name_types = strict_table_name_types

    def indexes(self, table: str) -> dict[str, tuple[str, ...]]:
        definition = self.tables.get(table)
        return definition.indexes if definition else {}

    def validate_document(self, table: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Return the document's fields, normalised, or raise :class:`SchemaValidationError`."""
        definition = self.tables.get(table)
        if definition is None:
            if self.strict_table_name_types and not table.startswith("_"):
                raise SchemaValidationError(
                    f'Table "{table}" is not in the schema. Add it to schema.py, or pass '
                    "strict_table_name_types=False to define_schema()"
                )
            return fields
        if not self.schema_validation or definition.document is None:
            return fields
        try:
            result: dict[str, Any] = definition.document.validate(fields)
        except ValidationError as exc:
            raise SchemaValidationError(
                f'Failed to insert or update a document in table "{table}" because it does not '
                f"match the schema: {exc}"
            ) from None
        return result


def define_schema(
    tables: Mapping[str, TableDefinition],
    *,
    schema_validation: bool = True,
    strict_table_name_types: bool = True,
) -> SchemaDefinition:
    """The app's schema, in ``convex/schema.py`` as ``schema = define_schema({...})``."""
    return SchemaDefinition(
        tables, schema_validation=schema_validation, strict_table_name_types=strict_table_name_types
    )
