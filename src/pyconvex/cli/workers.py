"""``pyconvex serve --workers N``: N processes serving the same sockets, kept alive.

The parent binds the two sockets, forks N workers (each a whole server: its own event
loop, deployment, scheduler worker) and then only watches them: a worker that dies is
replaced, so a crash costs the requests it was serving, never the service. The kernel
spreads new connections over the workers accepting on the shared sockets. SIGTERM or
SIGINT to the parent stops every worker gracefully.

Nothing that matters lives in one worker's memory: data, scheduled jobs, webhook events,
env vars and API keys are in the database, files in the store. A worker's claims carry its
lease, so the others recover what a dead worker was running (docs/deployment.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

from rich.console import Console

from ..server import Listeners
from . import serving

# A worker that exits (rather than being killed) this soon after starting is not crashing
# at random: the app does not start (a load error, the database unreachable). Restarting it
# would only loop. A worker killed by a signal (the OOM killer, kill -9) is always replaced.
STARTUP_GRACE = 5.0

Runner = Callable[[Coroutine[Any, Any, int]], int]


def run(ns: argparse.Namespace, console: Console, runner: Runner) -> int:
    listeners = serving.bind_or_explain(ns, console)
    if listeners is None:
        return 1
    count = ns.workers
    workers: dict[int, tuple[int, float]] = {}  # pid -> (number, started)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            _signal(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for number in range(1, count + 1):
            pid, started = _spawn(number, count, listeners, ns, console, runner, previous)
            workers[pid] = (number, started)
        code = 0
        while workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            number, started = workers.pop(pid, (0, 0.0))
            if stopping or number == 0:
                continue
            how = _describe(status)
            if not os.WIFSIGNALED(status) and time.monotonic() - started < STARTUP_GRACE:
                console.print(f"[red]✖ worker {number} {how} while starting: stopping[/]")
                stop(signal.SIGTERM, None)
                code = 1
                continue
            console.print(f"[yellow]worker {number} {how}: starting a new one[/]")
            pid, started = _spawn(number, count, listeners, ns, console, runner, previous)
            workers[pid] = (number, started)
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listeners.close()


def _spawn(
    number: int,
    count: int,
    listeners: Listeners,
    ns: argparse.Namespace,
    console: Console,
    runner: Runner,
    handlers: dict[signal.Signals, Any],
) -> tuple[int, float]:
    pid = os.fork()
    if pid:
        return pid, time.monotonic()
    # The worker: the parent's signal handlers are not ours; uvicorn installs its own.
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    code = 1
    try:
        code = runner(
            serving.serve_on(
                listeners, ns, console, production=True, worker=f" (worker {number} of {count})"
            )
        )
    except BaseException:  # anything at all: the parent decides what happens next
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it is gone already
        os.kill(pid, sig)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
