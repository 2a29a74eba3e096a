"""pyconvex init, dev (reload, last good version), serve, env and logs, as real processes."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from test_cli import pyconvex

WEB = Path(__file__).parent / "apps" / "web"
READY = re.compile(r"ready: function API (\S+) · HTTP actions (\S+)")


class Process:
    """A ``pyconvex dev|serve`` child whose stderr lines we can wait for (``ready``: wait
    for its start-up line, and learn its URLs)."""

    def __init__(self, *args: str, ready: bool = True, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyconvex.cli.main", *args, "--port", "0", "--site-port", "0"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "COLUMNS": "500", **(env or {})},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        if ready:
            line = self.wait_for(READY.pattern)
            found = READY.search(line)
            assert found is not None
            self.api, self.site = found.group(1), found.group(2)

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("<exit>")

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        """The next stderr line matching ``pattern`` (fails on exit or timeout)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; saw {self.seen}") from None
            self.seen.append(line)
            if line == "<exit>":
                raise AssertionError(f"process exited; saw {self.seen}")
            if re.search(pattern, line):
                return line

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def interrupt(self) -> tuple[int, list[str]]:
        """Ctrl-C: its exit code and every stderr line it wrote."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        while (line := self.lines.get(timeout=30)) != "<exit>":
            self.seen.append(line)
        return code, self.seen


@pytest.fixture
def app(tmp_path: Path) -> Path:
    target = tmp_path / "web"
    shutil.copytree(WEB / "convex", target / "convex", ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture
def dev(app: Path) -> Iterator[Process]:
    process = Process("dev", str(app))
    yield process
    process.stop()


def test_init_makes_a_working_app(tmp_path: Path) -> None:
    target = tmp_path / "fresh"
    made = pyconvex("init", str(target))
    assert made.returncode == 0, made.stderr
    assert (target / "convex" / "http.py").exists()
    again = pyconvex("init", str(target))
    assert again.returncode == 1
    assert "already exists" in again.stderr
    server = Process("dev", str(target))
    try:
        assert httpx.get(f"{server.site}/health").json() == {"status": "ok"}
        created = httpx.post(f"{server.site}/messages", json={"author": "a", "body": "hi"})
        assert created.status_code == 201
        listed = httpx.get(f"{server.site}/messages").json()
        assert [m["body"] for m in listed] == ["hi"]
        assert httpx.post(f"{server.site}/messages", content=b"{").status_code == 400
    finally:
        server.stop()


def test_dev_prints_the_admin_key_and_keeps_it(app: Path, dev: Process) -> None:
    key = (app / ".pyconvex" / "admin_key").read_text().strip()
    assert key in dev.wait_for("admin key:")
    secret = httpx.post(
        f"{dev.api}/api/query",
        json={"path": "counters:secret", "args": {}},
        headers={"Authorization": f"Convex {key}"},
    )
    assert secret.json() == {"status": "success", "value": "internal"}


def test_dev_reloads_and_keeps_the_last_good_version(app: Path, dev: Process) -> None:
    http = app / "convex" / "http.py"
    original = http.read_text()
    http.write_text(
        original + "\n\n@http.route(path='/added', method='GET')\nasync def added(ctx, request):\n"
        "    return Response('new route')\n"
    )
    dev.wait_for("Reloaded")
    assert httpx.get(f"{dev.site}/added").text == "new route"

    http.write_text(original + "\n\ndef broken(:\n")
    error = dev.wait_for("Could not load the app")
    line_number = original.count("\n") + 3
    assert f"http.py:{line_number}" in error
    dev.wait_for("Still serving the last version")
    assert httpx.get(f"{dev.site}/added").text == "new route"
    assert httpx.get(f"{dev.site}/health").json() == {"status": "ok"}

    (app / "convex" / "counters.py").write_text(
        (app / "convex" / "counters.py").read_text()
        + "\n\n@query(args={'x': 'not a validator'})\nasync def bad(ctx, args):\n    return 1\n"
    )
    dev.wait_for("Could not load the app")

    http.write_text(original)
    (app / "convex" / "counters.py").write_text((WEB / "convex" / "counters.py").read_text())
    dev.wait_for("Reloaded")
    assert httpx.get(f"{dev.site}/added").status_code == 404


def test_dev_waits_for_a_fix_when_the_first_load_fails(app: Path) -> None:
    http = app / "convex" / "http.py"
    good = http.read_text()
    http.write_text(
        "from pyconvex import HttpRouter\nhttp = HttpRouter()\nhttp.route(path='x', method='GET', handler=print)\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyconvex.cli.main",
            "dev",
            str(app),
            "--port",
            "0",
            "--site-port",
            "0",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "Could not load the app" in first
        assert "path 'x' does not start with a /" in first
        assert "http.py:3" in first
        assert "Waiting for a change" in proc.stderr.readline()
        http.write_text(good)
        assert "ready" in proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dev_streams_logs_and_pyconvex_logs_reads_them(app: Path, dev: Process) -> None:
    assert httpx.post(f"{dev.site}/log?tag=hello").status_code == 200
    dev.wait_for(r"POST /log\s+hello 19")
    dev.wait_for(r"INFO\s+POST /log\s+info hello")
    shown = pyconvex("logs", "--app", str(app), "--lines", "3")
    assert shown.returncode == 0, shown.stderr
    assert "hello 19" in shown.stdout and "info hello" in shown.stdout
    assert "hello 17" not in shown.stdout


def test_logs_follow_over_the_api(app: Path, dev: Process) -> None:
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyconvex.cli.main",
            "logs",
            "--follow",
            "--app",
            str(app),
            "--url",
            dev.api,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        httpx.post(
            f"{dev.api}/api/query", json={"path": "counters:chatty", "args": {"tag": "f", "n": 1}}
        )
        assert follower.stdout is not None
        assert "f 0" in follower.stdout.readline()
        assert "done f" in follower.stdout.readline()
    finally:
        follower.terminate()
        follower.wait(timeout=30)


def test_env_commands_directly_and_over_the_api(app: Path) -> None:
    assert pyconvex("env", "set", "API_TOKEN", "s3cret", "--app", str(app)).returncode == 0
    assert pyconvex("env", "get", "API_TOKEN", "--app", str(app)).stdout == "s3cret\n"
    bad = pyconvex("env", "set", "9lives", "x", "--app", str(app))
    assert bad.returncode == 1 and "must start with a letter" in bad.stderr

    server = Process("dev", str(app))
    try:
        assert httpx.get(f"{server.site}/env?name=API_TOKEN").json() == {"value": "s3cret"}
        url = ["--app", str(app), "--url", server.api]
        assert pyconvex("env", "set", "REGION", "eu", *url).returncode == 0
        assert httpx.get(f"{server.site}/env?name=REGION").json() == {"value": "eu"}
        assert pyconvex("env", "list", *url).stdout == "API_TOKEN=s3cret\nREGION=eu\n"
        assert pyconvex("env", "remove", "REGION", *url).returncode == 0
        assert pyconvex("env", "get", "REGION", *url).returncode == 1
        ran = pyconvex("run", "counters:secret", *url)
        assert ran.returncode == 0 and ran.stdout.strip() == '"internal"'
        httpx.post(f"{server.site}/increment", json={"name": "cli"})
        tables = pyconvex("data", "--format", "json", *url)
        found = json.loads(tables.stdout)
        found.pop("_metrics", None)  # the server's own Health figures, written as it serves
        assert found == {"_env_vars": 1, "counters": 1}
        docs = pyconvex("data", "counters", "--format", "json", *url)
        assert json.loads(docs.stdout)["value"] == 1
        missing = pyconvex("data", "1nvalid", *url)
        assert missing.returncode == 1 and 'There is no table "1nvalid"' in missing.stderr
        wrong = pyconvex("run", "counters:secret", *url, "--admin-key", "nope")
        assert wrong.returncode == 1 and "401" in wrong.stderr
    finally:
        server.stop()
    assert pyconvex("env", "remove", "API_TOKEN", "--app", str(app)).returncode == 0
    assert pyconvex("env", "list", "--app", str(app)).stdout == ""


def test_serve_is_production_mode(app: Path) -> None:
    server = Process("serve", str(app))
    try:
        body = httpx.get(f"{server.site}/boom").json()
        assert body["code"].endswith("] Server Error")
        # the traceback goes to the server's log instead, as a plain line
        server.wait_for(r"ERROR request=\w+ function=GET /boom Traceback")
    finally:
        server.stop()
