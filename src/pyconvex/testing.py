"""Testing an app: a whole backend in your test process.

    async def test_create():
        async with ConvexTest("path/to/app") as t:
            item_id = await t.mutation(internal.items.create, {"name": "x"})
            assert await t.query(api.items.count) == 1
            assert await t.run(lambda ctx: ctx.db.get(item_id)) is not None

HTTP actions answer ``await t.fetch(path, method=..., headers=..., body=...)``.
Each ``ConvexTest`` gets its own SQLite database in a temporary folder
(in memory on ``/dev/shm`` where that exists), deleted at ``close()``.
Public and internal functions are both callable.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from .deployment import DEFAULT_FUNCTIONS_DIR, Deployment
from .functions import Auth
from .functions.define import Kind
from .functions.logs import LogLine, install_capture
from .server import Backend


def _scratch_root() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


class ConvexTest:
    """An in-process backend for one app, with a fresh database."""

    def __init__(
        self,
        app_dir: str | os.PathLike[str],
        *,
        functions_dir: str = DEFAULT_FUNCTIONS_DIR,
        database_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        if database_path is None:
            self._scratch = tempfile.TemporaryDirectory(
                prefix="pyconvex-test-", dir=_scratch_root()
            )
            database_path = Path(self._scratch.name) / "data.sqlite3"
        self.deployment = Deployment(
            app_dir,
            database_url="sqlite:///" + str(Path(database_path).resolve()),
            functions_dir=functions_dir,
            storage_url=(Path(database_path).resolve().parent / "storage").as_uri(),
        )
        self._started = False
        self._identity: Any = None
        self._backend: Backend | None = None
        #: Every log line the app's functions and HTTP actions wrote, in order.
        self.logs: list[LogLine] = []
        self.deployment.log_sinks.append(self.logs.extend)

    async def start(self) -> ConvexTest:
        if not self._started:
            install_capture()
            await self.deployment.start()
            self._started = True
        return self

    async def close(self) -> None:
        if self._started:
            await self.deployment.close()
            self._started = False
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    async def __aenter__(self) -> ConvexTest:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(self, kind: Kind, ref: Any, args: dict[str, Any] | None) -> Any:
        await self.start()
        return await self.deployment.executor.run(
            ref,
            args,
            kind=kind,
            auth=Auth(self._identity),
        )

    async def query(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        """Run a query (public or internal)."""
        return await self._run("query", ref, args)

    async def mutation(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        """Run a mutation (public or internal) in its own transaction."""
        return await self._run("mutation", ref, args)

    async def action(self, ref: Any, args: dict[str, Any] | None = None) -> Any:
        """Run an action (public or internal)."""
        return await self._run("action", ref, args)

    async def run(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(ctx)`` with a mutation ``ctx`` (``ctx.db`` readable and writable)."""
        await self.start()
        return await self.deployment.executor.run_in_mutation(fn, auth=Auth(self._identity))

    async def fetch(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: str | bytes | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send a request to the app's HTTP actions, in process, and return the response.

            response = await t.fetch("/api/items", method="POST", json={"name": "x"})
            assert response.status_code == 201 and response.json()["name"] == "x"

        The request goes through the same ASGI app as in production: routing,
        404/405, body limits and the 500 error shape are all the real ones.
        """
        await self.start()
        if self._backend is None:
            self._backend = Backend(self.deployment, key=secrets.token_urlsafe(16))
        transport = httpx.ASGITransport(app=self._backend.site)
        async with httpx.AsyncClient(
            transport=transport, base_url=self.deployment.site_url
        ) as client:
            return await client.request(method, path, headers=headers, content=body, json=json)
