"""A deployment: one app's functions, its database, and the executor between them.

Everything that runs an app (the CLI, the test harness, the server) opens one:

    async with Deployment("myapp") as deployment:
        await deployment.executor.run("items:create", {"name": "x"})

By default the data lives in ``DIR/.pyconvex/data.sqlite3``.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from .database import Database
from .errors import AppLoadError
from .functions import App, Executor, TimeLimits, load_app
from .persistence import open_persistence

DEFAULT_FUNCTIONS_DIR = "convex"
STATE_DIR = ".pyconvex"


def default_database_url(app_dir: str | os.PathLike[str]) -> str:
    return "sqlite:///" + str(Path(app_dir).resolve() / STATE_DIR / "data.sqlite3")


class Deployment:
    """An app loaded over its database, ready to run functions."""

    def __init__(
        self,
        app_dir: str | os.PathLike[str] = ".",
        *,
        database_url: str | None = None,
        functions_dir: str = DEFAULT_FUNCTIONS_DIR,
        limits: TimeLimits | None = None,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.functions_dir = self.app_dir / functions_dir
        self.database_url = (
            database_url
            or os.environ.get("PYCONVEX_DATABASE_URL")
            or default_database_url(self.app_dir)
        )
        self.limits = limits
        self._app: App | None = None
        self._database: Database | None = None
        self._executor: Executor | None = None

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

    async def start(self) -> Deployment:
        """Load the app, open the database, bring its indexes in line with the schema."""
        if not self.functions_dir.is_dir():
            raise AppLoadError(
                f"No functions folder at {self.functions_dir}: is {self.app_dir} a pyconvex app?"
            )
        app = load_app(self.functions_dir)
        try:
            database = Database(open_persistence(self.database_url), app.schema)
            try:
                await database.setup()
            except BaseException:
                database.close()
                raise
        except BaseException:
            app.unload()
            raise
        self._app, self._database = app, database
        self._executor = Executor(app, database, limits=self.limits)
        return self

    async def close(self) -> None:
        if self._database is not None:
            self._database.close()
        if self._app is not None:
            self._app.unload()
        self._app = self._database = self._executor = None

    async def __aenter__(self) -> Deployment:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
