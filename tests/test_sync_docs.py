"""docs/sync.md runs: its app is served, and its JavaScript and Python client snippets run
with Convex's own clients (npm ``convex`` through node, PyPI ``convex``) against it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from conftest import Served
from convex_clients import node_modules, python_client
from test_docs import DOCS, blocks, split

GUIDE = DOCS / "sync.md"


def test_the_sync_guide_runs(tmp_path: Path, serve_app: Callable[..., Served]) -> None:
    files, _, others = split(GUIDE)
    app = tmp_path / "app"
    for relative, body in files.items():
        (app / relative).parent.mkdir(parents=True, exist_ok=True)
        (app / relative).write_text(body)
    served = serve_app(app)

    [script] = blocks(GUIDE, "js")
    (tmp_path / "node_modules").symlink_to(node_modules())  # `import "convex/browser"`
    (tmp_path / "subscribe.mjs").write_text(script)
    ran = subprocess.run(
        ["node", "subscribe.mjs", served.api], cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    printed = [json.loads(line) for line in ran.stdout.splitlines()]
    assert printed in ([[], ["hello"], ["hello", "again"]], [["hello"], ["hello", "again"]])

    [client] = [body for body in others if body.startswith("# client.py")]
    (tmp_path / "client.py").write_text(client + "\nimport os\nos._exit(0)\n")
    ran = subprocess.run(
        [str(python_client()), "client.py", served.api], cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["['hi']"]
