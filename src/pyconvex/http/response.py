"""``Response``: what an HTTP action returns (the Fetch API, with Python names).

>>> Response.json({"status": "ok"}).headers["content-type"]
'application/json'
>>> Response("created", status=201).status
201
>>> Response.redirect("https://example.com/a.png").headers["location"]
'https://example.com/a.png'

``body`` is ``str`` (sent as UTF-8, ``text/plain;charset=UTF-8`` unless a
Content-Type is given), ``bytes``, ``None``, or an async iterator of ``bytes``
or ``str`` chunks, streamed as they come.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

import msgspec
from starlette.datastructures import MutableHeaders

from ..values import plain_json

__all__ = ["Response"]

HeadersInit = Mapping[str, str] | Iterable[tuple[str, str]] | None
Body = str | bytes | AsyncIterable[bytes] | AsyncIterable[str] | None

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TEXT = (b"content-type", b"text/plain;charset=UTF-8")
_JSON = (b"content-type", b"application/json")
_encode_json = msgspec.json.Encoder(enc_hook=plain_json).encode


def _raw(headers: HeadersInit) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    if isinstance(headers, MutableHeaders):
        return list(headers.raw)
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k).lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in pairs]


class Response:
    """An outgoing HTTP response: ``Response(body=None, *, status=200, headers=None)``."""

    __slots__ = ("_headers", "body", "custom_headers", "raw_headers", "status")

    def __init__(
        self, body: Body = None, *, status: int = 200, headers: HeadersInit = None
    ) -> None:
        if not isinstance(status, int) or not 200 <= status <= 599:
            raise ValueError(f"Response status must be an integer from 200 to 599, got {status!r}")
        raw = _raw(headers)
        if isinstance(body, str):
            if not any(k == b"content-type" for k, _ in raw):
                raw.append(_TEXT)
            body = body.encode()
        elif body is not None and not isinstance(body, (bytes, bytearray, memoryview)):
            if not hasattr(body, "__aiter__"):
                raise TypeError(
                    "Response body must be str, bytes, None or an async iterator, "
                    f"not {type(body).__name__}"
                )
        elif isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        self.body: bytes | AsyncIterable[bytes] | AsyncIterable[str] | None = body
        self.status = status
        self.raw_headers = raw
        # Whether the user may have set headers (so the server must look for Content-Length).
        self.custom_headers = headers is not None
        self._headers: MutableHeaders | None = None

    @property
    def headers(self) -> MutableHeaders:
        """Case-insensitive and mutable: ``response.headers["x-id"] = "1"``."""
        if self._headers is None:
            self._headers = MutableHeaders(raw=self.raw_headers)
            self.custom_headers = True
        return self._headers

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: HeadersInit = None) -> Response:
        """A JSON response (``application/json``).

        ``bytes`` values are sent as base64 strings; use ``pyconvex.values.dumps``
        for Convex JSON with ``$integer`` and ``$bytes``.
        """
        try:
            body = _encode_json(data)
        except (TypeError, msgspec.EncodeError) as exc:
            raise TypeError(f"Response.json() cannot encode this value: {exc}") from None
        if headers is None and status == 200 and cls is Response:
            # The common case, built without the checks __init__ makes on arbitrary input.
            response = object.__new__(cls)
            response.body = body
            response.status = 200
            response.raw_headers = [_JSON]
            response.custom_headers = False
            response._headers = None
            return response
        response = cls(body, status=status, headers=headers)
        raw = response.raw_headers
        if not any(k == b"content-type" for k, _ in raw):
            raw.append(_JSON)
        return response

    @classmethod
    def redirect(cls, url: str, status: int = 302) -> Response:
        """A redirect to ``url`` (301, 302, 303, 307 or 308)."""
        if status not in _REDIRECTS:
            raise ValueError(
                f"A redirect status must be one of 301, 302, 303, 307, 308, not {status}"
            )
        return cls(None, status=status, headers=[("location", url)])

    def __repr__(self) -> str:
        return f"<Response {self.status}>"
