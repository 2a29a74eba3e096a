"""The Files page: stored files (list, upload, download, delete)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from .. import ids
from ..database.system import STORAGE
from ..errors import PyConvexError
from .web import Dashboard, page_of

SHOWN = 50
_DONE = {"uploaded": "Uploaded.", "deleted": "Deleted."}


def routes() -> list[tuple[str, Any, list[str]]]:
    return [
        ("/files", page, ["GET"]),
        ("/files/upload", upload, ["POST"]),
        ("/files/{storage_id}/delete", delete, ["POST"]),
    ]


async def page(
    d: Dashboard, request: Request, *, error: str | None = None, status: int = 200
) -> Response:
    rows: list[dict[str, Any]] = []
    next_cursor = None
    try:
        async with d.deployment.database.read(system=True) as reader:
            rows, next_cursor = await page_of(reader.query(STORAGE).order("desc"), request, SHOWN)
    except PyConvexError as exc:
        error = error or str(exc)
    files = d.deployment.files
    listed = [
        {
            **files.metadata(row),
            "id": row["_id"],
            "created": row["_creationTime"],
            "url": files.url(row["_id"]),
        }
        for row in rows
    ]
    return d.render(
        request,
        "files.html",
        {
            "title": "Files",
            "files": listed,
            "next_cursor": next_cursor,
            "cursor": request.query_params.get("cursor"),
            "error": error,
            "notice": _DONE.get(request.query_params.get("done", "")),
        },
        status=status,
    )


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(1024 * 1024):
        yield chunk


async def upload(d: Dashboard, request: Request) -> Response:
    chosen = (await request.form()).get("file")
    if not isinstance(chosen, UploadFile) or not chosen.filename:
        return await page(d, request, error="Choose a file to upload", status=400)
    files = d.deployment.files
    try:
        await files.store(_chunks(chosen), chosen.content_type or None, max_size=files.max_upload)
    finally:
        await request.close()  # the form's spooled temporary file, now rather than at GC
    return d.redirect("/files?done=uploaded")


async def delete(d: Dashboard, request: Request) -> Response:
    storage_id = request.path_params["storage_id"]
    if ids.is_id_of(storage_id, STORAGE):
        await d.deployment.files.delete(storage_id)
    return d.redirect("/files?done=deleted")
