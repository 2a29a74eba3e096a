"""``pyconvex dev`` and ``pyconvex serve``: run an app's HTTP actions and function API.

``dev`` reloads the functions folder when a file changes; when an edit does
not load, it prints the error with file and line and keeps serving the last
version that did. ``serve`` is production mode: no reload, error messages
kept from clients (they go to the logs), plain log lines on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..deployment import STATE_DIR, Deployment
from ..errors import AppLoadError
from ..functions.logs import LogLine, Sink, install_capture
from ..server import Backend, BackendServer, Listeners, bind
from ..server.admin_key import admin_key
from ..server.logfile import LogFile

_STYLES = {"ERROR": "red", "WARN": "yellow", "DEBUG": "dim", "INFO": "blue"}


def console_sink(console: Console, *, color: bool) -> Sink:
    """Print each execution's lines as they finish."""

    def sink(lines: list[LogLine]) -> None:
        for line in lines:
            if color:
                when = time.strftime("%H:%M:%S", time.localtime(line.timestamp))
                style = _STYLES.get(line.level, "default")
                console.print(
                    f"[dim]{when}[/] [{style}]{line.level:<5}[/] "
                    f"[cyan]{escape(line.function or '')}[/] {escape(line.message)}"
                )
            else:
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(line.timestamp))
                console.print(
                    f"{when} {line.level} request={line.request_id} "
                    f"function={line.function or '-'} {line.message}",
                    markup=False,
                )

    return sink


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
    if production:
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
            console.print("[dim]Waiting for a change to the functions folder...[/]")
            from watchfiles import awatch

            async for _ in awatch(
                deployment.functions_dir, step=50, rust_timeout=500, yield_on_timeout=True
            ):
                if _snapshot(deployment.functions_dir) != stamps:
                    break


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
    """Reload when the functions folder differs from what was loaded.

    Events only wake us up; the decision is a comparison of file stamps, so an
    edit made before the watcher got going is still picked up (within the
    half-second timeout).
    """
    from watchfiles import awatch

    folder = deployment.functions_dir
    async for _changes in awatch(folder, step=50, rust_timeout=500, yield_on_timeout=True):
        current = _snapshot(folder)
        if current == loaded:
            continue
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
        routes = len(app.http) if app.http is not None else 0
        console.print(f"[green]✔ Reloaded:[/] {len(app.functions)} functions, {routes} routes")


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
    )
    watcher: asyncio.Task[None] | None = None
    try:
        loaded = await _start_when_loadable(deployment, console, watch=not production)
        if loaded is None:
            return 1
        _banner(console, listeners, key, production=production, worker=worker)
        if not production:
            watcher = asyncio.create_task(_watch(deployment, console, loaded))
        await BackendServer(backend, listeners, forwarded_allow_ips=ns.forwarded_allow_ips).serve()
    finally:
        if watcher is not None:
            watcher.cancel()
        await deployment.close()
    return 0
