"""HTTP actions against raw ASGI, Starlette and FastAPI: same work, same server, same run.

    python3 bench/bench_http.py                 # 5 rounds of 5 s per app and endpoint
    python3 bench/bench_http.py --rounds 1 --duration 2

Every app runs under uvicorn (httptools, uvloop, access log off, one worker)
pinned to core 0 with ``taskset``; wrk runs pinned to core 1. Rounds are
interleaved (every app once per round) so drift in the machine hits all apps
alike; each cell is the median over rounds. Endpoints:

- ``GET /health``: a small JSON answer;
- ``GET /users/{id}``: a path parameter echoed back (random ids);
- ``POST /items``: parse a 2 KB JSON body and commit one SQLite row (WAL,
  synchronous=NORMAL), answer 201.

pyconvex runs as ``pyconvex serve`` on its site port; ``pyconvex (2000 routes)``
is the same app with 1,997 more routes (exact, ``{param}`` and prefix).
Requires ``wrk``, ``taskset`` and the ``bench`` extra (FastAPI).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from ports import free_port, wait_for_port  # noqa: E402

APPS = HERE / "apps"
BODY = {
    "name": "benchmark item",
    "tags": [f"tag-{i}" for i in range(20)],
    "attributes": {f"key_{i}": f"value number {i} " * 4 for i in range(25)},
    "amount": 1234,
    "active": True,
}
ENDPOINTS = ("/health", "/users/{id}", "POST /items")


def _uvicorn(module: str) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(APPS),
        "--port", "{port}", "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def _apps(scratch: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    pyconvex = [
        sys.executable, "-m", "pyconvex.cli.main", "serve", str(APPS / "httpbench"),
        "--site-port", "{port}", "--port", "{api_port}",
    ]  # fmt: skip
    out: dict[str, tuple[list[str], dict[str, str]]] = {}
    for name, module in (
        ("raw ASGI", "http_raw"),
        ("Starlette", "http_starlette"),
        ("FastAPI", "http_fastapi"),
    ):
        out[name] = (_uvicorn(module), {"BENCH_DB": str(scratch / f"{module}.sqlite3")})
    for name, routes in (("pyconvex", "7"), ("pyconvex (2000 routes)", "1997")):
        db = scratch / f"pyconvex-{routes}.sqlite3"
        out[name] = ([*pyconvex, "--database-url", f"sqlite:///{db}"], {"BENCH_ROUTES": routes})
    return out


class Server:
    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        ports = {"{port}": str(self.port), "{api_port}": str(free_port())}
        command = [ports.get(part, part) for part in command]
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", *command],
            env={**os.environ, **env, "PYCONVEX_ADMIN_KEY": "bench"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc, f"server {command}")
        # one request end to end before measuring (imports, first connection)
        subprocess.run(
            ["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{self.port}/health"], check=False
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


_LUA_POST = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
"""
_LUA_USERS = """
request = function()
  return wrk.format("GET", "/users/u" .. math.random(1, 1000000))
end
"""


def _wrk(port: int, endpoint: str, duration: float, connections: int, scripts: Path) -> float:
    command = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
    ]
    if endpoint == "POST /items":
        command += ["-s", str(scripts / "post.lua"), f"http://127.0.0.1:{port}/items"]
    elif endpoint == "/users/{id}":
        command += ["-s", str(scripts / "users.lua"), f"http://127.0.0.1:{port}/"]
    else:
        command += [f"http://127.0.0.1:{port}{endpoint}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{endpoint} answered {errors.group(1)} errors:\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not found:
        raise RuntimeError(out)
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", default=None, help="comma-separated app names")
    ns = parser.parse_args()
    for tool in ("wrk", "taskset", "curl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (apt install {tool})")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        (scratch / "post.lua").write_text(_LUA_POST.format(body=json.dumps(json.dumps(BODY))))
        (scratch / "users.lua").write_text(_LUA_USERS)
        apps = _apps(scratch)
        if ns.only:
            apps = {k: v for k, v in apps.items() if k in ns.only.split(",")}
        results: dict[str, dict[str, list[float]]] = {a: {e: [] for e in ENDPOINTS} for a in apps}
        for round_number in range(ns.rounds):
            for name, (command, env) in apps.items():
                server = Server(command, env)
                try:
                    for endpoint in ENDPOINTS:
                        rate = _wrk(server.port, endpoint, ns.duration, ns.connections, scratch)
                        results[name][endpoint].append(rate)
                        print(
                            f"round {round_number + 1} {name:24} {endpoint:12} {rate:10.0f} req/s",
                            file=sys.stderr,
                        )
                finally:
                    server.stop()
    _report(results, len(json.dumps(BODY)))


def _report(results: dict[str, dict[str, list[float]]], body_size: int) -> None:
    median = {a: {e: statistics.median(r) for e, r in by.items()} for a, by in results.items()}
    base = median.get("raw ASGI")
    print(
        f"\nPOST body: {body_size} bytes of JSON. Requests/s (median), and the ratio to raw ASGI:\n"
    )
    print("| app | " + " | ".join(ENDPOINTS) + " |")
    print("|---|" + "---|" * len(ENDPOINTS))
    for app, by in median.items():
        cells = []
        for endpoint in ENDPOINTS:
            ratio = f" ({by[endpoint] / base[endpoint]:.2f}x)" if base else ""
            cells.append(f"{by[endpoint]:,.0f}{ratio}")
        print(f"| {app} | " + " | ".join(cells) + " |")
    if "pyconvex" in median and "FastAPI" in median:
        print(
            "\npyconvex / FastAPI: "
            + ", ".join(
                f"{e} {median['pyconvex'][e] / median['FastAPI'][e]:.2f}x" for e in ENDPOINTS
            )
        )
    if "pyconvex" in median and "pyconvex (2000 routes)" in median:
        print(
            "cost of 2000 routes vs 10 (time per request, >1 is slower): "
            + ", ".join(
                f"{e} {median['pyconvex'][e] / median['pyconvex (2000 routes)'][e]:.2f}x"
                for e in ENDPOINTS
            )
        )


if __name__ == "__main__":
    main()
