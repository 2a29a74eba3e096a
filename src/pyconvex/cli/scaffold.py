"""``pyconvex init DIR``: a small working app to start from, with its first tests (run with
``python -m pytest`` in DIR)."""

from __future__ import annotations

from pathlib import Path

FILES: dict[str, str] = {
    "convex/schema.py": """\
from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        "messages": define_table({"author": v.string(), "body": v.string()}).index(
            "by_author", ["author"]
        ),
    }
)
""",
    "convex/messages.py": '''\
from pyconvex import mutation, query, v


@mutation(args={"author": v.string(), "body": v.string()}, returns=v.id("messages"))
async def send(ctx, args):
    """Store a message and return its id."""
    return await ctx.db.insert("messages", {"author": args["author"], "body": args["body"]})


@query(args={"limit": v.optional(v.number())})
async def list(ctx, args):
    """The newest messages first."""
    return await ctx.db.query("messages").order("desc").take(int(args.get("limit", 20)))
''',
    "convex/http.py": """\
from pyconvex import HttpRouter, Request, Response, api

http = HttpRouter()


@http.route(path="/health", method="GET")
async def health(ctx, request: Request) -> Response:
    return Response.json({"status": "ok"})


@http.route(path="/messages", method="POST")
async def post_message(ctx, request: Request) -> Response:
    try:
        data = await request.json()
    except ValueError:
        return Response.json({"error": "Invalid JSON"}, status=400)
    if not isinstance(data, dict) or not isinstance(data.get("body"), str):
        return Response.json({"error": "Missing field: body"}, status=400)
    message_id = await ctx.run_mutation(
        api.messages.send, {"author": str(data.get("author", "anonymous")), "body": data["body"]}
    )
    return Response.json({"id": message_id}, status=201)


@http.route(path="/messages", method="GET")
async def get_messages(ctx, request: Request) -> Response:
    limit = request.query.get("limit", "20")
    if not limit.isdigit():
        return Response.json({"error": "limit must be a number"}, status=400)
    return Response.json(await ctx.run_query(api.messages.list, {"limit": int(limit)}))
""",
    "pytest.ini": """\
# python -m pytest, from this folder. The app's functions are async; pytest-asyncio runs
# async tests and fixtures as they are (asyncio_mode = auto), one event loop per test.
[pytest]
testpaths = tests
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
required_plugins = pytest-asyncio
""",
    "tests/conftest.py": '''\
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pyconvex.testing import ConvexTest

APP = Path(__file__).resolve().parent.parent  # the app folder, holding convex/


@pytest.fixture
async def t() -> AsyncIterator[ConvexTest]:
    """The app with a fresh, empty database, for one test."""
    async with ConvexTest(APP) as backend:
        yield backend
''',
    "tests/test_messages.py": """\
from pyconvex import api
from pyconvex.testing import ConvexTest


async def test_send_then_list(t: ConvexTest) -> None:
    await t.mutation(api.messages.send, {"author": "ada", "body": "hello"})
    messages = await t.query(api.messages.list, {})
    assert [(m["author"], m["body"]) for m in messages] == [("ada", "hello")]


async def test_post_and_get_over_http(t: ConvexTest) -> None:
    created = await t.fetch("/messages", method="POST", json={"body": "hi"})
    assert created.status_code == 201
    listed = await t.fetch("/messages")
    assert [m["body"] for m in listed.json()] == ["hi"]
    assert (await t.fetch("/messages", method="POST", json={})).status_code == 400
""",
    ".gitignore": ".pyconvex/\n__pycache__/\n",
}


def scaffold(target: Path) -> list[Path]:
    """Write the starter app into ``target``; refuses to overwrite anything."""
    existing = [target / name for name in FILES if (target / name).exists()]
    if existing:
        raise FileExistsError(
            f"{existing[0]} already exists: pyconvex init only writes into a new or empty app folder"
        )
    written = []
    for name, text in FILES.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
