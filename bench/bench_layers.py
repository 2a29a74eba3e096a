"""Where a POST /items request's time goes, one layer at a time, in process (no HTTP server).

    taskset -c 0 python3 bench/bench_layers.py            # SQLite
    taskset -c 0 python3 bench/bench_layers.py --postgres # a throwaway PostgreSQL (fsync on)

Drives the site app directly with the HTTP benchmark's 2 KB JSON body, 32 requests in
flight, and reports CPU time per request (every thread of the process, the SQLite commit
thread included) for four handlers that each add one layer (bench/apps/layers):

- ``/parse``: route, ``Request``, JSON parse, ``Response`` (the HTTP action shell);
- ``/noop``: plus ``ctx.run_mutation`` of a mutation that writes nothing (the executor,
  argument validation of the payload, a snapshot, the time limit);
- ``/tiny``: a mutation inserting a small document instead (validation, id, buffering,
  the committer, the store's statements, the share of a commit and its fsync);
- ``/items``: the benchmark's own mutation (the 2 KB payload as the document).

What uvicorn adds on top is measured by bench_http.py (raw ASGI vs pyconvex).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_http import BODY  # noqa: E402

RAW = json.dumps(BODY).encode()
PATHS = ("/parse", "/noop", "/tiny", "/items")


async def _one(app: Any, path: str) -> None:
    scope = {
        "type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
        "query_string": b"", "http_version": "1.1", "scheme": "http", "root_path": "",
        "server": ("127.0.0.1", 3211), "client": ("127.0.0.1", 5555),
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(RAW)).encode())],
    }  # fmt: skip
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": RAW, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    if status != [201]:
        raise RuntimeError(f"{path} answered {status}")


async def _measure(app: Any, path: str, requests: int, in_flight: int) -> float:
    async def client() -> None:
        for _ in range(requests // in_flight):
            await _one(app, path)

    for _ in range(200):
        await _one(app, path)
    start = time.process_time()
    await asyncio.gather(*(client() for _ in range(in_flight)))
    return (time.process_time() - start) / requests * 1e6


async def main(database_url: str | None, rounds: int, requests: int) -> None:
    from pyconvex.deployment import Deployment
    from pyconvex.server import Backend

    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{tmp}/db.sqlite3"
        async with Deployment(
            HERE / "apps" / "layers", database_url=url, storage_url=Path(tmp, "files").as_uri()
        ) as deployment:
            backend = Backend(deployment, key="bench", site_port=3211)
            await backend.startup()
            try:
                costs: dict[str, list[float]] = {path: [] for path in PATHS}
                for _ in range(rounds):
                    for path in PATHS:
                        costs[path].append(await _measure(backend.site, path, requests, 32))
            finally:
                await backend.shutdown()
    print("| handler | CPU µs per request (median) | added by this layer |\n|---|---|---|")
    previous = 0.0
    for path in PATHS:
        cost = statistics.median(costs[path])
        added = cost - previous if path != "/items" else cost - statistics.median(costs["/tiny"])
        print(f"| `{path}` | {cost:.1f} | {added:+.1f} |")
        previous = cost


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL")
    ns = parser.parse_args()
    import uvloop

    uvloop.install()
    if ns.postgres:
        from conftest import PostgresServer

        server = PostgresServer(durable=True)
        try:
            asyncio.run(main(server.new_database(), ns.rounds, ns.requests))
        finally:
            server.remove()
    else:
        asyncio.run(main(None, ns.rounds, ns.requests))
