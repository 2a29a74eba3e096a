from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

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
