"""ASGI types and the few send helpers both apps share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from ..values import plain_json

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_TYPE = (b"content-type", b"application/json")
TEXT_TYPE = (b"content-type", b"text/plain;charset=UTF-8")
encode_json = msgspec.json.Encoder(enc_hook=plain_json).encode
_NO_CONTENT = frozenset({204, 304})


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    head: bool = False,
) -> None:
    """A whole response in two messages (HEAD: the headers of the GET, no body)."""
    if status in _NO_CONTENT:  # a Content-Length here is a protocol error (RFC 9110 8.6)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_json(send: Send, status: int, data: Any, *, head: bool = False) -> None:
    await send_bytes(send, status, encode_json(data), [JSON_TYPE], head=head)


async def send_text(
    send: Send,
    status: int,
    text: str,
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    head: bool = False,
) -> None:
    await send_bytes(send, status, text.encode(), [TEXT_TYPE, *(extra or [])], head=head)


def dashboard_path(path: str) -> bool:
    """Whether an API-port path is the dashboard's (``/dashboard`` and below)."""
    return path.startswith("/dashboard") and (len(path) == 10 or path[10] == "/")


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a (lower-case) request header."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def send_unavailable(send: Send, exc: BaseException, *, head: bool = False) -> None:
    """503 for a database that cannot be reached: the client may simply try again."""
    body = encode_json({"code": "ServiceUnavailable", "message": str(exc)})
    await send_bytes(send, 503, body, [JSON_TYPE, (b"retry-after", b"1")], head=head)
