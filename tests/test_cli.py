import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "quickstart"


def pyconvex(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyconvex.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


@pytest.fixture
def app(tmp_path: Path) -> Path:
    target = tmp_path / "quickstart"
    shutil.copytree(
        EXAMPLE / "convex", target / "convex", ignore=shutil.ignore_patterns("__pycache__")
    )
    return target


def test_run_and_data(app: Path):
    seeded = pyconvex("run", "tasks:seed", "--app", str(app))
    assert seeded.returncode == 0, seeded.stderr
    assert json.loads(seeded.stdout) == "seeded 3 tasks"

    added = pyconvex(
        "run", "tasks:add", '{"text": "from the CLI", "priority": 2}', "--app", str(app)
    )
    assert added.returncode == 0, added.stderr
    task_id = json.loads(added.stdout)

    listed = pyconvex("run", "tasks:list", "{}", cwd=app)  # --app defaults to the current folder
    tasks = json.loads(listed.stdout)
    assert tasks[0]["text"] == "from the CLI" and len(tasks) == 4

    tables = pyconvex("data", "--app", str(app), "--format", "json")
    assert json.loads(tables.stdout) == {"tasks": 4}
    docs = pyconvex("data", "tasks", "--app", str(app), "--format", "json", "--limit", "1")
    assert json.loads(docs.stdout.splitlines()[0])["_id"] == task_id
    table = pyconvex("data", "tasks", "--app", str(app))
    assert "from the CLI" in table.stdout


def test_readable_errors(app: Path, tmp_path: Path):
    bad_args = pyconvex("run", "tasks:add", '{"text": 5}', "--app", str(app))
    assert bad_args.returncode == 1
    assert "ArgumentValidationError" in bad_args.stderr and "Path: .text" in bad_args.stderr

    bad_json = pyconvex("run", "tasks:add", "{nope", "--app", str(app))
    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr

    missing = pyconvex("run", "tasks:nope", "--app", str(app))
    assert missing.returncode == 1 and "Could not find function for 'tasks:nope'" in missing.stderr

    no_app = pyconvex("run", "tasks:list", "--app", str(tmp_path / "nowhere"))
    assert no_app.returncode == 1 and "is not a pyconvex app" in no_app.stderr

    (app / "convex" / "broken.py").write_text("def oops(:\n")
    broken = pyconvex("run", "tasks:list", "--app", str(app))
    assert broken.returncode == 1 and "broken.py:1" in broken.stderr
