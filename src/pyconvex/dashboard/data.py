"""The Data page: tables, their schema and indexes, and their documents (browse, filter,
open, insert, edit, delete). Every write is an ordinary transaction, validated against
the schema like a mutation's; a rejected one stores nothing and shows the message."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .. import ids, values
from ..errors import PyConvexError
from .web import Dashboard, page_of, pretty_json

PAGE_SIZE = 25
_DONE = {"saved": "Saved.", "inserted": "Inserted.", "deleted": "Deleted."}


def routes() -> list[tuple[str, Any, list[str]]]:
    return [
        ("/data", tables, ["GET"]),
        ("/data/{table}", table_page, ["GET"]),
        ("/data/{table}", insert, ["POST"]),
        ("/data/{table}/{doc_id}", document_page, ["GET"]),
        ("/data/{table}/{doc_id}", save, ["POST"]),
        ("/data/{table}/{doc_id}/delete", delete, ["POST"]),
    ]


def _user_table(name: str) -> bool:
    return bool(name) and not name.startswith("_")


async def _exists(d: Dashboard, table: str) -> bool:
    """A user table that has documents or is in the schema."""
    if not _user_table(table):
        return False
    schema = d.deployment.database.schema
    if schema is not None and table in schema.tables:
        return True
    return table in await d.deployment.database.tables()


async def tables(d: Dashboard, request: Request) -> Response:
    counts = dict(await d.deployment.database.tables())
    schema = d.deployment.database.schema
    for name in schema.tables if schema is not None else ():
        counts.setdefault(name, 0)
    rows = [(name, counts[name]) for name in sorted(counts) if _user_table(name)]
    return d.render(request, "data.html", {"title": "Data", "tables": rows})


def parse_json(text: str, what: str) -> Any:
    """Convex JSON typed into a form (plain JSON integers are numbers, as with curl)."""
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PyConvexError(f"{what} is not valid JSON: {exc}") from None
    try:
        return values.from_convex_json(parsed, numbers="int")
    except (ValueError, RecursionError) as exc:
        raise PyConvexError(f"{what} is not a Convex value: {exc}") from None


def _fields(text: str) -> dict[str, Any]:
    fields = parse_json(text, "The document")
    if not isinstance(fields, dict):
        raise PyConvexError('A document must be a JSON object, e.g. {"name": "x"}')
    return {k: v for k, v in fields.items() if k not in ("_id", "_creationTime")}


async def table_page(
    d: Dashboard,
    request: Request,
    *,
    error: str | None = None,
    new_text: str = "{\n  \n}",
    status: int = 200,
) -> Response:
    table = request.path_params["table"]
    database = d.deployment.database
    if not await _exists(d, table):
        return d.render(request, "missing.html", {"title": "Data", "what": "table"}, status=404)
    query = request.query_params
    field, raw_value = query.get("field", ""), query.get("value", "")
    try:
        value: Any = parse_json(raw_value, "The value")
    except PyConvexError:
        value = raw_value  # typed without quotes: a string
    docs: list[dict[str, Any]] = []
    next_cursor = None
    try:
        async with database.read() as reader:
            q: Any = reader.query(table).order("desc")
            if field:
                q = q.filter(lambda f: f.eq(f.field(field), value))
            docs, next_cursor = await page_of(q, request, PAGE_SIZE)
    except (PyConvexError, ValueError) as exc:
        error = error or str(exc)
    columns: list[str] = []
    for doc in docs:
        columns.extend(k for k in doc if k not in columns)
    schema = database.schema
    definition = schema.tables.get(table) if schema is not None else None
    return d.render(
        request,
        "table.html",
        {
            "title": "Data",
            "table": table,
            "docs": docs,
            "columns": columns,
            "next_cursor": next_cursor,
            "cursor": query.get("cursor"),
            "field": field,
            "value": raw_value,
            "validator": str(definition.document)
            if definition is not None and definition.document is not None
            else None,
            "indexes": database.declared_indexes(table),
            "new_text": new_text,
            "error": error,
            "notice": _DONE.get(query.get("done", "")),
        },
        status=status,
    )


async def insert(d: Dashboard, request: Request) -> Response:
    table = request.path_params["table"]
    text = str((await request.form()).get("document", ""))
    if not _user_table(table):
        return d.render(request, "missing.html", {"title": "Data", "what": "table"}, status=404)
    try:
        fields = _fields(text)
        # A new table is made by its first insert, as in a mutation.
        doc_id = await d.deployment.database.transact(lambda w: w.insert(table, fields))
    except (PyConvexError, ValueError) as exc:
        return await table_page(d, request, error=str(exc), new_text=text, status=400)
    return d.redirect(f"/data/{table}/{doc_id}?done=inserted")


async def document_page(
    d: Dashboard,
    request: Request,
    *,
    error: str | None = None,
    text: str | None = None,
    version: str | None = None,
    status: int = 200,
) -> Response:
    table, doc_id = request.path_params["table"], request.path_params["doc_id"]
    doc = None
    if _user_table(table) and ids.is_id_of(doc_id, table):
        async with d.deployment.database.read() as reader:
            doc = await reader.get(doc_id)
    if doc is None:
        return d.render(request, "missing.html", {"title": "Data", "what": "document"}, status=404)
    editable = _editable(doc)
    return d.render(
        request,
        "document.html",
        {
            "title": "Data",
            "table": table,
            "doc": doc,
            "text": text if text is not None else pretty_json(editable),
            "version": version or _version(doc),
            "error": error,
            "notice": _DONE.get(request.query_params.get("done", "")),
        },
        status=status,
    )


def _editable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("_id", "_creationTime")}


def _version(doc: dict[str, Any]) -> str:
    """A digest of the document as stored: a save checks it still is what the user saw."""
    return hashlib.sha256(values.dumps(_editable(doc), wire=False)).hexdigest()[:32]


async def save(d: Dashboard, request: Request) -> Response:
    table, doc_id = request.path_params["table"], request.path_params["doc_id"]
    form = await request.form()
    text, version = str(form.get("document", "")), str(form.get("version", ""))
    if not (_user_table(table) and ids.is_id_of(doc_id, table)):
        return d.render(request, "missing.html", {"title": "Data", "what": "document"}, status=404)

    async def replace(writer: Any) -> None:
        current = await writer.get(doc_id)
        if current is None:
            raise PyConvexError("This document was deleted meanwhile")
        if _version(current) != version:
            # Saving would silently undo the other change: the text shown is out of date.
            raise PyConvexError(
                "This document was changed since you opened it: reload the page to see "
                "the new version, then edit that"
            )
        await writer.replace(doc_id, fields)

    try:
        fields = _fields(text)
        await d.deployment.database.transact(replace)
    except (PyConvexError, ValueError) as exc:
        return await document_page(
            d, request, error=str(exc), text=text, version=version, status=400
        )
    return d.redirect(f"/data/{table}/{doc_id}?done=saved")


async def delete(d: Dashboard, request: Request) -> Response:
    table, doc_id = request.path_params["table"], request.path_params["doc_id"]
    if _user_table(table) and ids.is_id_of(doc_id, table):

        async def delete_if_there(writer: Any) -> None:
            if await writer.get(doc_id) is not None:  # deleted already: a second click, a tab
                await writer.delete(doc_id)

        await d.deployment.database.transact(delete_if_there)
    return d.redirect(f"/data/{table}?done=deleted")
