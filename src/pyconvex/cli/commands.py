"""The commands that look into an app's deployment and change it: run, env, logs, data,
webhooks, functions, init. Each takes the parsed arguments and returns the exit code.

They act on the app in ``--app DIR`` directly, or on a running deployment with ``--url``.
"""

from __future__ import annotations

import argparse
import json
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.markup import escape

from .. import listing, values
from ..database import Database
from ..database.system import SYSTEM_TABLES
from ..deployment import STATE_DIR, Deployment, database_url_for
from ..env import EnvStore
from ..errors import ConvexError, PyConvexError
from ..functions.failures import uncaught_message
from ..functions.logs import LogLine, install_capture
from ..persistence import open_persistence
from ..server import logfile
from . import output, serving
from .remote import Remote
from .scaffold import scaffold

err = output.console(stderr=True)
out = output.console()


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else values.display_value(value)


def _print_json(value: Any) -> None:
    print(json.dumps(values.to_convex_json(value, wire=False), indent=2, ensure_ascii=False))


async def run(ns: argparse.Namespace) -> int:
    try:
        args = values.loads(ns.args)
    except ValueError as exc:
        err.print(f"[red]✖ ARGS_JSON is not valid JSON:[/] {escape(str(exc))}")
        return 2
    if not isinstance(args, dict):
        err.print('[red]✖ ARGS_JSON must be a JSON object[/], e.g. \'{"name": "x"}\'')
        return 2
    if ns.url:
        result = Remote(ns.url, ns.app, ns.admin_key).run(ns.function, values.to_convex_json(args))
        for line in result.get("logLines", []):
            err.print(f"[dim]{escape(line)}[/]")
        if result["status"] == "success":
            print(json.dumps(result["value"], indent=2, ensure_ascii=False))
            return 0
        err.print(f"[red]✖ {escape(result['errorMessage'])}[/]")
        if "errorData" in result:
            err.print(json.dumps(result["errorData"], indent=2), markup=False)
        return 1
    async with Deployment(ns.app, database_url=ns.database_url, sync_crons=False) as deployment:
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
    show = serving.console_sink(err, color=True)
    show([line for line in lines if line.message != repeated])


def _show_failure(exc: Exception, functions_dir: Path) -> None:
    """``✖`` and what went wrong, then the frames of the app's own files (pyconvex's are no
    help to whoever wrote the function)."""
    if isinstance(exc, PyConvexError) and not isinstance(exc, ConvexError):
        headline = f"{type(exc).__name__}: {exc}"  # a validator's words, with its Path: line
    else:
        headline = uncaught_message(exc)
    err.print(f"[red]✖ {escape(headline)}[/]")
    if isinstance(exc, ConvexError) and exc.data is not None:
        err.print(json.dumps(values.to_convex_json(exc.data, wire=False), indent=2), markup=False)
    root = functions_dir.resolve()
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if Path(frame.filename).resolve().is_relative_to(root)
    ]
    if frames:  # none when the call itself was refused (its arguments, say)
        err.print("".join(traceback.format_list(frames)).rstrip("\n"), markup=False)


@asynccontextmanager
async def _env_store(ns: argparse.Namespace) -> AsyncIterator[EnvStore]:
    """The stored variables, without importing the app (it may not even load)."""
    database = Database(open_persistence(database_url_for(ns.app, ns.database_url)))
    try:
        await database.setup(system_only=True)
        yield EnvStore(database, {})
    finally:
        await database.close()


async def env(ns: argparse.Namespace) -> int:
    if ns.action in ("get", "set", "remove") and not ns.name:
        err.print(f"[red]✖ pyconvex env {ns.action} needs a NAME[/]")
        return 2
    if ns.action == "set" and ns.value is None:
        err.print("[red]✖ pyconvex env set needs a NAME and a VALUE[/]")
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
        err.print(f"[green]✔ Set {ns.name}[/]")
    elif ns.action == "get":
        if ns.name not in variables:
            err.print(f"[red]✖ {ns.name} is not set[/]")
            return 1
        print(variables[ns.name])
    else:
        for name, value in variables.items():
            print(f"{name}={value}")
    return 0


def _removed(name: str, removed: bool) -> int:
    if removed:
        err.print(f"[green]✔ Removed {name}[/]")
        return 0
    err.print(f"[yellow]{name} was not set[/]")
    return 1


def logs(ns: argparse.Namespace) -> int:
    show = serving.console_sink(out, color=True, every_request_id=True, dates=True)
    if ns.url:
        remote = Remote(ns.url, ns.app, ns.admin_key)
        for line in remote.logs(follow=ns.follow):
            show([line])
        return 0
    state = Path(ns.app).resolve() / STATE_DIR
    past = logfile.tail(state, ns.lines)
    if not past:
        where = state / logfile.FILE_NAME
        err.print(f"[dim]No log lines yet: pyconvex dev and serve write them to {where}[/]")
    show(past)
    if ns.follow:
        for line in logfile.follow(state):
            show([line])
    return 0


def init(ns: argparse.Namespace) -> int:
    target = Path(ns.dir)
    try:
        written = scaffold(target)
    except FileExistsError as exc:
        err.print(f"[red]✖ {escape(str(exc))}[/]")
        return 1
    for path in written:
        out.print(f"[green]created[/] {escape(str(path))}")
    where = escape(str(target))
    out.print(
        f"\nNext: [bold]pyconvex dev {where}[/], then [bold]curl http://127.0.0.1:3211/health[/];"
        f" the tests: [bold]cd {where} && python -m pytest[/]"
        " (with pytest and pytest-asyncio installed)"
    )
    return 0


async def data(ns: argparse.Namespace) -> int:
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
    async with Deployment(ns.app, database_url=ns.database_url, sync_crons=False) as deployment:
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
    err.print(f'[red]✖ There is no table "{escape(name)}"{qualifier}[/] (the tables: {known})')
    return 1


def _print_tables(tables: dict[str, int], format: str) -> int:
    if format == "json":
        print(json.dumps(tables, indent=2))
        return 0
    if not tables:
        err.print("There are no tables yet.")
        return 0
    output.print_table(out, ["table", "documents"], [[n, str(c)] for n, c in tables.items()])
    return 0


def _print_documents(table: str, docs: list[dict[str, Any]], format: str) -> int:
    if format == "json":
        for doc in docs:
            print(values.dumps(doc, wire=False).decode())
        return 0
    if not docs:
        err.print(f'There are no documents in table "{escape(table)}".')
        return 0
    columns: list[str] = []
    for doc in docs:
        columns.extend(k for k in doc if k not in columns)
    rows = [[_cell(doc[c]) if c in doc else "" for c in columns] for doc in docs]
    output.print_table(out, columns, rows)
    return 0


async def crons(ns: argparse.Namespace) -> int:
    from ..background.crons import listing as cron_listing

    defined = 0
    if ns.url:
        found = Remote(ns.url, ns.app, ns.admin_key).crons()
    else:
        # What the deployment runs (a served app syncs it), not what this checkout says.
        async with Deployment(ns.app, database_url=ns.database_url, sync_crons=False) as deployment:
            found = await cron_listing(deployment.database)
            defined = len(deployment.app.crons)
    if ns.format == "json":
        print(json.dumps(found, indent=2, ensure_ascii=False))
        return 0
    if not found:
        if defined:
            err.print(
                f"No cron jobs are set up yet: convex/crons.py defines {defined}, set up when "
                "the app is served (pyconvex dev or serve)."
            )
        else:
            err.print("There are no cron jobs (convex/crons.py defines none).")
        return 0
    output.print_table(
        out,
        ["name", "schedule", "function", "next run (UTC)", "last run"],
        [
            [
                job["name"],
                job["schedule"],
                job["function"],
                "running" if job["running"] else _utc(job["next_run"]),
                _last_run(job["runs"]),
            ]
            for job in found
        ],
    )
    return 0


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _last_run(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "never"
    run = runs[0]
    detail = f": {run['error']}" if run.get("error") else ""
    return f"{run['status']} at {_utc(run['finished'])}{detail}"


async def functions(ns: argparse.Namespace) -> int:
    async with Deployment(ns.app, database_url=ns.database_url, sync_crons=False) as deployment:
        found = listing.describe(deployment.app)
    if ns.format == "json":
        print(json.dumps(found, indent=2, ensure_ascii=False))
        return 0
    if not found["functions"]:
        err.print("The app defines no functions.")
    else:
        output.print_table(
            out,
            ["function", "kind", "visibility", "args", "returns"],
            [
                [f["path"], f["kind"], f["visibility"], f["args"] or "", f["returns"] or ""]
                for f in found["functions"]
            ],
        )
    if not found["routes"]:
        err.print("The app has no HTTP routes (convex/http.py defines none).")
        return 0
    if found["functions"]:
        out.file.write("\n")
    output.print_table(
        out,
        ["method", "route", "handler"],
        [
            [r["method"], r["path"] if "path" in r else r["path_prefix"] + "*", r["handler"]]
            for r in found["routes"]
        ],
    )
    return 0
