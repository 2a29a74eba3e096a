"""``pyconvex dev`` and ``pyconvex serve``: run an app's HTTP actions and function API.

``dev`` reloads the functions folder when a file changes, or when an environment
variable is set or removed; when an edit does not load, it prints the error with
file and line and keeps serving the last version that did. ``serve`` is production
mode: no reload, error messages kept from clients (they go to the logs), plain log
lines on stderr. ``dev`` prints a line per request unless ``--quiet``; ``serve``
with ``--access-log``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape

from ..database import Database
from ..deployment import STATE_DIR, Deployment
from ..env import EnvStore
from ..errors import AppLoadError
from ..functions.logs import LogLine, Sink, install_capture
from ..persistence import open_persistence
from ..server import Backend, BackendServer, Listeners, bind
from ..server.admin_key import admin_key
from ..server.backend import Handled
from ..server.logfile import LogFile

_STYLES = {"ERROR": "red", "WARN": "yellow", "DEBUG": "dim", "INFO": "blue"}


def _printable(path: str) -> str:
    """A client chooses the path (%0a, %1b, %C2%9B decode to a newline, an escape, a CSI):
    shown escaped, it can neither forge a log line nor drive the terminal."""
    if path.isprintable():
        return path
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in path)


def console_sink(
    console: Console, *, color: bool, every_request_id: bool = False, dates: bool = False
) -> Sink:
    """Print each execution's lines as they finish.

    ``color``: the dev console's form, the request id on ERROR lines (on all of them with
    ``every_request_id``), the time of day (and the date with ``dates``). Else the plain form
    of production logs, every field on every line.
    """
    clock = "%Y-%m-%d %H:%M:%S" if dates else "%H:%M:%S"

    def sink(lines: list[LogLine]) -> None:
        for line in lines:
            if color:
                when = time.strftime(clock, time.localtime(line.timestamp))
                style = _STYLES.get(line.level, "default")
                request = (
                    f"[dim]request={line.request_id}[/] "
                    if every_request_id or line.level == "ERROR"
                    else ""
                )
                console.print(
                    f"[dim]{when}[/] [{style}]{line.level:<5}[/] "
                    f"[cyan]{escape(line.function or '')}[/] {request}{escape(line.message)}"
                )
            else:
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(line.timestamp))
                console.print(
                    f"{when} {line.level} request={line.request_id} "
                    f"function={line.function or '-'} {line.message}",
                    markup=False,
                )

    return sink


def access_printer(console: Console, *, color: bool) -> Callable[[Handled], None]:
    """One line per HTTP request served: method, path, status, milliseconds."""
    if not color:
        # Written straight to the stream: this runs on every request of a production server.
        stream = console.file if console.file is not None else sys.stderr

        def plain(handled: Handled) -> None:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            stream.write(
                f"{when} ACCESS {handled.method} {_printable(handled.path)} "
                f"{handled.status} "
                f"{handled.seconds * 1000:.1f}ms\n"
            )

        return plain

    def colored(handled: Handled) -> None:
        status = handled.status
        style = "green" if status < 400 else "yellow" if status < 500 else "red"
        console.print(
            f"[dim]{time.strftime('%H:%M:%S')}[/] {handled.method} "
            f"{escape(_printable(handled.path))} "
            f"[{style}]{status}[/] [dim]{handled.seconds * 1000:.1f} ms[/]"
        )

    return colored


def add_arguments(parser: argparse.ArgumentParser, *, production: bool) -> None:
    parser.add_argument(
        "dir", metavar="DIR", nargs="?", default=".", help="the app root (default: .)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=3210, help="function API port (default 3210)")
    parser.add_argument(
        "--site-port", type=int, default=3211, help="HTTP actions port (default 3211)"
    )
    parser.add_argument(
        "--max-body-size",
        type=int,
        default=int(os.environ.get("PYCONVEX_MAX_BODY_SIZE", 20 * 1024 * 1024)),
        metavar="BYTES",
        help="largest request body accepted, else 413 (default 20 MiB)",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        default=os.environ.get("FORWARDED_ALLOW_IPS"),
        metavar="IPS",
        help="proxies whose X-Forwarded-* headers are trusted (default 127.0.0.1)",
    )
    parser.add_argument(
        "--max-upload-size",
        type=int,
        default=int(os.environ.get("PYCONVEX_MAX_UPLOAD_SIZE", 4 * 1024**3)),
        metavar="BYTES",
        help="largest file accepted through an upload URL, else 413 (default 4 GiB)",
    )
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no line per request (method, path, status, ms)"
        + (" (the default of serve: see --access-log)" if production else ""),
    )
    if production:
        parser.add_argument(
            "--access-log",
            action="store_true",
            help="print a line per request (method, path, status, ms) on stderr",
        )
        parser.add_argument(
            "--no-dashboard",
            action="store_true",
            help="do not serve the dashboard at /dashboard/ on the API port",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=int(os.environ.get("PYCONVEX_WORKERS", 1)),
            metavar="N",
            help="worker processes sharing the sockets (default 1, or PYCONVEX_WORKERS)",
        )
        parser.add_argument(
            "--database-url",
            default=None,
            help="sqlite:///PATH or postgresql://... (default: DIR/.pyconvex/data.sqlite3, "
            "or PYCONVEX_DATABASE_URL)",
        )
        parser.add_argument(
            "--storage-url",
            default=None,
            help="file:///FOLDER or s3://BUCKET/PREFIX (default: DIR/.pyconvex/storage, or PYCONVEX_STORAGE_URL)",
        )


async def _start_when_loadable(
    deployment: Deployment, console: Console, *, watch: bool
) -> dict[str, tuple[int, int]] | None:
    """Start the deployment (in dev, waiting for a fix while the app does not load).

    Returns the stamps of the files that were loaded, or None if it gave up.
    """
    while True:
        stamps = _snapshot(deployment.functions_dir)
        try:
            await deployment.start()
            return stamps
        except AppLoadError as exc:
            console.print(f"[red]✖ Could not load the app:[/] {escape(str(exc))}")
            if not watch:
                return None
            console.print(
                "[dim]Waiting for a change to the functions folder or the environment "
                "variables...[/]"
            )
            await _wait_for_a_change(deployment, stamps)


async def _wait_for_a_change(deployment: Deployment, stamps: dict[str, tuple[int, int]]) -> None:
    """Until a file of the functions folder or a stored env var changes (module-level code
    may need one that is not set yet). The app is not running, so the variables are read
    from the database here, every half second."""
    from watchfiles import awatch

    database = Database(open_persistence(deployment.database_url))
    try:
        await database.setup(system_only=True)
        store = EnvStore(database, {})
        variables = await store.list()
        async for _ in awatch(
            deployment.functions_dir, step=50, rust_timeout=500, yield_on_timeout=True
        ):
            if _snapshot(deployment.functions_dir) != stamps or await store.list() != variables:
                return
    finally:
        await database.close()


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for path in folder.rglob("*.py"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        found[str(path)] = (stat.st_mtime_ns, stat.st_size)
    return found


async def _watch(
    deployment: Deployment, console: Console, loaded: dict[str, tuple[int, int]]
) -> None:
    """Reload when the functions folder differs from what was loaded, or the env vars from
    what it was loaded with (module-level code may have read them).

    Events only wake us up; the decision is a comparison of file stamps, so an
    edit made before the watcher got going is still picked up (within the
    half-second timeout). The server re-reads the variables every quarter second
    (``Backend._refresh_env``); comparing its copy costs no database read.
    """
    from watchfiles import awatch

    folder = deployment.functions_dir
    variables = deployment.env.visible()
    async for _changes in awatch(folder, step=50, rust_timeout=500, yield_on_timeout=True):
        current = _snapshot(folder)
        now = deployment.env.visible()
        if current == loaded and now == variables:
            continue
        why = "" if now == variables else " (environment variables changed)"
        loaded = current
        try:
            app = await deployment.reload()
        except AppLoadError as exc:
            console.print(f"[red]✖ Could not load the app:[/] {escape(str(exc))}")
            console.print("[yellow]  Still serving the last version that loaded.[/]")
            continue
        except Exception as exc:  # e.g. a schema change the data does not allow
            console.print(f"[red]✖ Reload failed:[/] {escape(str(exc))}")
            console.print("[yellow]  Still serving the last version that loaded.[/]")
            continue
        finally:
            # What this reload read; an attempt that failed is not retried until a change.
            variables = deployment.env.visible()
        routes = len(app.http) if app.http is not None else 0
        console.print(f"[green]✔ Reloaded{why}:[/] {len(app.functions)} functions, {routes} routes")


def _banner(
    console: Console, listeners: Listeners, key: str | None, *, production: bool, worker: str
) -> None:
    mode = "serve" if production else "dev"
    console.print(
        f"[green]✔ pyconvex {mode} ready:[/] function API {listeners.api_url} · "
        f"HTTP actions {listeners.site_url}{worker}"
    )
    if not production and key:
        console.print(f"[dim]  admin key: {key}[/]", markup=True)
        # The key in the fragment: browsers never send it, so no server or proxy logs it.
        link = f"{listeners.api_url}/dashboard/login#key={quote(key, safe='')}"
        console.print(f"[dim]  dashboard: {escape(link)}[/]")


def bind_or_explain(ns: argparse.Namespace, console: Console) -> Listeners | None:
    """Bind the two sockets, or say why not (and return None)."""
    try:
        return bind(ns.host, ns.port, ns.site_port)
    except OSError as exc:
        console.print(
            f"[red]✖ {escape(str(exc))}[/] (is another server running? try --port/--site-port)"
        )
        return None


async def run(ns: argparse.Namespace, console: Console, *, production: bool) -> int:
    listeners = bind_or_explain(ns, console)
    if listeners is None:
        return 1
    try:
        return await serve_on(listeners, ns, console, production=production)
    finally:
        listeners.close()


async def serve_on(
    listeners: Listeners,
    ns: argparse.Namespace,
    console: Console,
    *,
    production: bool,
    worker: str = "",
) -> int:
    """Serve the app on sockets bound already (by this process, or by the parent of workers)."""
    app_dir = Path(ns.dir).resolve()
    deployment = Deployment(
        app_dir,
        database_url=getattr(ns, "database_url", None),
        storage_url=getattr(ns, "storage_url", None),
        max_upload=ns.max_upload_size,
        site_url=os.environ.get("PYCONVEX_SITE_URL") or listeners.site_url,
        cloud_url=os.environ.get("PYCONVEX_CLOUD_URL") or listeners.api_url,
    )
    install_capture()
    deployment.log_sinks.append(console_sink(console, color=not production))
    deployment.log_sinks.append(LogFile(app_dir / STATE_DIR))
    key = admin_key(app_dir / STATE_DIR)
    backend = Backend(
        deployment,
        production=production,
        max_body=ns.max_body_size,
        site_port=listeners.site_port,
        key=key,
        dashboard=not getattr(ns, "no_dashboard", False),
    )
    # Off by default in production: a proxy in front usually logs requests, and the line
    # costs a few microseconds of a /health request's thirty.
    if not ns.quiet and (not production or ns.access_log):
        backend.request_observers.append(access_printer(console, color=not production))
    watcher: asyncio.Task[None] | None = None
    stop = _Stop()
    try:
        with stop.on_signals():
            try:
                loaded = await _start_when_loadable(deployment, console, watch=not production)
                if loaded is None:
                    return 1
                _banner(console, listeners, key, production=production, worker=worker)
                if not production:
                    watcher = asyncio.create_task(_watch(deployment, console, loaded))
                stop.server = BackendServer(
                    backend, listeners, forwarded_allow_ips=ns.forwarded_allow_ips
                )
                await stop.server.serve()
            finally:
                if watcher is not None:
                    watcher.cancel()
                await deployment.close()
    except asyncio.CancelledError:
        if not stop.cancelled:
            raise
    return 0


class _Stop:
    """SIGINT and SIGTERM end ``serve_on`` gracefully, whenever they come, and nothing else.

    Once serving, they stop the server. uvicorn handles them while it serves, then sends them
    to the process again once its own server has stopped; asyncio's default then cancelled
    the main task while the second server was still shutting down, so Ctrl-C ended in a
    traceback (and SIGTERM in a process killed mid-shutdown). Here the signal sent again only
    asks for the stop under way. Before serving (starting, or waiting for a fix), they cancel
    the start-up, which closes what it opened.
    """

    def __init__(self) -> None:
        self.server: BackendServer | None = None
        self.cancelled = False
        self._task = asyncio.current_task()

    def __call__(self) -> None:
        if self.server is not None:
            self.server.stop()
        elif not self.cancelled and self._task is not None:
            self.cancelled = True
            self._task.cancel()

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, self)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
