"""``pyconvex init DIR``: a small working app to start from."""

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
