"""The command line as a new user meets it (issue 16): real ``pyconvex`` processes, real
SQLite, real servers on loopback."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import wait_until
from pyconvex.cli.scaffold import scaffold
from test_cli import pyconvex
from test_cli_serving import Process

EXTRAS = """\
import asyncio
import os
from pathlib import Path

from pyconvex import action, internal_mutation, mutation, query, v

GREETING = os.environ.get("GREETING", "unset")


@query
async def greeting(ctx, args):
    return GREETING


@query
async def fail(ctx, args):
    return _helper()


def _helper():
    raise ValueError("boom in the app")


@mutation(args={"n": v.number()}, returns=v.null())
async def bad_write(ctx, args):
    await ctx.db.insert("messages", {"author": args["n"], "body": "x"})


@action(args={"marker": v.string()})
async def slow(ctx, args):
    Path(args["marker"]).write_text("started")
    await asyncio.sleep(60)


@internal_mutation
async def on_stripe(ctx, args):
    return None
"""

ROUTES = """

@http.route(path="/boom", method="GET")
async def boom(ctx, request: Request) -> Response:
    raise RuntimeError("the route broke")


@http.route(path_prefix="/files/", method="GET")
async def files(ctx, request: Request) -> Response:
    return Response("a file")


http.webhook(
    path="/hooks/stripe",
    provider="stripe",
    secret_env="STRIPE_SECRET",
    handler=internal.extras.on_stripe,
)
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """``pyconvex init``'s app, plus functions that fail in the ways a user's do."""
    target = tmp_path / "app"
    scaffold(target)
    (target / "convex" / "extras.py").write_text(EXTRAS)
    http = target / "convex" / "http.py"
    text = http.read_text().replace("import HttpRouter,", "import HttpRouter, internal,")
    http.write_text(text + ROUTES)
    return target


def line_of(code: str) -> int:
    """The line of ``code`` in convex/extras.py."""
    return next(n for n, line in enumerate(EXTRAS.splitlines(), 1) if code in line)


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- a folder that is not an app ----------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["env", "set", "X", "1"],
        ["env", "list"],
        ["logs"],
        ["logs", "--follow"],
        ["data"],
        ["data", "messages"],
        ["run", "messages:list"],
        ["webhooks", "list"],
        ["functions"],
        ["export", "backup.zip"],
        ["import", "backup.zip"],
        ["dev"],
        ["serve"],
        ["dev", "nosuchdir"],
    ],
)
def test_a_folder_without_convex_is_refused_in_one_line(command: list[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pyconvex.cli.main", *command],
        capture_output=True,
        text=True,
        cwd=empty,
        timeout=60,
    )
    named = empty / command[1] if command == ["dev", "nosuchdir"] else empty
    assert done.returncode == 1
    assert done.stderr == (
        f"✖ {named} is not a pyconvex app: there is no convex/ folder "
        "(create one with pyconvex init DIR)\n"
    )
    assert tree(empty) == []  # no stray .pyconvex/, admin key, database or folder


def test_with_url_no_app_folder_is_needed(app: Path, tmp_path: Path) -> None:
    server = Process("dev", str(app))
    try:
        key = (app / ".pyconvex" / "admin_key").read_text().strip()
        empty = tmp_path / "elsewhere"
        empty.mkdir()
        remote = ["--url", server.api, "--admin-key", key]
        for command in (["env", "set", "REGION", "eu"], ["env", "list"], ["data"]):
            done = subprocess.run(
                [sys.executable, "-m", "pyconvex.cli.main", *command, *remote],
                capture_output=True,
                text=True,
                cwd=empty,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
        assert tree(empty) == []
    finally:
        server.stop()


# -- pyconvex run --------------------------------------------------------------------------


def test_run_shows_the_error_and_the_apps_frames_only(app: Path) -> None:
    failed = pyconvex("run", "extras:fail", "--app", str(app))
    assert failed.returncode == 1
    lines = failed.stderr.splitlines()
    assert lines[0] == "✖ Uncaught ValueError: boom in the app"
    extras = str(app / "convex" / "extras.py")
    assert f'File "{extras}", line {line_of("return _helper()")}, in fail' in failed.stderr
    assert f'File "{extras}", line {line_of("raise ValueError")}, in _helper' in failed.stderr
    assert "Traceback" not in failed.stderr
    assert "pyconvex/" not in failed.stderr.replace(str(app), "")  # no frame of pyconvex's own

    # A write the schema refuses: the validator's message, and where the app wrote it.
    refused = pyconvex("run", "extras:bad_write", '{"n": 1}', "--app", str(app))
    assert refused.returncode == 1
    assert refused.stderr.startswith("✖ SchemaValidationError: ")
    assert "Path: .author" in refused.stderr
    assert f'File "{extras}", line {line_of("ctx.db.insert")}, in bad_write' in refused.stderr

    # Arguments refused before the function ran: the message once, no frames at all.
    bad_args = pyconvex("run", "messages:send", '{"author": 1}', "--app", str(app))
    assert bad_args.returncode == 1
    assert bad_args.stderr.count("ArgumentValidationError") == 1
    assert "Path: .author" in bad_args.stderr and "File " not in bad_args.stderr


# -- environment variables and module-level code -----------------------------------------


def test_env_vars_reach_module_level_code_in_every_command(app: Path) -> None:
    (app / "convex" / "configured.py").write_text(
        "import os\n\nfrom pyconvex import query\n\nBASE = os.environ['API_BASE']\n\n\n"
        "@query\nasync def base(ctx, args):\n    return BASE\n"
    )
    unset = pyconvex("functions", "--app", str(app))
    assert unset.returncode == 1 and "KeyError: 'API_BASE'" in unset.stderr

    assert (
        pyconvex("env", "set", "API_BASE", "https://api.example", "--app", str(app)).returncode == 0
    )
    for command in (["functions"], ["data"], ["webhooks", "list"], ["data", "messages"]):
        done = pyconvex(*command, "--app", str(app))
        assert done.returncode == 0, (command, done.stderr)

    # The deployment's value wins over the process's own, as in Convex (where it is all
    # that code sees).
    ran = subprocess.run(
        [sys.executable, "-m", "pyconvex.cli.main", "run", "configured:base", "--app", str(app)],
        capture_output=True,
        text=True,
        env={**os.environ, "API_BASE": "from the process"},
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == "https://api.example"


def test_dev_waiting_for_a_fix_starts_once_the_missing_variable_is_set(app: Path) -> None:
    (app / "convex" / "configured.py").write_text("import os\n\nBASE = os.environ['API_BASE']\n")
    dev = Process("dev", str(app), ready=False)
    try:
        dev.wait_for("KeyError: 'API_BASE'")
        dev.wait_for("Waiting for a change")
        assert pyconvex("env", "set", "API_BASE", "x", "--app", str(app)).returncode == 0
        dev.wait_for("pyconvex dev ready")
    finally:
        dev.stop()


def test_dev_reloads_when_a_variable_changes(app: Path) -> None:
    dev = Process("dev", str(app))
    try:
        greeting = {"path": "extras:greeting", "args": {}}
        assert httpx.post(f"{dev.api}/api/query", json=greeting).json()["value"] == "unset"
        assert pyconvex("env", "set", "GREETING", "hello", "--app", str(app)).returncode == 0
        dev.wait_for(r"✔ Reloaded \(environment variables changed\)")
        assert httpx.post(f"{dev.api}/api/query", json=greeting).json()["value"] == "hello"
        assert pyconvex("env", "remove", "GREETING", "--app", str(app)).returncode == 0
        dev.wait_for(r"✔ Reloaded \(environment variables changed\)")
        assert httpx.post(f"{dev.api}/api/query", json=greeting).json()["value"] == "unset"
    finally:
        dev.stop()


# -- the console: request ids, access lines, validation failures ---------------------------

REQUEST_ID = r"request=([0-9a-f]{16})"


def test_dev_console_names_the_request_of_every_error_and_each_request(app: Path) -> None:
    dev = Process("dev", str(app))
    try:
        assert httpx.get(f"{dev.site}/boom").status_code == 500
        error = dev.wait_for(r"ERROR\s+GET /boom " + REQUEST_ID)
        found = re.search(REQUEST_ID, error)
        assert found is not None
        request_id = found.group(1)
        dev.wait_for(r"GET /boom 500 [\d.]+ ms$")

        # Refused arguments and a refused write reach the caller as an error value; the
        # console logs them too, with their request id.
        refused = httpx.post(
            f"{dev.api}/api/mutation", json={"path": "messages:send", "args": {"author": 1}}
        ).json()
        assert refused["status"] == "error"
        dev.wait_for(r"ERROR\s+messages:send " + REQUEST_ID + " ArgumentValidationError")
        dev.wait_for(r"POST /api/mutation 200 [\d.]+ ms$")
        httpx.post(f"{dev.api}/api/mutation", json={"path": "extras:bad_write", "args": {"n": 1}})
        dev.wait_for(r"ERROR\s+extras:bad_write " + REQUEST_ID + " SchemaValidationError")
        httpx.post(
            f"{dev.site}/messages", json={"author": "a", "body": "b"}
        )  # through an HTTP action's ctx.run_mutation: fine
        dev.wait_for(r"POST /messages 201 [\d.]+ ms$")
        # A path a client chose cannot forge a line or reach the terminal as a control code.
        httpx.get(f"{dev.site}/x%0aFORGED%1b[31m")
        dev.wait_for(r"GET /x\\nFORGED\\x1b\[31m 404 [\d.]+ ms$")
        assert not any(line.startswith("FORGED") for line in dev.seen)
    finally:
        dev.stop()

    logs = pyconvex("logs", "--app", str(app))
    assert logs.returncode == 0, logs.stderr
    assert f"request={request_id}" in logs.stdout
    lines = [line for line in logs.stdout.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]
    assert lines and all(re.search(REQUEST_ID, line) for line in lines)  # every line has one


def test_dev_quiet_prints_no_access_lines(app: Path) -> None:
    dev = Process("dev", str(app), "--quiet")
    try:
        httpx.get(f"{dev.site}/health")
        httpx.get(f"{dev.site}/boom")
        dev.wait_for(r"ERROR\s+GET /boom")
        assert not any(" /health " in line for line in dev.seen)
    finally:
        dev.stop()


def test_serve_prints_access_lines_only_when_asked(app: Path) -> None:
    server = Process("serve", str(app), "--access-log")
    try:
        httpx.get(f"{server.site}/files/a.txt")
        server.wait_for(r"^\S+Z ACCESS GET /files/a\.txt 200 [\d.]+ms$")
    finally:
        server.stop()


# -- output to a pipe -----------------------------------------------------------------------


def test_output_to_a_pipe_is_never_cut(app: Path) -> None:
    body = "a long message " * 20
    ids = [
        json.loads(
            pyconvex(
                "run", "messages:send", json.dumps({"author": f"author {i}", "body": body}),
                "--app", str(app),
            ).stdout
        )
        for i in range(3)
    ]  # fmt: skip
    table = pyconvex("data", "messages", "--app", str(app))  # stdout is a pipe here
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split("\t")[:2] == ["_id", "_creationTime"]
    assert {row.split("\t")[0] for row in rows} == set(ids)
    assert all(body in row.split("\t") for row in rows)

    listed = pyconvex("functions", "--app", str(app))
    extras = str(app / "convex")
    assert "messages:send\tmutation\tpublic\tv.object({author: v.string(), body: v.string()})" in (
        listed.stdout
    )
    assert extras not in listed.stdout  # handlers are named by the app's files, not paths
    tables = pyconvex("data", "--app", str(app))
    assert tables.stdout.splitlines() == ["table\tdocuments", "messages\t3"]


# -- small things a new user looks for -----------------------------------------------------


def test_version() -> None:
    done = pyconvex("--version")
    assert done.returncode == 0
    assert done.stdout == f"pyconvex {importlib.metadata.version('pyconvex')}\n"


def test_functions_lists_functions_and_routes_with_their_validators(app: Path) -> None:
    done = pyconvex("functions", "--app", str(app), "--format", "json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    by_path = {f["path"]: f for f in found["functions"]}
    assert by_path["messages:send"] == {
        "path": "messages:send",
        "kind": "mutation",
        "visibility": "public",
        "args": "v.object({author: v.string(), body: v.string()})",
        "returns": 'v.id("messages")',
    }
    assert by_path["extras:on_stripe"]["visibility"] == "internal"
    assert by_path["extras:slow"]["kind"] == "action"
    assert by_path["extras:greeting"]["args"] is None
    assert found["routes"] == [
        {"method": "GET", "path": "/boom", "handler": "http:boom"},
        {"method": "GET", "path": "/health", "handler": "http:health"},
        {
            "method": "POST",
            "path": "/hooks/stripe",
            "handler": "webhook stripe -> extras:on_stripe (secret in STRIPE_SECRET)",
        },
        {"method": "GET", "path": "/messages", "handler": "http:get_messages"},
        {"method": "POST", "path": "/messages", "handler": "http:post_message"},
        {"method": "GET", "path_prefix": "/files/", "handler": "http:files"},
    ]


def test_data_of_a_table_that_does_not_exist(app: Path) -> None:
    pyconvex("run", "messages:send", '{"author": "a", "body": "b"}', "--app", str(app))
    missing = pyconvex("data", "mesages", "--app", str(app))
    assert missing.returncode == 1
    assert missing.stderr == '✖ There is no table "mesages" (the tables: messages)\n'
    empty = pyconvex("data", "_scheduled_functions", "--app", str(app))
    assert empty.returncode == 0, empty.stderr


def test_import_into_a_deployment_with_data_refuses_before_any_progress(
    app: Path, tmp_path: Path
) -> None:
    pyconvex("run", "messages:send", '{"author": "a", "body": "b"}', "--app", str(app))
    backup = tmp_path / "backup.zip"
    assert pyconvex("export", str(backup), "--app", str(app)).returncode == 0
    again = pyconvex("import", str(backup), "--app", str(app))
    assert again.returncode == 1
    assert again.stderr.startswith("✖ The target deployment is not empty (messages: 1 documents")
    assert "file bytes" not in again.stderr and "━" not in again.stderr  # no bar was drawn


# -- Ctrl-C --------------------------------------------------------------------------------


def test_ctrl_c_stops_dev_without_a_traceback(app: Path) -> None:
    dev = Process("dev", str(app))
    httpx.get(f"{dev.site}/health")
    dev.wait_for("GET /health 200")
    code, lines = dev.interrupt()
    assert code in (0, 130) and not any("Traceback" in line for line in lines), lines


def test_ctrl_c_as_serve_starts_without_a_traceback(app: Path) -> None:
    server = Process("serve", str(app))  # interrupted as soon as it says it is ready
    code, lines = server.interrupt()
    assert code in (0, 130) and not any("Traceback" in line for line in lines), lines


def test_ctrl_c_stops_every_worker_without_a_traceback(app: Path) -> None:
    # A terminal's Ctrl-C goes to the whole process group: the parent and each worker.
    parent = subprocess.Popen(
        [
            sys.executable, "-m", "pyconvex.cli.main", "serve", str(app), "--workers", "2",
            "--port", "0", "--site-port", "0",
        ],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    assert parent.stderr is not None
    seen = [parent.stderr.readline(), parent.stderr.readline()]
    assert all("ready" in line for line in seen), seen
    os.killpg(parent.pid, signal.SIGINT)
    _, err = parent.communicate(timeout=30)
    assert parent.returncode in (0, 130) and "Traceback" not in err, err


def test_ctrl_c_while_dev_waits_for_a_fix(app: Path) -> None:
    (app / "convex" / "broken.py").write_text("def oops(:\n")
    dev = Process("dev", str(app), ready=False)
    dev.wait_for("Waiting for a change")
    code, lines = dev.interrupt()
    assert code in (0, 130) and not any("Traceback" in line for line in lines), lines


def test_ctrl_c_stops_logs_follow_and_run_without_a_traceback(app: Path, tmp_path: Path) -> None:
    follower = subprocess.Popen(
        [sys.executable, "-m", "pyconvex.cli.main", "logs", "--follow", "--app", str(app)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follower.stderr is not None
    assert "No log lines yet" in follower.stderr.readline()  # it is following now
    follower.send_signal(signal.SIGINT)
    _, err = follower.communicate(timeout=30)
    assert follower.returncode in (0, 130) and "Traceback" not in err, err

    marker = tmp_path / "started"
    runner = subprocess.Popen(
        [
            sys.executable, "-m", "pyconvex.cli.main", "run", "extras:slow",
            json.dumps({"marker": str(marker)}), "--app", str(app),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    wait_until(marker.exists)
    runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=30)
    assert runner.returncode in (0, 130) and "Traceback" not in err, err


# -- webhooks without their secret ----------------------------------------------------------


def test_a_webhook_without_its_secret_is_logged_as_a_misconfiguration(app: Path) -> None:
    dev = Process("dev", str(app))
    try:
        sent = httpx.post(f"{dev.site}/hooks/stripe", content=b"{}")
        assert 400 <= sent.status_code < 500
        assert "STRIPE_SECRET" not in sent.text  # the sender learns nothing of the setup
        line = dev.wait_for(
            r"ERROR\s+POST /hooks/stripe " + REQUEST_ID + " Server misconfiguration"
        )
        assert "STRIPE_SECRET is not set" in line
        assert "pyconvex env set STRIPE_SECRET" in line
    finally:
        dev.stop()
    logs = pyconvex("logs", "--app", str(app))
    assert "STRIPE_SECRET is not set" in logs.stdout


# -- the dashboard -------------------------------------------------------------------------


def test_dev_prints_a_sign_in_link_and_serve_can_leave_the_dashboard_out(app: Path) -> None:
    dev = Process("dev", str(app))
    try:
        key = (app / ".pyconvex" / "admin_key").read_text().strip()
        link = dev.wait_for("dashboard:")
        assert link == f"  dashboard: {dev.api}/dashboard/login#key={key}"
    finally:
        dev.stop()
    server = Process("serve", str(app), "--no-dashboard")
    try:
        assert httpx.get(f"{server.api}/dashboard/").status_code == 404
        assert not any("dashboard" in line for line in server.seen)
    finally:
        server.stop()


# -- a new app's tests ----------------------------------------------------------------------


def test_a_new_app_passes_its_own_tests_with_pytest(tmp_path: Path) -> None:
    target = tmp_path / "notes"
    assert pyconvex("init", str(target)).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=target,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    assert "warning" not in done.stdout.lower()
