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
from collections.abc import Coroutine, Sequence
from typing import Any

from rich.markup import escape

from .. import snapshot, values
from ..deployment import not_an_app
from ..errors import AppLoadError, ConvexError, PyConvexError
from ..webhooks.admin import ACTIONS as WEBHOOK_ACTIONS
from . import commands, serving, snapshots, webhooks, workers
from .commands import err as _err
from .remote import RemoteError

# The commands that act on the app in a folder (unless --url names a running deployment).
_APP_COMMANDS = (
    "run", "env", "logs", "data", "webhooks", "export", "import", "functions", "crons",
)  # fmt: skip


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
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def app_command(name: str, help: str, *, remote: bool = False) -> argparse.ArgumentParser:
        sub = subcommands.add_parser(name, help=help, description=help)
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

    init = subcommands.add_parser("init", help="Create a new app.", description="Create a new app.")
    init.add_argument("dir", metavar="DIR", help="the folder to create the app in")

    dev = subcommands.add_parser(
        "dev", help="Serve an app and reload it on change.", description=serving.__doc__
    )
    serving.add_arguments(dev, production=False)
    serve = subcommands.add_parser(
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

    hooks = app_command(
        "webhooks",
        "List, show, replay or purge recorded webhook events; pause or resume a provider's "
        "handlers.",
        remote=True,
    )
    hooks.add_argument("action", choices=WEBHOOK_ACTIONS)
    hooks.add_argument(
        "id",
        metavar="ID",
        nargs="?",
        help="an event id (show, replay) or a provider (pause, resume)",
    )
    hooks.add_argument("--limit", type=int, default=50, help="list at most this many (default 50)")
    hooks.add_argument("--format", choices=("table", "json"), default="table")
    hooks.add_argument("--provider", help="only this provider's events (list, replay, purge)")
    hooks.add_argument(
        "--status", choices=("pending", "processing", "succeeded", "failed"), help="list, purge"
    )
    hooks.add_argument("--type", help="only events of this type (list)")
    hooks.add_argument(
        "--since", help="received at or after: an ISO time (UTC unless zoned), epoch, or 2h/7d ago"
    )
    hooks.add_argument("--until", help="received at or before (list), as --since")
    hooks.add_argument("--before", help="received before (purge), as --since")
    hooks.add_argument("--grep", metavar="TEXT", help="only events whose body holds TEXT (list)")
    hooks.add_argument(
        "--failed", action="store_true", help="replay: every failed event (with --since)"
    )

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

    crons = app_command(
        "crons", "List the cron jobs: schedule, target, next run and last run.", remote=True
    )
    crons.add_argument("action", choices=("list",))
    crons.add_argument("--format", choices=("table", "json"), default="table")

    snapshots.add_arguments(
        app_command("export", "Save every table and file of the deployment to a ZIP snapshot.")
    )
    snapshots.add_arguments(
        app_command("import", "Load a ZIP snapshot (from export) into an empty deployment.")
    )
    return parser


def _not_an_app(ns: argparse.Namespace) -> str | None:
    """Why the command cannot run on the folder it was given, or None."""
    if ns.command in ("dev", "serve"):
        return not_an_app(ns.dir)
    if ns.command in _APP_COMMANDS and not getattr(ns, "url", None):
        return not_an_app(ns.app)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    problem = _not_an_app(ns)
    if problem is not None:
        _err.print(f"[red]✖ {escape(problem)}[/]")
        return 1
    try:
        if ns.command == "init":
            return commands.init(ns)
        if ns.command == "logs":
            return commands.logs(ns)
        if ns.command == "serve" and ns.workers > 1:
            return workers.run(ns, _err, _asyncio_run)
        if ns.command in ("dev", "serve"):
            return _asyncio_run(serving.run(ns, _err, production=ns.command == "serve"))
        if ns.command == "export":
            return _asyncio_run(snapshots.export(ns, _err))
        if ns.command == "import":
            return _asyncio_run(snapshots.import_(ns, _err))
        command = {
            "run": commands.run,
            "data": commands.data,
            "env": commands.env,
            "webhooks": webhooks.webhooks,
            "functions": commands.functions,
            "crons": commands.crons,
        }[ns.command]
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
