"""The ``pyconvex`` command line.

pyconvex run items:create '{"name": "x"}' --app myapp
pyconvex data                 # tables and their sizes
pyconvex data items --limit 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from .. import values
from ..deployment import Deployment
from ..errors import AppLoadError, ConvexError, PyConvexError

# soft_wrap: never break a message (or a file:line) at the terminal width.
_err = Console(stderr=True, highlight=False, soft_wrap=True)
_out = Console(highlight=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyconvex", description="Convex's backend model, in Python."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def app_command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument(
            "--app", default=".", metavar="DIR", help="the app root (holding convex/); default: ."
        )
        sub.add_argument(
            "--database-url", default=None, help="default: sqlite:///DIR/.pyconvex/data.sqlite3"
        )
        return sub

    run = app_command("run", "Run a function (internal ones too) and print its result as JSON.")
    run.add_argument("function", metavar="FUNCTION", help="a path such as items:create")
    run.add_argument(
        "args", metavar="ARGS_JSON", nargs="?", default="{}", help="the arguments, as JSON"
    )

    data = app_command("data", "List the tables, or print the documents of one.")
    data.add_argument("table", metavar="TABLE", nargs="?")
    data.add_argument(
        "--limit", type=int, default=100, help="at most this many documents (default 100)"
    )
    data.add_argument("--order", choices=("asc", "desc"), default="desc")
    data.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else values.display_value(value)


def _print_json(value: Any) -> None:
    print(json.dumps(values.to_convex_json(value), indent=2, ensure_ascii=False))


async def _run(ns: argparse.Namespace) -> int:
    try:
        args = values.loads(ns.args)
    except ValueError as exc:
        _err.print(f"[red]✖ ARGS_JSON is not valid JSON:[/] {exc}")
        return 2
    if not isinstance(args, dict):
        _err.print('[red]✖ ARGS_JSON must be a JSON object[/], e.g. \'{"name": "x"}\'')
        return 2
    async with Deployment(ns.app, database_url=ns.database_url) as deployment:
        _print_json(await deployment.executor.run(ns.function, args))
    return 0


async def _data(ns: argparse.Namespace) -> int:
    async with Deployment(ns.app, database_url=ns.database_url) as deployment:
        database = deployment.database
        if ns.table is None:
            tables = await database.tables()
            if ns.format == "json":
                print(json.dumps(tables, indent=2))
                return 0
            if not tables:
                _out.print("There are no tables yet.")
                return 0
            grid = Table("table", "documents")
            for name, count in tables.items():
                grid.add_row(name, str(count))
            _out.print(grid)
            return 0
        async with database.read(system=ns.table.startswith("_")) as reader:
            docs = await reader.query(ns.table).order(ns.order).take(max(ns.limit, 0))
        if ns.format == "json":
            for doc in docs:
                print(values.dumps(doc).decode())
            return 0
        if not docs:
            _out.print(f'There are no documents in table "{ns.table}".')
            return 0
        columns: list[str] = []
        for doc in docs:
            columns.extend(k for k in doc if k not in columns)
        grid = Table(*columns)
        for doc in docs:
            grid.add_row(*(_cell(doc[c]) if c in doc else "" for c in columns))
        _out.print(grid)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    command = {"run": _run, "data": _data}[ns.command]
    try:
        return asyncio.run(command(ns))
    except AppLoadError as exc:
        _err.print(f"[red]✖ Could not load the app:[/] {exc}")
    except ConvexError as exc:
        _err.print(f"[red]✖ Uncaught ConvexError:[/] {exc}")
        if exc.data is not None:
            _err.print(json.dumps(values.to_convex_json(exc.data), indent=2))
    except PyConvexError as exc:
        _err.print(f"[red]✖ {type(exc).__name__}:[/] {exc}")
    except ValueError as exc:
        _err.print(f"[red]✖ {exc}[/]")
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
