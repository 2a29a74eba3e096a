"""Serving stored files and taking uploads, on the API port.

    GET|HEAD /api/storage/<storage id>     the file: Content-Type, Content-Length, ETag,
                                           Accept-Ranges, one Range (206, or 416);
                                           nosniff, sandboxed; a download unless a
                                           plainly safe type (images, text, audio, video)
    POST /api/storage/upload?token=...     raw bytes -> {"storageId": ...}

A malformed id is a 400, an unknown one a 404; the id only ever selects a
``_storage`` row, whose blob key pyconvex made, so no request can name a path.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import BadRequestError
from ..http.request import QueryParams, Request
from ..storage import BlobTooLarge, FileStorage, UploadRefused
from ..storage.service import is_storage_id
from .asgi import Receive, Scope, Send, header, send_json, send_text

if TYPE_CHECKING:
    from .backend import Backend

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
# No file is this large: a longer number is refused unread (int() gives up at 4,300 digits).
_MAX_DIGITS = 19
# Stored files share the API port's origin with the dashboard: one a browser opened as a page
# could act as a signed-in admin. Browsers are lenient with Content-Type ("text/plain,
# text/html" is HTML to Chromium), so only a single, well-formed type from this list opens
# inline; anything else is a download. Every file is sandboxed (no script, an opaque origin)
# either way.
_INLINE = frozenset({
    "text/plain", "text/csv", "application/json", "application/octet-stream",
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
    "image/x-icon", "image/vnd.microsoft.icon",
})  # fmt: skip
_INLINE_PREFIXES = ("audio/", "video/")
_TOKEN = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")


def _safety_headers(content_type: str) -> list[tuple[bytes, bytes]]:
    """``nosniff`` and a sandbox always; a download unless the type is a safe one, named
    plainly (API.md section 20)."""
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", b"sandbox"),
    ]
    essence = content_type.split(";", 1)[0].strip().lower()
    plain = "," not in content_type and _TOKEN.match(essence) is not None
    if not (plain and (essence in _INLINE or essence.startswith(_INLINE_PREFIXES))):
        headers.append((b"content-disposition", b"attachment"))
    return headers


def _range(value: bytes | None, size: int) -> tuple[int, int] | str | None:
    """(start, end exclusive) of a single satisfiable range, None to send it all, or
    "unsatisfiable". Several ranges, or a syntax we do not know, are ignored (RFC 9110 14.2)."""
    if value is None:
        return None
    found = _RANGE.match(value.decode("latin-1").strip())
    if found is None:
        return None
    first, last = found.group(1), found.group(2)
    if not first and not last:
        return None
    # Leading zeros do not make a number bigger, but int() refuses past 4,300 digits.
    first = first.lstrip("0") or ("0" if first else "")
    last = last.lstrip("0") or ("0" if last else "")
    if len(first) > _MAX_DIGITS or len(last) > _MAX_DIGITS:
        return "unsatisfiable"
    if not first:  # the last N bytes
        count = int(last)
        if count == 0:
            return "unsatisfiable"
        return max(size - count, 0), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end


async def serve_file(files: FileStorage, scope: Scope, send: Send, storage_id: str) -> None:
    head = scope["method"] == "HEAD"
    if not is_storage_id(storage_id):
        await send_json(
            send,
            400,
            {"code": "InvalidStorageId", "message": f"{storage_id[:64]!r} is not a storage id"},
            head=head,
        )
        return
    row = await files.read_row(storage_id)
    if row is None:
        await send_json(
            send, 404, {"code": "NotFound", "message": "No file with this storage id"}, head=head
        )
        return
    size: int = row["size"]
    etag = f'"{row["sha256"]}"'.encode()
    content_type: str = row.get("content_type") or "application/octet-stream"
    safety = _safety_headers(content_type)
    common: list[tuple[bytes, bytes]] = [
        (b"content-type", content_type.encode("latin-1", "replace")),
        (b"etag", etag),
        (b"accept-ranges", b"bytes"),
        (b"cache-control", b"private, max-age=2592000, immutable"),
        *safety,
    ]
    if_none_match = header(scope, b"if-none-match")
    if if_none_match is not None and etag in [v.strip() for v in if_none_match.split(b",")]:
        await send({"type": "http.response.start", "status": 304, "headers": common})
        await send({"type": "http.response.body", "body": b""})
        return
    wanted = _range(header(scope, b"range"), size)
    if wanted == "unsatisfiable":
        # The body is this text, not the file: its type is text/plain, once.
        headers = [(b"accept-ranges", b"bytes"), *safety]
        headers.append((b"content-range", f"bytes */{size}".encode()))
        await send_text(send, 416, "Range Not Satisfiable", headers, head=head)
        return
    status, start, end = 200, 0, size
    if isinstance(wanted, tuple):
        status, (start, end) = 206, wanted
        common.append((b"content-range", f"bytes {start}-{end - 1}/{size}".encode()))
    common.append((b"content-length", str(end - start).encode()))
    await send({"type": "http.response.start", "status": status, "headers": common})
    if not head and end > start:
        async for chunk in files.blobs.read(row["blob"], start, end):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _over(length: bytes | None, limit: int) -> bool:
    """Whether a ``Content-Length`` says the body is over ``limit`` bytes."""
    return length is not None and length.isdigit() and (len(length) > 18 or int(length) > limit)


async def take_upload(backend: Backend, scope: Scope, receive: Receive, send: Send) -> None:
    files = backend.deployment.files
    token = QueryParams(scope.get("query_string", b"")).get("token")
    try:
        await files.check_token(token)  # before reading a byte of the body
        # Refused from the header alone: neither side waits for a body that cannot fit.
        if _over(header(scope, b"content-length"), files.max_upload):
            raise BlobTooLarge(files.max_upload)
        request = Request(scope, receive, max_body=files.max_upload)
        content_type = request.headers.get("content-type") or None
        storage_id = await files.upload(token, request.stream(), content_type)  # type: ignore[arg-type]
    except UploadRefused as exc:
        await send_json(send, exc.status, {"code": "UploadRefused", "message": str(exc)})
        return
    except BlobTooLarge as exc:
        await send_json(send, 413, {"code": "PayloadTooLarge", "message": str(exc)})
        return
    except BadRequestError as exc:
        await send_json(send, exc.status, {"code": exc.code, "message": str(exc)})
        return
    await send_json(send, 200, {"storageId": storage_id})
