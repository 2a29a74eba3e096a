"""kill -9 with 200 scheduled mutations due and an action running: nothing lost, nothing twice."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import api_call, wait_until
from pyconvex.background.scheduled import CUT_OFF
from test_cli_serving import WEB, Process


def test_kill_9_while_jobs_are_due(tmp_path: Path) -> None:
    app = tmp_path / "web"
    shutil.copytree(WEB / "convex", app / "convex", ignore=shutil.ignore_patterns("__pycache__"))
    first = Process("dev", str(app))
    try:
        action_job = api_call(first.api, "mutation", "jobs:schedule_long_action")
        wait_until(lambda: api_call(first.api, "query", "jobs:marks", {"tag": "action-start"}))
        # Each job holds its transaction open for 5 ms, so the kill lands mid-way.
        api_call(
            first.api,
            "mutation",
            "jobs:schedule_many",
            {"n": 200, "delay": 0.2, "tag": "crash", "pause": 0.005},
        )
        done_before = wait_until(
            lambda: len(api_call(first.api, "query", "jobs:marks", {"tag": "crash"}))
        )
    finally:
        first.proc.kill()  # SIGKILL: no shutdown, no clean-up
        first.proc.wait(timeout=30)
    assert done_before < 200, "every job finished before the kill: the test proved nothing"

    second = Process("dev", str(app))
    try:
        marks = wait_until(
            lambda: (
                (found := api_call(second.api, "query", "jobs:marks", {"tag": "crash"}))
                and len(found) >= 200
                and found
            )
        )
        assert sorted(m["i"] for m in marks) == list(range(200))  # each exactly once
        job = api_call(second.api, "query", "jobs:job", {"id": action_job})
        assert job["state"] == {"kind": "failed", "error": CUT_OFF}
        assert len(api_call(second.api, "query", "jobs:marks", {"tag": "action-start"})) == 1
    finally:
        second.stop()
