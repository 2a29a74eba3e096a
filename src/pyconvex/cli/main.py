"""The ``pyconvex`` command line.

pyconvex init myapp
pyconvex dev myapp                                  # serve, reload on change
pyconvex run items:create '{"name": "x"}' --app myapp
pyconvex env set STRIPE_WEBHOOK_SECRET whsec_...
pyconvex logs --follow
pyconvex data items --limit 20
pyconvex functions --app myapp                       # what the app defines
pyconvex export backup.zip --app myapp               # and: pyconvex import backup.zip
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import sys
import traceback
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from rich.markup import escape

from .. import snapshot, values
from ..database import Database
from ..database.system import SYSTEM_TABLES
from ..deployment import STATE_DIR, Deployment, database_url_for, not_an_app
from ..env import EnvStore
from ..errors import AppLoadError, ConvexError, PyConvexError
from ..functions.failures import uncaught_message
from ..functions.logs import LogLine, install_capture
from ..persistence import open_persistence
from ..server import logfile
from . import listing, output, serving, snapshots, workers
from .remote import Remote, RemoteError
from .scaffold import scaffold

_err = output.console(stderr=True)
_out = output.console()

# The commands that act on the app in a folder (unless --url names a running deployment).
_APP_COMMANDS = ("run", "env", "logs", "data", "webhooks", "export", "import", "functions")


def _version() -> str:
    try:
        return importlib.metadata.version("pyconvex")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyconvex", description="Convex's backend model, in Python."
    )
    parser.add_argument("--version", action="version", version=f"pyconvex {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def app_command(name: str, help: str, *, remote: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument(
            "--app", default=".", metavar="DIR", help="the app root (holding convex/); default: ."
        )
        sub.add_argument(
            "--database-url", default=None, help="default: sqlite:///DIR/.pyconvex/data.sqlite3"
        )
        if remote:
            sub.add_argument(
                "--url",
                default=None,
                help="act on a running deployment's API (e.g. http://host:3210)",
            )
            sub.add_argument(
                "--admin-key", default=None, help="default: PYCONVEX_ADMIN_KEY or DIR's key"
            )
        return sub

    init = commands.add_parser("init", help="Create a new app.", description="Create a new app.")
    init.add_argument("dir", metavar="DIR", help="the folder to create the app in")

    dev = commands.add_parser(
        "dev", help="Serve an app and reload it on change.", description=serving.__doc__
    )
    serving.add_arguments(dev, production=False)
    serve = commands.add_parser(
        "serve", help="Serve an app in production mode.", description=serving.__doc__
    )
    serving.add_arguments(serve, production=True)

    run = app_command(
        "run", "Run a function (internal ones too) and print its result as JSON.", remote=True
    )
    run.add_argument("function", metavar="FUNCTION", help="a path such as items:create")
    run.add_argument(
        "args", metavar="ARGS_JSON", nargs="?", default="{}", help="the arguments, as JSON"
    )

    env = app_command(
        "env", "List, read, set or remove deployment environment variables.", remote=True
    )
    env.add_argument("action", choices=("list", "get", "set", "remove"))
    env.add_argument("name", metavar="NAME", nargs="?")
    env.add_argument("value", metavar="VALUE", nargs="?")

    logs = app_command(
        "logs", "Print the function logs (the last ones, then new ones with --follow).", remote=True
    )
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    logs.add_argument(
        "--lines", "-n", type=int, default=100, help="how many past lines (default 100)"
    )

    hooks = app_command("webhooks", "List, show or replay recorded webhook events.", remote=True)
    hooks.add_argument("action", choices=("list", "show", "replay"))
    hooks.add_argument("id", metavar="ID", nargs="?", help="an event id (from list)")
    hooks.add_argument("--limit", type=int, default=50, help="list at most this many (default 50)")
    hooks.add_argument("--format", choices=("table", "json"), default="table")

    data = app_command("data", "List the tables, or print the documents of one.", remote=True)
    data.add_argument("table", metavar="TABLE", nargs="?")
    data.add_argument(
        "--limit", type=int, default=100, help="at most this many documents (default 100)"
    )
    data.add_argument("--order", choices=("asc", "desc"), default="desc")
    data.add_argument("--format", choices=("table", "json"), default="table")

    functions = app_command(
        "functions", "List the app's functions and HTTP routes, with their validators."
    )
    functions.add_argument("--format", choices=("table", "json"), default="table")

    snapshots.add_arguments(
        app_command("export", "Save every table and file of the deployment to a ZIP snapshot.")
    )
    snapshots.add_arguments(
        app_command("import", "Load a ZIP snapshot (from export) into an empty deployment.")
    )
    return parser


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else values.display_value(value)


def _not_an_app(ns: argparse.Namespace) -> str | None:
    """Why the command cannot run on the folder it was given, or None."""
    if ns.command in ("dev", "serve"):
        return not_an_app(ns.dir)
    if ns.command in _APP_COMMANDS and not getattr(ns, "url", None):
        return not_an_app(ns.app)
    return None


def _print_json(value: Any) -> None:
    print(json.dumps(values.to_convex_json(value, wire=False), indent=2, ensure_ascii=False))


async def _run(ns: argparse.Namespace) -> int:
    try:
        args = values.loads(ns.args)
    except ValueError as exc:
        _err.print(f"[red]✖ ARGS_JSON is not valid JSON:[/] {escape(str(exc))}")
        return 2
    if not isinstance(args, dict):
        _err.print('[red]✖ ARGS_JSON must be a JSON object[/], e.g. \'{"name": "x"}\'')
        return 2
    if ns.url:
        result = Remote(ns.url, ns.app, ns.admin_key).run(ns.function, values.to_convex_json(args))
        for line in result.get("logLines", []):
            _err.print(f"[dim]{escape(line)}[/]")
        if result["status"] == "success":
            print(json.dumps(result["value"], indent=2, ensure_ascii=False))
            return 0
        _err.print(f"[red]✖ {escape(result['errorMessage'])}[/]")
        if "errorData" in result:
            _err.print(json.dumps(result["errorData"], indent=2), markup=False)
        return 1
    async with Deployment(ns.app, database_url=ns.database_url) as deployment:
        lines: list[LogLine] = []
        deployment.log_sinks.append(lines.extend)
        install_capture()
        try:
            result = await deployment.executor.run(ns.function, args)
        except Exception as exc:
            _show_log_lines(lines, failure=exc)
            _show_failure(exc, deployment.functions_dir)
            return 1
        _show_log_lines(lines)
    _print_json(result)
    return 0


def _show_log_lines(lines: list[LogLine], *, failure: Exception | None = None) -> None:
    # The executor logs a refused argument or value as an ERROR line; here it is the error.
    repeated = None if failure is None else f"{type(failure).__name__}: {failure}"
    show = serving.console_sink(_err, color=True)
    show([line for line in lines if line.message != repeated])


def _show_failure(exc: Exception, functions_dir: Path) -> None:
    """``✖`` and what went wrong, then the frames of the app's own files (pyconvex's are no
    help to whoever wrote the function)."""
    if isinstance(exc, PyConvexError) and not isinstance(exc, ConvexError):
        headline = f"{type(exc).__name__}: {exc}"  # a validator's words, with its Path: line
    else:
        headline = uncaught_message(exc)
    _err.print(f"[red]✖ {escape(headline)}[/]")
    if isinstance(exc, ConvexError) and exc.data is not None:
        _err.print(json.dumps(values.to_convex_json(exc.data, wire=False), indent=2), markup=False)
    root = functions_dir.resolve()
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if Path(frame.filename).resolve().is_relative_to(root)
    ]
    if frames:  # none when the call itself was refused (its arguments, say)
        _err.print("".join(traceback.format_list(frames)).rstrip("\n"), markup=False)


@asynccontextmanager
async def _env_store(ns: argparse.Namespace) -> AsyncIterator[EnvStore]:
    """The stored variables, without importing the app (it may not even load)."""
    database = Database(open_persistence(database_url_for(ns.app, ns.database_url)))
    try:
        await database.setup(system_only=True)
        yield EnvStore(database, {})
    finally:
        await database.close()


async def _env(ns: argparse.Namespace) -> int:
    if ns.action in ("get", "set", "remove") and not ns.name:
        _err.print(f"[red]✖ pyconvex env {ns.action} needs a NAME[/]")
        return 2
    if ns.action == "set" and ns.value is None:
        _err.print("[red]✖ pyconvex env set needs a NAME and a VALUE[/]")
        return 2
    if ns.url:
        remote = Remote(ns.url, ns.app, ns.admin_key)
        variables = remote.env_list() if ns.action in ("list", "get") else {}
        if ns.action == "set":
            remote.env_set(ns.name, ns.value)
        elif ns.action == "remove":
            return _removed(ns.name, remote.env_remove(ns.name))
    else:
        async with _env_store(ns) as store:
            if ns.action == "set":
                await store.set(ns.name, ns.value)
            elif ns.action == "remove":
                return _removed(ns.name, await store.remove(ns.name))
            variables = await store.list()
    if ns.action == "set":
        _err.print(f"[green]✔ Set {ns.name}[/]")
    elif ns.action == "get":
        if ns.name not in variables:
            _err.print(f"[red]✖ {ns.name} is not set[/]")
            return 1
        print(variables[ns.name])
    else:
        for name, value in variables.items():
            print(f"{name}={value}")
    return 0


def _removed(name: str, removed: bool) -> int:
    if removed:
        _err.print(f"[green]✔ Removed {name}[/]")
        return 0
    _err.print(f"[yellow]{name} was not set[/]")
    return 1


def _logs(ns: argparse.Namespace) -> int:
    show = serving.console_sink(_out, color=True, every_request_id=True, dates=True)
    if ns.url:
        remote = Remote(ns.url, ns.app, ns.admin_key)
        for line in remote.logs(follow=ns.follow):
            show([line])
        return 0
    state = Path(ns.app).resolve() / STATE_DIR
    past = logfile.tail(state, ns.lines)
    if not past:
        where = state / logfile.FILE_NAME
        _err.print(f"[dim]No log lines yet: pyconvex dev and serve write them to {where}[/]")
    show(past)
    if ns.follow:
        for line in logfile.follow(state):
            show([line])
    return 0


async def _webhooks(ns: argparse.Namespace) -> int:
    from ..webhooks import events

    if ns.action in ("show", "replay") and not ns.id:
        _err.print(f"[red]✖ pyconvex webhooks {ns.action} needs an event ID (see webhooks list)[/]")
        return 2
    if ns.url:
        remote = Remote(ns.url, ns.app, ns.admin_key)
        if ns.action == "list":
            return _print_events(remote.webhooks(ns.limit), ns.format)
        if ns.action == "show":
            print(json.dumps(remote.webhook(ns.id), indent=2, ensure_ascii=False))
            return 0
        remote.replay(ns.id)
        _err.print(f"[green]✔ {ns.id} will be processed again[/]")
        return 0
    async with Deployment(ns.app, database_url=ns.database_url) as deployment:
        try:
            if ns.action == "list":
                found = [events.summary(r) for r in await events.recent(deployment, ns.limit)]
                return _print_events(found, ns.format)
            if ns.action == "show":
                row = await events.get(deployment, ns.id)
                print(json.dumps(events.detail(row), indent=2, ensure_ascii=False))
                return 0
            await events.replay(deployment, ns.id)
        except LookupError as exc:
            _err.print(f"[red]✖ {escape(str(exc))}[/]")
            return 1
    _err.print(f"[green]✔ {ns.id} will be processed again (by the running server's scheduler)[/]")
    return 0


def _print_events(found: list[dict[str, Any]], format: str) -> int:
    if format == "json":
        print(json.dumps(found, indent=2, ensure_ascii=False))
        return 0
    if not found:
        _err.print("No webhook events yet.")
        return 0
    fields = ["id", "provider", "event_id", "type", "status", "attempts", "received_at"]
    rows = [
        ["" if e[f] is None else str(e[f]) for f in fields] + [e["last_error"] or ""] for e in found
    ]
    headers = ["id", "provider", "event id", "type", "status", "attempts", "received", "last error"]
    output.print_table(_out, headers, rows, widest={"last error": 60})
    return 0


def _init(ns: argparse.Namespace) -> int:
    target = Path(ns.dir)
    try:
        written = scaffold(target)
    except FileExistsError as exc:
        _err.print(f"[red]✖ {escape(str(exc))}[/]")
        return 1
    for path in written:
        _out.print(f"[green]created[/] {escape(str(path))}")
    where = escape(str(target))
    _out.print(
        f"\nNext: [bold]pyconvex dev {where}[/], then [bold]curl http://127.0.0.1:3211/health[/];"
        f" the tests: [bold]cd {where} && python -m pytest[/]"
        " (with pytest and pytest-asyncio installed)"
    )
    return 0


async def _data(ns: argparse.Namespace) -> int:
    if ns.url:
        remote = Remote(ns.url, ns.app, ns.admin_key)
        tables = remote.tables()
        if ns.table is None:
            return _print_tables(tables, ns.format)
        # The API knows the tables that hold documents, not the schema's empty ones.
        if ns.table not in tables and ns.table not in SYSTEM_TABLES:
            return _no_table(ns.table, tables, " with documents")
        return _print_documents(
            ns.table, remote.documents(ns.table, max(ns.limit, 0), ns.order), ns.format
        )
    async with Deployment(ns.app, database_url=ns.database_url) as deployment:
        database = deployment.database
        tables = await database.tables()
        if ns.table is None:
            return _print_tables(tables, ns.format)
        schema = deployment.app.schema
        defined = set(tables) | set(SYSTEM_TABLES) | set(schema.tables if schema else ())
        if ns.table not in defined:
            return _no_table(ns.table, tables, "")
        async with database.read(system=ns.table.startswith("_")) as reader:
            docs = await reader.query(ns.table).order(ns.order).take(max(ns.limit, 0))
    return _print_documents(ns.table, docs, ns.format)


def _no_table(name: str, tables: dict[str, int], qualifier: str) -> int:
    known = ", ".join(t for t in tables if not t.startswith("_")) or "none yet"
    _err.print(f'[red]✖ There is no table "{escape(name)}"{qualifier}[/] (the tables: {known})')
    return 1


def _print_tables(tables: dict[str, int], format: str) -> int:
    if format == "json":
        print(json.dumps(tables, indent=2))
        return 0
    if not tables:
        _err.print("There are no tables yet.")
        return 0
    output.print_table(_out, ["table", "documents"], [[n, str(c)] for n, c in tables.items()])
    return 0


def _print_documents(table: str, docs: list[dict[str, Any]], format: str) -> int:
    if format == "json":
        for doc in docs:
            print(values.dumps(doc, wire=False).decode())
        return 0
    if not docs:
        _err.print(f'There are no documents in table "{escape(table)}".')
        return 0
    columns: list[str] = []
    for doc in docs:
        columns.extend(k for k in doc if k not in columns)
    rows = [[_cell(doc[c]) if c in doc else "" for c in columns] for doc in docs]
    output.print_table(_out, columns, rows)
    return 0


async def _functions(ns: argparse.Namespace) -> int:
    async with Deployment(ns.app, database_url=ns.database_url) as deployment:
        found = listing.describe(deployment.app)
    if ns.format == "json":
        print(json.dumps(found, indent=2, ensure_ascii=False))
        return 0
    if not found["functions"]:
        _err.print("The app defines no functions.")
    else:
        output.print_table(
            _out,
            ["function", "kind", "visibility", "args", "returns"],
            [
                [f["path"], f["kind"], f["visibility"], f["args"] or "", f["returns"] or ""]
                for f in found["functions"]
            ],
        )
    if not found["routes"]:
        _err.print("The app has no HTTP routes (convex/http.py defines none).")
        return 0
    if found["functions"]:
        _out.file.write("\n")
    output.print_table(
        _out,
        ["method", "route", "handler"],
        [
            [r["method"], r["path"] if "path" in r else r["path_prefix"] + "*", r["handler"]]
            for r in found["routes"]
        ],
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    problem = _not_an_app(ns)
    if problem is not None:
        _err.print(f"[red]✖ {escape(problem)}[/]")
        return 1
    try:
        if ns.command == "init":
            return _init(ns)
        if ns.command == "logs":
            return _logs(ns)
        if ns.command == "serve" and ns.workers > 1:
            return workers.run(ns, _err, _asyncio_run)
        if ns.command in ("dev", "serve"):
            return _asyncio_run(serving.run(ns, _err, production=ns.command == "serve"))
        if ns.command == "export":
            return _asyncio_run(snapshots.export(ns, _err))
        if ns.command == "import":
            return _asyncio_run(snapshots.import_(ns, _err))
        command = {
            "run": _run, "data": _data, "env": _env, "webhooks": _webhooks,
            "functions": _functions,
        }[ns.command]  # fmt: skip
        return _asyncio_run(command(ns))
    except AppLoadError as exc:
        _err.print(f"[red]✖ Could not load the app:[/] {escape(str(exc))}")
    except ConvexError as exc:
        _err.print(f"[red]✖ Uncaught ConvexError:[/] {escape(str(exc))}")
        if exc.data is not None:
            _err.print(
                json.dumps(values.to_convex_json(exc.data, wire=False), indent=2), markup=False
            )
    except PyConvexError as exc:
        _err.print(f"[red]✖ {type(exc).__name__}:[/] {escape(str(exc))}")
    except (ValueError, RemoteError, snapshot.SnapshotError) as exc:
        _err.print(f"[red]✖ {escape(str(exc))}[/]")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (| head): no more output, and no traceback about it at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return 1


def _asyncio_run(main: Coroutine[Any, Any, int]) -> int:
    """``asyncio.run`` on uvloop where it is installed (the server's hot path runs on it)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


if __name__ == "__main__":
    sys.exit(main())
