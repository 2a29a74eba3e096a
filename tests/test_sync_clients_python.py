"""PyPI ``convex`` (Convex's Python client: a WebSocket client and the older HTTP one)
against a real pyconvex server: ``query``, ``mutation``, ``action``, ``subscribe``.

The client runs in a virtualenv of its own (``tests/convex_clients.py`` installs it), as
``tests/clients/python_client.py``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import APPS, Issuer, Served
from convex_clients import python_client
from pyconvex import Int64
from pyconvex.values import from_convex_json

SCRIPT = Path(__file__).parent / "clients" / "python_client.py"


@pytest.fixture(scope="module")
def python() -> Path:
    return python_client()


def run(python: Path, url: str, *token: str) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [str(python), str(SCRIPT), url, *token], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    steps = {}
    for line in done.stdout.splitlines():
        if not line.startswith("{"):
            steps.setdefault("printed", {"lines": []})["lines"].append(line)
            continue
        step = json.loads(line)
        if step["ok"]:
            step["value"] = from_convex_json(step["value"], numbers="float")
        steps[step.pop("step")] = step
    return steps


def value(steps: dict[str, dict[str, Any]], name: str) -> Any:
    assert steps[name]["ok"], steps[name]
    return steps[name]["value"]


def test_python_client_query_mutation_action_subscribe(
    python: Path,
    serve_app: Callable[..., Served],
    issuer: Issuer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYCONVEX_TEST_ISSUER", issuer.url)
    served = serve_app(APPS / "sync")
    steps = run(python, served.api, issuer.token(sub="py_user"))

    assert value(steps, "whoami") == "py_user"
    assert value(steps, "query") == []
    assert isinstance(value(steps, "mutation"), str)
    assert value(steps, "after mutation") == ["one"]
    assert value(steps, "int64 mutation") == Int64(1)
    assert isinstance(value(steps, "int64 query"), Int64)
    assert value(steps, "int64 argument") == {"n": Int64(2**60), "x": 2.0, "n_type": "Int64"}
    assert not steps["float for int64"]["ok"]
    assert "ArgumentValidationError" in steps["float for int64"]["error"]
    assert value(steps, "action") == "PY"
    assert "[LOG] shouting" in steps["printed"]["lines"]  # the action's log line, passed on
    assert steps["convex error"]["kind"] == "ConvexError"
    assert steps["convex error"]["data"] == {"code": "REFUSED"}
    assert steps["plain error"]["kind"] == "Exception"
    assert "Server Error" in steps["plain error"]["error"]
    samples = value(steps, "samples")
    assert samples["int64"] == Int64(2**62 + 1) and samples["bytes"] == b"\x00\xffbytes"

    assert value(steps, "subscribe") == []
    assert value(steps, "next value") == ["hi"]  # another client's write, pushed

    assert value(steps, "http query") == ["one"]
    assert value(steps, "http mutation") == Int64(2)  # it writes whole floats as 2.0 too
    assert value(steps, "http action") == "HTTP"
    assert value(steps, "http count") == 1.0
    assert steps["http convex error"]["kind"] == "ConvexError"
    assert steps["http convex error"]["data"] == {"code": "NOPE", "n": {"$integer": "BwAAAAAAAAA="}}
