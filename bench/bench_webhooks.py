"""Verified and durably recorded webhooks per second: pyconvex against raw ASGI and FastAPI.

    python3 bench/bench_webhooks.py                  # 3 rounds x 5 s
    python3 bench/bench_webhooks.py --rounds 1 --duration 3

Each app verifies a Stripe signature over the raw body and commits the event to
SQLite before answering 200: the raw ASGI and FastAPI apps one row per request
(WAL, synchronous=NORMAL: no fsync); pyconvex (synchronous=FULL: fsynced before
the 200) twice: by hand, as an HTTP action that verifies and runs one mutation
(dedup lookup, insert), and through ``http.webhook`` (dedup lookup, the event row,
then the handler in the background: its number is events received *and*
processed). Every
request is a new event, signed afresh by the load generator (``loadgen.py``),
which runs pinned to core 1 while the server runs on core 0. The "floor" app
only reads the body and answers 200: what uvicorn itself costs per delivery,
the part of every app's time that no receiver can save.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
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

from ports import free_port, wait_for_port  # noqa: E402

APPS = HERE / "apps"
SECRET = "whsec_bench"
PYCONVEX_WEBHOOK = "pyconvex http.webhook"
PYCONVEX_MANUAL = "pyconvex verify + run_mutation"
FILLER = {f"field_{i}": f"value {i} " * 6 for i in range(30)}


def _request_maker(port: int):  # type: ignore[no-untyped-def]
    counter = itertools.count()
    head = f"POST /webhooks/stripe HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"

    def make() -> bytes:
        n = next(counter)
        body = json.dumps(
            {"id": f"evt_{os.getpid()}_{n}", "type": "invoice.paid", "data": FILLER}
        ).encode()
        t = str(int(time.time()))
        signature = hmac.new(SECRET.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
        return (
            head + f"Stripe-Signature: t={t},v1={signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    return make


def _load(port: int, seconds: float, connections: int) -> None:
    from loadgen import run

    rate, counts = run(
        "127.0.0.1", port, _request_maker(port), connections=connections, seconds=seconds
    )
    print(json.dumps({"rate": rate, "counts": {str(k): v for k, v in counts.items()}}))


def _server(name: str, port: int, scratch: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BENCH_DB": str(scratch / f"{name}.sqlite3"),
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "PYCONVEX_ADMIN_KEY": "bench",
    }
    if name.startswith("pyconvex"):
        app = "webhookbench" if name == PYCONVEX_WEBHOOK else "webhookmanual"
        command = [
            sys.executable, "-m", "pyconvex.cli.main", "serve", str(APPS / app),
            "--site-port", str(port), "--port", str(free_port()),
            "--database-url", f"sqlite:///{scratch / 'pyconvex.sqlite3'}",
            "--storage-url", (scratch / "storage").as_uri(),
        ]  # fmt: skip
    else:
        module = {
            "raw ASGI": "webhook_raw",
            "FastAPI": "webhook_fastapi",
            "floor (read body, 200)": "webhook_floor",
        }[name]
        command = [
            sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(APPS), "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, proc, name)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", default=None, help="comma-separated app names")
    parser.add_argument("--load", nargs=2, metavar=("PORT", "SECONDS"), help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.load:
        _load(int(ns.load[0]), float(ns.load[1]), ns.connections)
        return
    apps = ("floor (read body, 200)", "raw ASGI", "FastAPI", PYCONVEX_MANUAL, PYCONVEX_WEBHOOK)
    if ns.only:
        apps = tuple(a for a in apps if a in ns.only.split(","))
    results: dict[str, list[float]] = {a: [] for a in apps}
    with tempfile.TemporaryDirectory() as tmp:
        for round_number in range(ns.rounds):
            for name in apps:
                scratch = Path(tmp) / f"{name}-{round_number}"
                scratch.mkdir()
                port = free_port()
                server = _server(name, port, scratch)
                try:
                    out = subprocess.run(
                        ["taskset", "-c", "1", sys.executable, __file__, "--load", str(port), str(ns.duration), "--connections", str(ns.connections)],
                        capture_output=True, text=True, check=True,
                    ).stdout  # fmt: skip
                finally:
                    server.terminate()
                    server.wait(timeout=30)
                found = json.loads(out)
                if set(found["counts"]) != {"200"}:
                    raise RuntimeError(f"{name} answered {found['counts']}")
                results[name].append(found["rate"])
                print(
                    f"round {round_number + 1} {name:22} {found['rate']:8.0f} webhooks/s",
                    file=sys.stderr,
                )
    median = {a: statistics.median(r) for a, r in results.items()}
    print("\n| app | webhooks/s | vs raw ASGI | vs FastAPI |\n|---|---|---|---|")
    for name in apps:
        if "raw ASGI" not in median or "FastAPI" not in median:
            print(f"| {name} | {median[name]:,.0f} | | |")
            continue
        print(
            f"| {name} | {median[name]:,.0f} | {median[name] / median['raw ASGI']:.2f}x | {median[name] / median['FastAPI']:.2f}x |"
        )


if __name__ == "__main__":
    main()
