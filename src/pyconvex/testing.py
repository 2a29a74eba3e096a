"""Testing an app: a whole backend in your test process.

    async def test_create():
        async with ConvexTest("path/to/app") as t:
            item_id = await t.mutation(internal.items.create, {"name": "x"})
            assert await t.query(api.items.count) == 1
            assert await t.run(lambda ctx: ctx.db.get(item_id)) is not None

HTTP actions answer ``await t.fetch(path, method=..., headers=..., body=...)``.
``t.with_identity(name="Ada")`` is the same backend as a signed-in user.
Scheduled functions run when you say so: ``await t.finish_scheduled_functions()``,
with time moved by ``t.clock.advance(seconds)``.
Each ``ConvexTest`` gets its own SQLite database in a temporary folder
(in memory on ``/dev/shm`` where that exists), deleted at ``close()``.
Public and internal functions are both callable.
"""

from __future__ import annotations

import copy
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from .auth import UserIdentity
from .deployment import DEFAULT_FUNCTIONS_DIR, Deployment
from .functions import Auth
from .functions.define import Kind
from .functions.logs import LogLine, install_capture
from .server import Backend
from .webhooks.signing import SignedRequest, sign_webhook

__all__ = ["Clock", "ConvexTest", "SignedRequest", "UserIdentity", "sign_webhook"]


def _scratch_root() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


class Clock:
    """The time the scheduler sees in a ``ConvexTest``: it moves only when you move it.

    >>> clock = Clock(1000.0)
    >>> clock.advance(60); clock.now()
    1060.0
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("A clock only moves forward")
        self._now += seconds

    def set(self, when: float) -> None:
        self._now = max(self._now, float(when))


class ConvexTest:
    """An in-process backend for one app, with a fresh database."""

    def __init__(
        self,
        app_dir: str | os.PathLike[str],
        *,
        functions_dir: str = DEFAULT_FUNCTIONS_DIR,
        database_path: str | os.PathLike[str] | None = None,
        database_url: str | None = None,
    ) -> None:
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        if database_path is None:
            self._scratch = tempfile.TemporaryDirectory(
                prefix="pyconvex-test-", dir=_scratch_root()
            )
            database_path = Path(self._scratch.name) / "data.sqlite3"
        self.deployment = Deployment(
            app_dir,
            database_url=database_url or "sqlite:///" + str(Path(database_path).resolve()),
            functions_dir=functions_dir,
            storage_url=(Path(database_path).resolve().parent / "storage").as_uri(),
        )
        self._started = False
        self._identity: UserIdentity | None = None
        self._root: ConvexTest | None = None  # set on with_identity views
        #: The scheduler's clock: ``t.clock.advance(60)`` makes jobs 60 s out due.
        self.clock = Clock()
        self.deployment.scheduler.clock = self.clock.now
        self._backend: Backend | None = None
        #: Every log line the app's functions and HTTP actions wrote, in order.
        self.logs: list[LogLine] = []
        self.deployment.log_sinks.append(self.logs.extend)

    def with_identity(self, identity: UserIdentity | None = None, /, **fields: Any) -> ConvexTest:
        """This backend, seen by a signed-in user: functions and HTTP actions get the identity.

            as_ada = t.with_identity(name="Ada", email="ada@example.com", org="acme")
            await as_ada.mutation(api.notes.add, {"text": "hi"})   # ctx.auth sees Ada
            await t.query(api.notes.mine)                          # t itself stays anonymous

        Keywords are :class:`UserIdentity` fields or custom claims; ``subject``
        defaults to a fresh UUID and ``issuer`` to ``https://convex.test``. Pass
        a ``UserIdentity`` instead to choose every field. The view shares the
        database, clock and logs; closing ``t`` closes it too.
        """
        view = copy.copy(self)
        view._identity = identity if identity is not None else UserIdentity.for_test(**fields)
        view._backend = None
        view._root = self._root or self
        return view

    async def start(self) -> ConvexTest:
        if self._root is not None:
            await self._root.start()
            return self
        if not self._started:
            install_capture()
            await self.deployment.start()
            self._started = True
        return self

    async def close(self) -> None:
        if self._root is not None:
            return  # a with_identity view: the backend is its root's to close
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
            if self._identity is not None:
                self._backend.identity = Auth(self._identity)
        transport = httpx.ASGITransport(app=self._backend.site)
        async with httpx.AsyncClient(
            transport=transport, base_url=self.deployment.site_url
        ) as client:
            return await client.request(method, path, headers=headers, content=body, json=json)

    async def finish_scheduled_functions(self, *, max_rounds: int = 10_000) -> int:
        """Run every job due by ``t.clock``, and the due jobs those schedule, until none is left.

            await t.mutation(api.orders.place, {...})        # schedules a follow-up with delay 0
            await t.finish_scheduled_functions()
            t.clock.advance(3600)                            # an hour later...
            await t.finish_scheduled_functions()             # ...the reminders run

        Recorded webhook events, work pool items and cron runs due by then are processed
        too. Returns how many ran. Due mutations run one after another, in scheduled order;
        due actions run side by side, and are waited for.
        """
        await self.start()
        scheduler = self.deployment.scheduler
        ran = 0
        for _ in range(max_rounds):
            taken = await scheduler.run_queues(self.clock.now(), 1000)
            await scheduler.settle()  # actions run on their own tasks
            if not taken:
                return ran
            ran += taken
        raise RuntimeError(
            f"Scheduled functions were still due after {max_rounds} rounds: does a job keep "
            "scheduling itself with no delay? (A round runs what is due within each work "
            "pool's max_parallelism: for a longer backlog, pass a larger max_rounds.)"
        )

    async def finish_all_scheduled_functions(self, *, max_rounds: int = 100) -> int:
        """Like :meth:`finish_scheduled_functions`, moving the clock to each later job too.
        Cron jobs come round forever, so only their runs already due are run: to move
        through time with them, use :meth:`advance`."""
        ran = 0
        scheduler = self.deployment.scheduler
        for _ in range(max_rounds):
            ran += await self.finish_scheduled_functions(max_rounds=max_rounds)
            upcoming = await scheduler.next_due(without=self.deployment.crons)
            if upcoming is None:
                return ran
            self.clock.set(upcoming)
        raise RuntimeError(f"Scheduled functions were still pending after {max_rounds} rounds")

    async def advance(self, seconds: float) -> int:
        """Move ``t.clock`` forward by ``seconds``, running on the way whatever falls due
        (scheduled jobs, webhook events, cron runs), each at its own time; how many ran.

            await t.advance(3 * 3600)   # an hourly cron job runs three times
        """
        await self.start()
        target = self.clock.now() + seconds
        scheduler = self.deployment.scheduler
        ran = await self.finish_scheduled_functions()
        while (upcoming := await scheduler.next_due()) is not None and upcoming <= target:
            self.clock.set(upcoming)
            ran += await self.finish_scheduled_functions()
        self.clock.set(target)
        return ran + await self.finish_scheduled_functions()
