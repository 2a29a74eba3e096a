"""docs/tutorial.md, step by step: its code blocks are the code this test runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pyconvex.cli.scaffold import scaffold
from pyconvex.testing import ConvexTest

TUTORIAL = Path(__file__).parent.parent / "docs" / "tutorial.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", TUTORIAL.read_text(), flags=re.S)


async def test_the_tutorial_works_as_written(tmp_path: Path) -> None:
    by_author, author_route, greeting, test_code = python_blocks()
    app = tmp_path / "notes"
    scaffold(app)
    with open(app / "convex" / "messages.py", "a") as out:
        out.write("\n\n" + by_author)
    with open(app / "convex" / "http.py", "a") as out:
        out.write("\n\n" + author_route + "\n\n" + greeting)

    namespace: dict[str, Any] = {}
    exec(compile(test_code, "tutorial", "exec"), namespace)
    async with ConvexTest(app) as fixture:  # the t of the conftest.py that init wrote
        await namespace["test_post_and_read_back"](fixture)

    async with ConvexTest(app) as t:
        await t.fetch("/messages", method="POST", json={"author": "ada", "body": "x"})
        await t.fetch("/authors/ada/messages")
        assert any(line.message == "looking up ada" for line in t.logs)
        assert (await t.fetch("/greeting")).json() == {"greeting": "hello"}
        await t.deployment.env.set("GREETING", "hi from the deployment")
        assert (await t.fetch("/greeting")).json() == {"greeting": "hi from the deployment"}
