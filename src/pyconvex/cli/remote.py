"""CLI commands against a running deployment (``--url URL``), through its API port.

The admin key comes from ``--admin-key``, ``PYCONVEX_ADMIN_KEY``, or the app
folder's ``.pyconvex/admin_key`` (what ``pyconvex dev`` made), in that order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from ..deployment import STATE_DIR
from ..functions.logs import LogLine
from ..server.admin_key import admin_key
from ..values import from_convex_json


class RemoteError(Exception):
    """The deployment answered with an error (the message says what and why)."""


class Remote:
    def __init__(self, url: str, app_dir: str, key: str | None) -> None:
        self.url = url.rstrip("/")
        key = key or admin_key(Path(app_dir).resolve() / STATE_DIR, create=False)
        if not key:
            raise RemoteError(
                "No admin key: pass --admin-key, set PYCONVEX_ADMIN_KEY, or run from the app folder"
            )
        self._client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Convex {key}"}, timeout=None
        )

    def _json(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            reason = body.get("message") if isinstance(body, dict) else response.text
            raise RemoteError(f"{self.url} answered {response.status_code}: {reason}")
        return body

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._json(self._client.request(method, path, **kwargs))
        except httpx.TransportError as exc:
            raise RemoteError(f"Cannot reach {self.url}: {exc}") from None

    def run(self, function: str, args: Any) -> dict[str, Any]:
        module, _, name = function.rpartition(":")
        if not module or not name:
            raise RemoteError(f"{function!r} is not a function path such as items:create")
        result: dict[str, Any] = self._request(
            "POST",
            f"/api/run/{module}/{name}",
            json={"args": args, "format": "convex_encoded_json"},
        )
        return result

    def env_list(self) -> dict[str, str]:
        variables: dict[str, str] = self._request("GET", "/api/env")["variables"]
        return variables

    def env_set(self, name: str, value: str) -> None:
        self._request("PUT", f"/api/env/{name}", json={"value": value})

    def env_remove(self, name: str) -> bool:
        return bool(self._request("DELETE", f"/api/env/{name}")["removed"])

    def tables(self) -> dict[str, int]:
        tables: dict[str, int] = self._request("GET", "/api/data")["tables"]
        return tables

    def documents(self, table: str, limit: int, order: str) -> list[dict[str, Any]]:
        found = self._request("GET", f"/api/data/{table}", params={"limit": limit, "order": order})
        return [from_convex_json(doc) for doc in found["documents"]]  # type: ignore[misc]

    def crons(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._request("GET", "/api/crons")["crons"]
        return found

    def webhooks_op(self, request: dict[str, Any]) -> dict[str, Any]:
        """One ``pyconvex webhooks`` operation (:mod:`pyconvex.webhooks.admin`)."""
        answer: dict[str, Any] = self._request("POST", "/api/webhooks/op", json=request)
        return answer

    def logs(self, *, follow: bool) -> Iterator[LogLine]:
        params = {"follow": "1"} if follow else {}
        try:
            with self._client.stream("GET", "/api/logs", params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    self._json(response)
                for raw in response.iter_lines():
                    if raw:
                        yield LogLine.from_json(json.loads(raw))
        except httpx.TransportError as exc:
            raise RemoteError(f"Cannot reach {self.url}: {exc}") from None
