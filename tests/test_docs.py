"""The guides in docs/ run: their snippets are code this test executes, so they cannot drift.

In a guide, a ```python block whose first line is ``# convex/<file>.py`` (or
``# <app>/convex/<file>.py``) is a file of that guide's app (blocks naming the same file
are joined). A block whose first line starts with ``# test`` runs, with top-level
``await``, against a ``ConvexTest`` ``t`` of that app (in order, sharing ``t``), with
pyconvex's public names in scope. Every other python block must at least compile, and every
``pyconvex ...`` line of a bash block must name a real command.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

import pyconvex
from pyconvex.cli.main import build_parser
from pyconvex.testing import ConvexTest, sign_webhook

DOCS = Path(__file__).parent.parent / "docs"
# The topic guides issue 7 asks for; each must have an app and a test that runs.
GUIDES = [
    "routing.md",
    "http-actions.md",
    "functions-and-data.md",
    "storage.md",
    "scheduling.md",
    "crons.md",
    "rate-limiting.md",
    "workpools.md",
    "webhooks.md",
    "cors.md",
    "auth.md",
    "testing.md",
    "deployment.md",
    "benchmarks.md",
    "migrating-from-convex.md",
]
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
_APP_FILE = re.compile(r"#\s*(?:[\w.-]+/)?(convex/[\w/]+\.py)\s*$")


def blocks(doc: Path, language: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(doc.read_text()) if lang == language]


def split(doc: Path) -> tuple[dict[str, str], list[str], list[str]]:
    files: dict[str, str] = {}
    tests: list[str] = []
    others: list[str] = []
    for body in blocks(doc, "python"):
        first = body.split("\n", 1)[0]
        found = _APP_FILE.fullmatch(first)
        if found:
            files[found.group(1)] = files.get(found.group(1), "") + "\n\n" + body
        elif first.startswith("# test"):
            tests.append(body)
        else:
            others.append(body)
    return files, tests, others


@pytest.mark.parametrize("name", sorted(p.name for p in DOCS.glob("*.md")))
def test_every_python_block_compiles(name: str) -> None:
    for body in blocks(DOCS / name, "python"):
        compile(body, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.mark.parametrize("name", sorted(p.name for p in DOCS.glob("*.md")))
def test_every_pyconvex_command_in_bash_blocks_exists(name: str) -> None:
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for body in blocks(DOCS / name, "bash"):
        for line in body.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "pyconvex" and not words[1].startswith("-"):
                assert words[1] in commands, f"{name}: unknown command in {line!r}"


@pytest.mark.parametrize("name", GUIDES)
async def test_the_guide_runs(name: str, tmp_path: Path) -> None:
    files, tests, _ = split(DOCS / name)
    assert files, f"{name} has no app files (```python blocks starting with # convex/...)"
    assert tests, f"{name} has no test blocks (```python blocks starting with # test)"
    app = tmp_path / "app"
    for relative, body in files.items():
        path = app / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    async with ConvexTest(app) as t:
        scope: dict[str, Any] = {n: getattr(pyconvex, n) for n in pyconvex.__all__}
        scope.update(t=t, ConvexTest=ConvexTest, sign_webhook=sign_webhook, APP=str(app))
        for number, body in enumerate(tests):
            code = compile(
                body, f"{name} test block {number + 1}", "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            )  # fmt: skip
            result = eval(code, scope)
            if result is not None:
                await result
