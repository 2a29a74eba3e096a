"""A deployment served over HTTP: the site app, the API app, and their shared lifecycle.

    backend = Backend(Deployment("myapp"))
    # any ASGI server:
    #   uvicorn myserver:backend.site --port 3211   (HTTP actions)
    #   uvicorn myserver:backend.api  --port 3210   (function API, files)

Both apps start the deployment on the ASGI lifespan ``startup`` and close it
when the last one shuts down. ``pyconvex dev`` and ``serve`` run the ``Backend`` itself on two
sockets: it sends each request to the app of the port it arrived on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Literal, NamedTuple

from ..deployment import Deployment
from ..env import REFRESH_SECONDS
from ..functions import Auth
from ..functions.logs import LogLine, install_capture
from ..http.request import DEFAULT_MAX_BODY
from ..metrics import Metrics
from ..sync.queries import Queries
from ..sync.session import Session
from ..tasks import cancel_and_wait
from .admin_key import admin_key
from .api import ApiApp
from .asgi import Message, Receive, Scope, Send, dashboard_path
from .hosts import host_check
from .site import SiteApp

RECENT_LOG_LINES = 1000


class Handled(NamedTuple):
    """One HTTP request, as a request observer sees it once its response has gone.

    A tuple: made for every request, and a frozen dataclass costs three times as much.
    """

    port: Literal["api", "site"]
    method: str
    path: str
    status: int
    seconds: float


class Backend:
    """The HTTP face of one :class:`Deployment`."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        production: bool = False,
        max_body: int = DEFAULT_MAX_BODY,
        site_port: int | None = None,
        key: str | None = None,
        dashboard: bool = True,
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        self.deployment = deployment
        self.production = production
        self.max_body = max_body
        self.site_port = site_port
        self.admin_key = key if key is not None else admin_key(deployment.state_dir)
        self.site = SiteApp(self)
        self.api = ApiApp(self)
        self.recent_logs: deque[LogLine] = deque(maxlen=RECENT_LOG_LINES)
        self.log_followers: set[asyncio.Queue[list[LogLine]]] = set()
        deployment.log_sinks.append(self._keep_logs)
        self._users = 0
        self._owns_deployment = False
        self._lock = asyncio.Lock()
        # Re-reads the env vars in the background while serving, so requests never wait on it.
        self.env_refresher: asyncio.Task[None] | None = None
        self._sync_queries: Queries | None = None
        #: The sync protocol's open sockets.
        self.sync_sessions: set[Session] = set()
        #: ``ctx.auth`` of requests that send no Authorization header (``t.with_identity``).
        self.identity: Auth | None = None
        #: Whether ``/dashboard/`` is served on the API port (``serve --no-dashboard``).
        self.dashboard = dashboard
        #: The ``Host`` values the API port answers (None: any). In development, names of
        #: this machine only; ``allowed_hosts`` (default ``PYCONVEX_ALLOWED_HOSTS``) adds
        #: names, and in production is the whole list (server/hosts.py).
        self.hosts = host_check(production=production, allowed=allowed_hosts)
        #: The pages that may open the sync socket, by their ``Origin``: in development,
        #: those of the same names. A production app's pages live wherever it is deployed.
        self.origins = None if production else self.hosts
        #: Told of every HTTP request served through ``Backend`` once it is answered (the dev
        #: console's access lines). An observer must be quick and must not raise.
        self.request_observers: list[Callable[[Handled], None]] = []
        #: This process's Health metrics, written to the database while serving.
        self.metrics = Metrics()
        deployment.call_observers.append(self.metrics.call)
        deployment.scheduler.lag_observers.append(self.metrics.lag)

    def _keep_logs(self, lines: list[LogLine]) -> None:
        self.recent_logs.extend(lines)
        for queue in self.log_followers:
            queue.put_nowait(lines)

    async def startup(self) -> None:
        install_capture()
        async with self._lock:
            if self._users == 0 and not self.deployment.started:
                await self.deployment.start()
                self._owns_deployment = True
            if self._users == 0:
                self.env_refresher = asyncio.create_task(self._refresh_env())
                self.deployment.scheduler.start()
                self.metrics.start(self.deployment.database)
            self._users += 1

    async def shutdown(self) -> None:
        async with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            refresher, self.env_refresher = self.env_refresher, None
            await cancel_and_wait(refresher)
            if self._sync_queries is not None:
                await self._sync_queries.stop()
            await self.metrics.stop()
            await self.deployment.scheduler.stop()
            if self._owns_deployment:
                self._owns_deployment = False
                await self.deployment.close()

    @property
    def http_time_limit(self) -> float:
        return self.deployment.executor.limits.http_action

    async def _refresh_env(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.deployment.env.refresh(force=True)
            except Exception:  # the database may be away for a moment: keep the last values
                logging.getLogger("pyconvex.server").warning(
                    "Could not refresh env vars", exc_info=True
                )

    def sync_queries(self) -> Queries:
        """The query results shared by this deployment's sync sessions (made on first use)."""
        if self._sync_queries is None:
            self._sync_queries = Queries(self.deployment, production=self.production)
            self.deployment.on_reload.append(self._sync_queries.clear)
        return self._sync_queries

    async def handle_other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Lifespan events; anything else that is not HTTP is refused."""
        if scope["type"] != "lifespan":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server = scope.get("server")
            on_site = server is not None and server[1] == self.site_port
            app: SiteApp | ApiApp = self.site if on_site else self.api
            port: Literal["api", "site"] = "site" if on_site else "api"
            if self.counted(port, scope):
                await self.observed(app, port, scope, receive, send)
            else:
                await app(scope, receive, send)
            return
        await self.handle_other(scope, receive, send)

    def counted(self, port: Literal["api", "site"], scope: Scope) -> bool:
        """Count an HTTP request for Health; whether the request observers want to hear how
        it went (then serve it with :meth:`observed`).

        The dashboard's page views (on the API port) are left out: its pages poll every
        second, and would fill the dev console's access lines and the request rate. Its
        changes (POSTs) count, so an admin's actions leave a line.
        """
        if port == "api" and scope["method"] == "GET" and dashboard_path(scope["path"]):
            return False
        self.metrics.request(port)  # all Health needs: a counter, no wrapper
        return self.request_observers != []

    async def observed(
        self,
        app: SiteApp | ApiApp,
        port: Literal["api", "site"],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Serve one request with ``app`` and tell the request observers how it went."""
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before responding

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, observed_send)
        finally:
            handled = Handled(
                port, scope["method"], scope["path"], status, time.perf_counter() - started
            )
            for observe in self.request_observers:
                try:
                    observe(handled)
                except Exception:  # an observer's bug must not fail the request
                    logging.getLogger("pyconvex.server").exception("A request observer failed")
