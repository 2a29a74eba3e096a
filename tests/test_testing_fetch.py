"""ConvexTest.fetch: HTTP actions in process, through the real site app."""

from __future__ import annotations

from pathlib import Path

from pyconvex import api
from pyconvex.testing import ConvexTest


async def test_fetch_runs_http_actions_in_process(web_app: Path) -> None:
    async with ConvexTest(web_app) as t:
        health = await t.fetch("/health")
        assert health.status_code == 200 and health.json() == {"status": "ok"}

        first = await t.fetch("/increment", method="POST", json={"name": "n"})
        second = await t.fetch("/increment", method="POST", body=b'{"name": "n"}')
        assert (first.json(), second.json()) == ({"value": 1}, {"value": 2})
        assert await t.query(api.counters.get, {"name": "n"}) == 2

        assert (await t.fetch("/nope")).text == "No matching routes found"
        assert (await t.fetch("/inspect", method="PUT")).headers["allow"] == "GET, HEAD, POST"
        failed = await t.fetch("/boom")
        assert failed.status_code == 500
        assert "Uncaught RuntimeError: secret internals" in failed.json()["code"]

        inspected = (await t.fetch("/inspect?tag=a", headers={"X-Multi": "1"})).json()
        assert inspected["url"] == "http://127.0.0.1:3211/inspect?tag=a"
        assert inspected["x_multi"] == ["1"]


async def test_fetch_captures_logs(web_app: Path) -> None:
    async with ConvexTest(web_app) as t:
        await t.fetch("/log?tag=z", method="POST")
        messages = [line.message for line in t.logs if line.function == "POST /log"]
        assert messages == [f"z {i}" for i in range(20)] + ["info z"]
        await t.query(api.counters.chatty, {"tag": "q", "n": 1})
        assert [line.message for line in t.logs[-2:]] == ["q 0", "done q"]
