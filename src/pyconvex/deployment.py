"""A deployment: one app's functions, its database, and the executor between them.

Everything that runs an app (the CLI, the test harness, the server) opens one:

    async with Deployment("myapp") as deployment:
        await deployment.executor.run("items:create", {"name": "x"})

By default the data lives in ``DIR/.pyconvex/data.sqlite3``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType

from . import owner_only
from .auth import Authenticator, ProviderConfigError, parse_providers
from .background.crons import CronQueue
from .background.pools import CompletionQueue, PoolQueue
from .background.scheduled import ScheduledQueue
from .background.webhooks import WebhookQueue
from .background.worker import Worker
from .database import Database
from .env import EnvStore, forget_process_default, process_default, set_process_default
from .errors import AppLoadError
from .functions import App, Executor, TimeLimits, load_app
from .functions.executor import CallObserver
from .functions.logs import LogLine, Sink
from .persistence import open_persistence
from .storage import FileStorage, open_blob_store

DEFAULT_FUNCTIONS_DIR = "convex"
STATE_DIR = ".pyconvex"


def database_url_for(app_dir: str | os.PathLike[str], given: str | None = None) -> str:
    """The database an app uses: ``given``, else ``PYCONVEX_DATABASE_URL``, else
    ``DIR/.pyconvex/data.sqlite3``."""
    return (
        given
        or os.environ.get("PYCONVEX_DATABASE_URL")
        or "sqlite:///" + str(Path(app_dir).resolve() / STATE_DIR / "data.sqlite3")
    )


def storage_url_for(app_dir: str | os.PathLike[str], given: str | None = None) -> str:
    """Where an app's files go: ``given``, else ``PYCONVEX_STORAGE_URL``, else
    ``DIR/.pyconvex/storage``."""
    return (
        given
        or os.environ.get("PYCONVEX_STORAGE_URL")
        or (Path(app_dir).resolve() / STATE_DIR / "storage").as_uri()
    )


def not_an_app(
    app_dir: str | os.PathLike[str], functions_dir: str = DEFAULT_FUNCTIONS_DIR
) -> str | None:
    """Why ``app_dir`` is not an app (it has no functions folder), or None if it is one."""
    root = Path(app_dir).resolve()
    if (root / functions_dir).is_dir():
        return None
    return (
        f"{root} is not a pyconvex app: there is no {functions_dir}/ folder "
        "(create one with pyconvex init DIR)"
    )


class Deployment:
    """An app loaded over its database, ready to run functions."""

    def __init__(
        self,
        app_dir: str | os.PathLike[str] = ".",
        *,
        database_url: str | None = None,
        functions_dir: str = DEFAULT_FUNCTIONS_DIR,
        limits: TimeLimits | None = None,
        site_url: str = "http://127.0.0.1:3211",
        cloud_url: str = "http://127.0.0.1:3210",
        storage_url: str | None = None,
        max_upload: int | None = None,
        sync_crons: bool = True,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.state_dir = self.app_dir / STATE_DIR
        self.storage_url = storage_url_for(self.app_dir, storage_url)
        self.max_upload = max_upload
        self.site_url = site_url.rstrip("/")
        self.cloud_url = cloud_url.rstrip("/")
        # Where each execution's log lines go: the dev console, the log file, tests.
        self.log_sinks: list[Sink] = []
        self._env: EnvStore | None = None
        self._files: FileStorage | None = None
        # The background layer, handed this deployment as its Host (database, executor).
        # Made now, so tests can swap its clock before start; it runs work only once started.
        self.scheduler = Worker(self)
        #: ``ctx.scheduler``'s jobs (``_scheduled_functions``).
        self.jobs = ScheduledQueue(self.scheduler)
        #: convex/crons.py's jobs: a work queue of the scheduler, kept in line at each (re)load
        #: by what serves the app (CLI commands that only look pass ``sync_crons=False``).
        self.crons = CronQueue(self.scheduler)
        self.scheduler.queues += [
            self.jobs,
            WebhookQueue(self.scheduler),
            PoolQueue(self.scheduler),
            CompletionQueue(self.scheduler),
            self.crons,
        ]
        self.sync_crons = sync_crons
        self.functions_dir = self.app_dir / functions_dir
        self.database_url = database_url_for(self.app_dir, database_url)
        self.limits = limits
        self._app: App | None = None
        self._database: Database | None = None
        self._executor: Executor | None = None
        #: Verifies bearer tokens against ``convex/auth_config.py``'s providers.
        self.authenticator = Authenticator([])
        #: Called after a reload has switched to the new functions (cached query results).
        self.on_reload: list[Callable[[], None]] = []
        #: Told of every function call its executors run (the Health metrics).
        self.call_observers: list[CallObserver] = []

    @property
    def app(self) -> App:
        if self._app is None:
            raise RuntimeError("The deployment has not been started: await deployment.start()")
        return self._app

    @property
    def database(self) -> Database:
        if self._database is None:
            raise RuntimeError("The deployment has not been started: await deployment.start()")
        return self._database

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            raise RuntimeError("The deployment has not been started: await deployment.start()")
        return self._executor

    @property
    def started(self) -> bool:
        return self._executor is not None

    @property
    def files(self) -> FileStorage:
        if self._files is None:
            raise RuntimeError("The deployment has not been started: await deployment.start()")
        return self._files

    @property
    def env(self) -> EnvStore:
        if self._env is None:
            raise RuntimeError("The deployment has not been started: await deployment.start()")
        return self._env

    def _check_folder(self) -> None:
        problem = not_an_app(self.app_dir, self.functions_dir.name)
        if problem is not None:
            raise AppLoadError(problem)

    def _load(self, env: EnvStore) -> App:
        """Import the functions folder with the deployment's variables in ``os.environ``, so
        module-level code sees them as handlers do."""
        self._check_folder()
        with _environ(env.visible()), process_default(env):
            return load_app(self.functions_dir)

    def emit_logs(self, lines: list[LogLine]) -> None:
        """Hand finished log lines to every sink."""
        for sink in self.log_sinks:
            sink(lines)

    def _authenticator_for(self, app: App) -> Authenticator:
        try:
            providers = parse_providers(app.auth_providers)
        except ProviderConfigError as exc:
            raise AppLoadError(str(exc), file=str(self.functions_dir / "auth_config.py")) from None
        if providers == self.authenticator.providers:
            return self.authenticator  # keep the keys already fetched
        return Authenticator(providers)

    async def start(self) -> Deployment:
        """Open the database, load the app (its module-level code sees the stored env
        vars), bring the indexes in line with the schema."""
        self._check_folder()  # before the database is opened: a wrong folder gets no files
        if self.state_dir.exists():  # one an older version left readable to others
            owner_only.private_dir(self.state_dir, tighten=True)
        database = Database(open_persistence(self.database_url))
        try:
            await database.setup(system_only=True)
            env = EnvStore(
                database,
                {"CONVEX_SITE_URL": self.site_url, "CONVEX_CLOUD_URL": self.cloud_url},
            )
            await env.refresh(force=True)
            app = self._load(env)
            try:
                authenticator = self._authenticator_for(app)
                database.schema = app.schema
                await database.setup()
                files = FileStorage(
                    database,
                    open_blob_store(self.storage_url),
                    self.cloud_url,
                    **({"max_upload": self.max_upload} if self.max_upload else {}),
                )
            except BaseException:
                app.unload()
                raise
        except BaseException:
            await database.close()
            raise
        self._app, self._database, self._env, self._files = app, database, env, files
        self.authenticator = authenticator
        self._executor = self._new_executor(app)
        set_process_default(env)
        try:
            if self.sync_crons:
                await self.crons.sync(app.crons)
        except BaseException:
            await self.close()
            raise
        return self

    def _new_executor(self, app: App) -> Executor:
        return Executor(
            app,
            self.database,
            limits=self.limits,
            env=self._env,
            log_sink=self.emit_logs,
            files=self._files,
            scheduler=self.jobs,
            call_observers=self.call_observers,
        )

    async def reload(self) -> App:
        """Load the functions folder again and switch to it.

        If the new version does not load (a syntax error, a bad route, a bad
        schema), this raises :class:`AppLoadError` and the running version
        stays in place, untouched.
        """
        old = self.app
        await self.env.refresh(force=True)
        new = self._load(self.env)
        try:
            authenticator = self._authenticator_for(new)
            database = self.database
            previous_schema = database.schema
            database.schema = new.schema
            try:
                await database.setup()
                if self.sync_crons:  # before the switch: if it fails, nothing has changed
                    await self.crons.sync(new.crons)
            except BaseException:
                database.schema = previous_schema
                raise
        except BaseException:
            new.unload()
            raise
        self._app = new
        self.authenticator = authenticator
        self._executor = self._new_executor(new)
        old.unload()
        for hook in self.on_reload:
            hook()
        return new

    async def close(self) -> None:
        await self.scheduler.stop()
        if self._database is not None:
            await self._database.close()
        if self._app is not None:
            self._app.unload()
        if self._env is not None:
            forget_process_default(self._env)
        if self._files is not None:
            self._files.blobs.close()
        self._app = self._database = self._executor = self._env = self._files = None

    async def __aenter__(self) -> Deployment:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


@contextlib.contextmanager
def _environ(variables: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``variables`` set, for the block; then as it was.

    A deployment's variables win over the process's own: in Convex they are all that code
    sees, and a stored value is the one the developer set for this deployment. Only for the
    import (synchronous, so no other request runs meanwhile): leaving them in the process
    would leak one deployment's secrets into every other one it serves or tests.
    """
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
