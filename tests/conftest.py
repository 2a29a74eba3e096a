from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyconvex.database import Database
from pyconvex.persistence.sqlite import SqlitePersistence
from pyconvex.schema import define_schema, define_table
from pyconvex.testing import ConvexTest
from pyconvex.validators import v

APPS = Path(__file__).parent / "apps"

# Test apps are loaded by pyconvex, not imported by pytest.
collect_ignore = ["apps"]


@pytest.fixture
def basic_app() -> Path:
    return APPS / "basic"


@pytest.fixture
async def t(basic_app: Path) -> AsyncIterator[ConvexTest]:
    async with ConvexTest(basic_app) as harness:
        yield harness


ITEMS_SCHEMA = define_schema(
    {
        "items": define_table(
            {
                "name": v.string(),
                "status": v.optional(v.string()),
                "n": v.optional(v.number()),
            }
        )
        .index("by_status", ["status"])
        .index("by_status_n", ["status", "n"]),
        "loose": define_table(v.any()),
    },
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(SqlitePersistence(tmp_path / "db.sqlite3"), ITEMS_SCHEMA)
    await database.setup()
    yield database
    database.close()


class Served:
    """A real uvicorn server for one app, on free loopback ports, in a thread of its own."""

    def __init__(
        self, app_dir: Path, tmp: Path, limits: Any = None, max_upload: Any = None, **options: Any
    ) -> None:
        from pyconvex.deployment import Deployment
        from pyconvex.server import Backend, BackendServer, bind

        self.listeners = bind("127.0.0.1", 0, 0)
        self.deployment = Deployment(
            app_dir,
            database_url=f"sqlite:///{tmp / 'data.sqlite3'}",
            site_url=self.listeners.site_url,
            cloud_url=self.listeners.api_url,
            limits=limits,
            storage_url=(tmp / "storage").as_uri(),
            max_upload=max_upload,
        )
        self.admin_key = "test-admin-key"
        self.backend = Backend(
            self.deployment, key=self.admin_key, site_port=self.listeners.site_port, **options
        )
        self.server = BackendServer(self.backend, self.listeners)
        self.site = self.listeners.site_url
        self.api = self.listeners.api_url
        self.loop = asyncio.new_event_loop()  # the server's; tests may submit coroutines to it
        self._thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(self.server.serve()),
            daemon=True,
        )

    def __enter__(self) -> Served:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self._thread.join(timeout=30)
        self.loop.close()
        self.listeners.close()

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Convex {self.admin_key}"}


@pytest.fixture
def serve_app(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(app_dir: Path, **options: Any) -> Served:
        scratch = tmp_path / f"server{len(started)}"
        scratch.mkdir()
        served = Served(app_dir, scratch, **options)
        started.append(served)
        return served.__enter__()

    yield start
    for served in started:
        served.__exit__()


@pytest.fixture
def web_app() -> Path:
    return APPS / "web"


@pytest.fixture
def web(serve_app: Callable[..., Served], web_app: Path) -> Served:
    return serve_app(web_app)
