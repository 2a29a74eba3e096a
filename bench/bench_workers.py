"""Requests per second with 1 and 2 workers, on SQLite and on PostgreSQL, same run.

    python3 bench/bench_workers.py                      # 3 rounds x 5 s
    python3 bench/bench_workers.py --rounds 1 --duration 3

Endpoints: ``/health`` and ``POST /items`` of the HTTP benchmark's app (a 2 KB JSON body
and one mutation), and ``POST /webhooks/stripe`` of the webhook benchmark's app (verify,
record, process). ``pyconvex serve --workers N`` runs pinned to core 0 for one worker and
to both cores for two; the load (wrk, or ``loadgen.py`` for signed webhooks) runs on core 1.
On a two-core machine the second worker therefore shares its core with the load
generator: read the ratios as "what a second process buys here", not as scaling.
PostgreSQL is a throwaway server started for the run (``tests/conftest.py``), on the
same machine, with fsync on (its defaults); SQLite runs with synchronous=FULL.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_http import _LUA_POST, BODY, _wrk  # noqa: E402
from bench_webhooks import SECRET  # noqa: E402
from ports import free_port, wait_for_port  # noqa: E402

APPS = HERE / "apps"
SETUPS = [("SQLite", 1), ("SQLite", 2), ("PostgreSQL", 1), ("PostgreSQL", 2)]
ENDPOINTS = ("/health", "POST /items", "POST /webhooks/stripe")


def _serve(
    app: str, workers: int, database_url: str, scratch: Path
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cores = "0" if workers == 1 else "0,1"
    env = {**os.environ, "STRIPE_WEBHOOK_SECRET": SECRET, "PYCONVEX_ADMIN_KEY": "bench"}
    proc = subprocess.Popen(
        [
            "taskset", "-c", cores, sys.executable, "-m", "pyconvex.cli.main", "serve",
            str(APPS / app), "--workers", str(workers), "--site-port", str(port),
            "--port", str(free_port()), "--database-url", database_url,
            "--storage-url", (scratch / "files").as_uri(),
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port, proc, f"{workers} worker(s) of {app}")
    time.sleep(1.0 if workers > 1 else 0.2)  # let every worker come up
    return proc, port


def _webhooks(port: int, seconds: float, connections: int) -> float:
    out = subprocess.run(
        ["taskset", "-c", "1", sys.executable, str(HERE / "bench_webhooks.py"),
         "--load", str(port), str(seconds), "--connections", str(connections)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = json.loads(out)
    if set(found["counts"]) != {"200"}:
        raise RuntimeError(f"webhooks answered {found['counts']}")
    return float(found["rate"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    ns = parser.parse_args()
    from conftest import PostgresServer

    postgres = PostgresServer(durable=True)  # fsync on: a 200 is durable
    results: dict[tuple[str, int, str], list[float]] = {}
    runs = itertools.count()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            scripts = Path(tmp)
            (scripts / "post.lua").write_text(_LUA_POST.format(body=json.dumps(json.dumps(BODY))))
            for round_number in range(ns.rounds):
                for backend, workers in SETUPS:
                    for endpoint in ENDPOINTS:
                        scratch = Path(tmp) / f"run-{next(runs)}"
                        scratch.mkdir()
                        url = (
                            postgres.new_database()
                            if backend == "PostgreSQL"
                            else f"sqlite:///{scratch / 'data.sqlite3'}"
                        )
                        app = "webhookbench" if "webhooks" in endpoint else "httpbench"
                        proc, port = _serve(app, workers, url, scratch)
                        try:
                            if "webhooks" in endpoint:
                                rate = _webhooks(port, ns.duration, ns.connections)
                            else:
                                rate = _wrk(port, endpoint, ns.duration, ns.connections, scripts)
                        finally:
                            proc.terminate()
                            proc.wait(timeout=30)
                        results.setdefault((backend, workers, endpoint), []).append(rate)
                        print(
                            f"round {round_number + 1} {backend:10} {workers} worker(s) "
                            f"{endpoint:22} {rate:9.0f}/s",
                            file=sys.stderr,
                        )
    finally:
        postgres.remove()
    median = {key: statistics.median(rates) for key, rates in results.items()}
    print("\n| database | workers | " + " | ".join(ENDPOINTS) + " |")
    print("|---|---|" + "---|" * len(ENDPOINTS))
    for backend, workers in SETUPS:
        cells = []
        for endpoint in ENDPOINTS:
            rate = median[(backend, workers, endpoint)]
            base = median[("SQLite", 1, endpoint)]
            cells.append(f"{rate:,.0f} ({rate / base:.2f}x)")
        print(f"| {backend} | {workers} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
