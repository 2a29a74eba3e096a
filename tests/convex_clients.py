"""Convex's own clients, installed for the tests: npm ``convex`` (through node) and PyPI
``convex``, each pinned, into a cache folder shared by every run on this machine.

They are test-only dependencies: nothing in pyconvex imports them. The first run installs
them (a few seconds, from the npm and pip registries); later runs find them in place.
``PYCONVEX_TEST_CACHE`` moves the cache (default ``~/.cache/pyconvex-tests``).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyconvex.values import from_convex_json, to_convex_json

NPM_CONVEX = "1.48.0"
PYPI_CONVEX = "0.8.1"
CACHE = Path(os.environ.get("PYCONVEX_TEST_CACHE", Path.home() / ".cache" / "pyconvex-tests"))
DRIVER = Path(__file__).parent / "clients" / "driver.mjs"


@contextmanager
def _locked() -> Iterator[None]:
    """One installer at a time (pytest runs may overlap on one machine)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def node_modules() -> Path:
    """The ``node_modules`` folder holding npm ``convex`` (and ``ws``)."""
    prefix = CACHE / f"npm-convex-{NPM_CONVEX}"
    modules = prefix / "node_modules"
    marker = modules / "convex" / "package.json"
    with _locked():
        if not marker.exists() or json.loads(marker.read_text())["version"] != NPM_CONVEX:
            subprocess.run(
                ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                 "--loglevel=error", f"convex@{NPM_CONVEX}", "ws@8"],
                check=True, capture_output=True, timeout=600,
            )  # fmt: skip
    return modules


def browser_bundle() -> Path:
    """``convex/dist/browser.bundle.js``: the client for a page with a plain script tag."""
    return node_modules() / "convex" / "dist" / "browser.bundle.js"


def python_client() -> Path:
    """A Python interpreter (a virtualenv of its own) with PyPI ``convex`` installed."""
    venv = CACHE / f"pypi-convex-{PYPI_CONVEX}"
    python = venv / "bin" / "python"
    with _locked():
        check = [str(python), "-c", f"import convex, importlib.metadata as m; "
                 f"assert m.version('convex') == {PYPI_CONVEX!r}"]  # fmt: skip
        if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 f"convex=={PYPI_CONVEX}"],
                check=True, capture_output=True, timeout=600,
            )  # fmt: skip
    return python


class Failed(Exception):
    """A call a client reported as failed: its message, and ``data`` for a ConvexError."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__(event["message"])
        self.message: str = event["message"]
        self.convex_error: bool = event["convexError"]
        self.data = from_convex_json(event["data"], numbers="float") if "data" in event else None


class Node:
    """npm ``convex`` clients in one node process (``tests/clients/driver.mjs``), driven by
    JSON lines: each client a ``ConvexClient`` (WebSocket) or ``ConvexHttpClient``.

    Every event the process reports (a subscription's new value, a call's outcome) is kept
    in order, and the tests wait for the ones they expect: no sleeps.
    """

    def __init__(self, modules: Path) -> None:
        self.proc = subprocess.Popen(
            ["node", str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CONVEX_NODE_MODULES": str(modules)},
        )
        self.events: list[dict[str, Any]] = []
        self._arrived = threading.Condition()
        self.stderr: list[str] = []
        self._next = 0
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._arrived:
                self.events.append(json.loads(line))
                self._arrived.notify_all()
        with self._arrived:
            self.events.append({"event": "exit"})
            self._arrived.notify_all()

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def wait(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 30, start: int = 0
    ) -> dict[str, Any]:
        """The first event from index ``start`` on that ``match``es (waiting for it)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for event in self.events[start:]:
                    if match(event):
                        return event
                    if event["event"] == "exit":
                        raise AssertionError(f"node exited: {self.stderr[-20:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such event; got {self.events[-10:]}")
                self._arrived.wait(left)

    def client(self, url: str, *, http: bool = False, **auth: str) -> str:
        """A new client of ``url``; ``admin=key`` or ``token=jwt`` authenticates it."""
        self._next += 1
        name = f"c{self._next}"
        self.send(op="client", name=name, kind="http" if http else "ws", url=url, **auth)
        return name

    def subscribe(self, client: str, path: str, args: Any = None) -> str:
        self._next += 1
        sub = f"s{self._next}"
        self.send(op="subscribe", client=client, sub=sub, path=path, args=_wire(args))
        return sub

    def unsubscribe(self, sub: str) -> None:
        self.send(op="unsubscribe", sub=sub)

    def update(self, sub: str, match: Callable[[Any], bool] = lambda _: True) -> Any:
        """The first value (from the start) of ``sub`` that ``match``es."""
        event = self.wait(lambda e: e.get("sub") == sub and e["event"] == "update"
                          and match(_value(e)))  # fmt: skip
        return _value(event)

    def start_call(self, client: str, kind: str, path: str, args: Any = None) -> int:
        """Start a call; ``outcome(id)`` waits for it."""
        self._next += 1
        self.send(op="call", client=client, id=self._next, kind=kind, path=path,
                  args=_wire(args))  # fmt: skip
        return self._next

    def outcome(self, call: int) -> dict[str, Any]:
        return self.wait(lambda e: e.get("id") == call and e["event"] in ("result", "failed"))

    def call(self, client: str, kind: str, path: str, args: Any = None) -> Any:
        """A query, mutation, action or consistentQuery: its value, or ``Failed``."""
        event = self.outcome(self.start_call(client, kind, path, args))
        if event["event"] == "failed":
            raise Failed(event)
        return _value(event)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send(op="exit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wire(args: Any) -> Any:
    return to_convex_json({} if args is None else args)


def _value(event: dict[str, Any]) -> Any:
    return from_convex_json(event["value"], numbers="float")
