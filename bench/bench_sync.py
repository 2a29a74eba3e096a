"""Live queries: 100 WebSocket clients holding 1,000 subscriptions over 100 distinct queries.

    python3 bench/bench_sync.py                      # every server, 10 s per phase
    python3 bench/bench_sync.py --only pyconvex --duration 5

The server runs as one process pinned to core 0; the clients (one Python process,
asyncio) are pinned to core 1. Client k subscribes to the queries (k + 10 j) mod 100,
j < 10, so every query has 10 subscribers. Each write posts to one channel: it changes
one query's result and must reach exactly its 10 subscribers.

Phases, each ``--duration`` seconds:
- **paced**: ``--rate`` writes per second (500 = 5,000 updates/s), spread over 8 writer
  sessions; reports p50/p99 from a write's commit to each subscriber's update (the
  commit's timestamp, the wall clock in ns, against the client's clock on receipt);
- **flat out**: the writers keep ``--depth`` writes in flight each; updates per second
  delivered, and the latency under that load.

Also: memory per idle subscription (the server's RSS once the clients subscribed, less
once they had connected, over 1,000) and per connection (connected, less before, over
108 sockets), and, for pyconvex, re-runs whose result came out unchanged (the queries a
write did not touch: ``GET /api/sync_stats``).

Baselines, measured in the same run: the same fan-out written by hand over SQLite, as a
raw ASGI app, a Starlette app and a FastAPI app (``bench/apps/sync_*.py``): a list of
sockets per channel, no read sets, no transitions, no durability (synchronous=NORMAL,
as the HTTP baselines): the floor of "send a JSON message to 10 sockets" in Python.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from ports import free_port, wait_for_port  # noqa: E402

APPS = HERE / "apps"
CLIENTS, PER_CLIENT, QUERIES, WRITERS = 100, 10, 100, 8


# -- servers --------------------------------------------------------------------------------


class Server:
    """One server on core 0: pyconvex (``pyconvex serve``) or a baseline (uvicorn)."""

    def __init__(self, name: str, scratch: Path) -> None:
        self.name = name
        self.port = free_port()
        env = {**os.environ, "PYCONVEX_ADMIN_KEY": "bench"}
        if name == "pyconvex":
            command = [
                sys.executable, "-m", "pyconvex.cli.main", "serve", str(APPS / "syncbench"),
                "--port", str(self.port), "--site-port", str(free_port()),
                "--database-url", f"sqlite:///{scratch / 'pyconvex.sqlite3'}",
                "--storage-url", (scratch / "files").as_uri(),
            ]  # fmt: skip
            self.url = f"ws://127.0.0.1:{self.port}/api/1.48.0/sync"
        else:
            module = {"raw ASGI": "sync_raw", "Starlette": "sync_starlette",
                      "FastAPI": "sync_fastapi"}[name]  # fmt: skip
            command = [
                sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(APPS),
                "--port", str(self.port), "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
            env["BENCH_DB"] = str(scratch / f"{module}.sqlite3")
            self.url = f"ws://127.0.0.1:{self.port}/feed"
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", *command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc, name)
        if name == "pyconvex":  # load the app's functions before measuring
            self.stats()

    def stats(self) -> dict[str, Any]:
        response = httpx.get(
            f"http://127.0.0.1:{self.port}/api/sync_stats",
            headers={"Authorization": "Convex bench"},
        )
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def rss(self) -> int:
        """Resident bytes of the server and its children."""
        pids = [self.proc.pid]
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        if children.exists():
            pids += [int(pid) for pid in children.read_text().split()]
        total = 0
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        return total

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def measure(name: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    server = Server(name, scratch)
    try:
        before = server.rss()
        load = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, __file__, "--load", server.url,
             "--mode", "convex" if name == "pyconvex" else "baseline",
             "--duration", str(args.duration), "--rate", str(args.rate),
             "--depth", str(args.depth)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert load.stdin is not None and load.stdout is not None
        rss = {}
        for phase in ("connected", "subscribed"):
            if load.stdout.readline().strip() != phase:
                raise RuntimeError(f"the clients of {name} could not get {phase}")
            rss[phase] = server.rss()
            stats = server.stats() if name == "pyconvex" else None
            load.stdin.write("go\n")
            load.stdin.flush()
        result: dict[str, Any] = json.loads(load.stdout.readline())
        load.wait(timeout=60)
        connections = CLIENTS + WRITERS
        result["memory_per_connection"] = (rss["connected"] - before) / connections
        subscriptions = CLIENTS * PER_CLIENT
        result["memory_per_subscription"] = (rss["subscribed"] - rss["connected"]) / subscriptions
        if stats is not None:
            end = server.stats()
            result["unchanged_runs"] = end["unchanged_runs"] - stats["unchanged_runs"]
            result["query_runs"] = end["query_runs"] - stats["query_runs"]
            result["subscriptions"] = stats["subscriptions"]
            result["queries"] = stats["queries"]
        return result
    finally:
        server.stop()


# -- the clients (run with --load, pinned to core 1) --------------------------------------------


def _ts(text: str) -> int:
    found: int = struct.unpack("<Q", base64.b64decode(text))[0]
    return found


class Clients:
    """The subscribers and the writers of one run, and what they saw."""

    def __init__(self, url: str, mode: str) -> None:
        self.url, self.mode = url, mode
        self.received: list[tuple[float, int]] = []  # (seq, receipt ns)
        self.commits: dict[float, int] = {}  # seq -> commit ns
        self.answered: asyncio.Queue[int] = asyncio.Queue()  # writer index, one per answer
        self.writers: list[Any] = []

    async def subscriber(self, k: int, connected: asyncio.Event, go: asyncio.Event,
                         ready: asyncio.Event) -> None:  # fmt: skip
        import msgspec
        import websockets

        decode = msgspec.json.decode
        channels = [f"c{(k + 10 * j) % QUERIES}" for j in range(PER_CLIENT)]
        async with websockets.connect(self.url, max_size=None) as ws:
            if self.mode == "convex":
                await ws.send(json.dumps({"type": "Connect", "sessionId": f"bench-{k}",
                                          "connectionCount": 0, "clientTs": 0}))  # fmt: skip
            connected.set()
            await go.wait()
            if self.mode == "convex":
                await ws.send(json.dumps({
                    "type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
                    "modifications": [
                        {"type": "Add", "queryId": i, "udfPath": "feed:latest",
                         "args": [{"channel": channel}]}
                        for i, channel in enumerate(channels)
                    ],
                }))  # fmt: skip
            else:
                await ws.send(json.dumps({"type": "sub", "channels": channels}))
            initial = 0
            async for raw in ws:
                now = time.time_ns()
                message = decode(raw)
                if self.mode == "convex":
                    if message["type"] != "Transition":
                        continue
                    values = [m.get("value") for m in message["modifications"]]
                else:
                    values = [message["value"]]
                for value in values:
                    if value is None:
                        initial += 1
                    else:
                        self.received.append((value["seq"], now))
                if initial == PER_CLIENT:
                    ready.set()

    async def writer(self, index: int, connected: asyncio.Event) -> None:
        import msgspec
        import websockets

        decode = msgspec.json.decode
        async with websockets.connect(self.url, max_size=None) as ws:
            self.writers.append(ws)
            if self.mode == "convex":
                await ws.send(json.dumps({"type": "Connect", "sessionId": f"writer-{index}",
                                          "connectionCount": 0, "clientTs": 0}))  # fmt: skip
            connected.set()
            async for raw in ws:
                message = decode(raw)
                if message.get("type") == "MutationResponse":
                    if not message["success"]:
                        raise RuntimeError(message["result"])
                    self.commits[message["requestId"]] = _ts(message["ts"])
                    self.answered.put_nowait(index)
                elif message.get("type") == "done":
                    self.commits[message["seq"]] = message["ts"]
                    self.answered.put_nowait(index)

    async def write(self, seq: int) -> None:
        ws = self.writers[seq % len(self.writers)]
        channel = f"c{seq % QUERIES}"
        if self.mode == "convex":
            message = {"type": "Mutation", "requestId": seq, "udfPath": "feed:post",
                       "args": [{"channel": channel, "seq": float(seq)}]}  # fmt: skip
        else:
            message = {"type": "post", "channel": channel, "seq": float(seq)}
        await ws.send(json.dumps(message))


def _summary(clients: Clients, seqs: range, start: int, end: int) -> dict[str, Any]:
    """Latencies (ms) of the phase's writes' updates, and updates/s received in the phase."""
    wanted = set(seqs)
    latencies = sorted(
        (now - clients.commits[seq]) / 1e6
        for seq, now in clients.received
        if seq in wanted and seq in clients.commits
    )
    in_phase = sum(1 for _, now in clients.received if start <= now < end)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "writes": len(seqs),
        "updates": len(latencies),
        "expected_updates": len(seqs) * PER_CLIENT,
        "updates_per_second": in_phase / ((end - start) / 1e9),
        "p50_ms": quantiles[49],
        "p99_ms": quantiles[98],
        "max_ms": latencies[-1] if latencies else 0.0,
    }


async def _settle(clients: Clients, last: int) -> bool:
    """Until every write so far is answered and the last writes' updates are in; False if
    that took over 5 s (an update lost: the report shows how many arrived)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if len(clients.commits) >= last:
            got = Counter(seq for seq, _ in clients.received)
            if all(got[float(seq)] == PER_CLIENT for seq in range(max(0, last - QUERIES), last)):
                return True
        await asyncio.sleep(0.05)  # a benchmark's client, not a test: polling is fine here
    return False


async def run_load(url: str, mode: str, duration: float, rate: float, depth: int) -> None:
    clients = Clients(url, mode)
    go, readies = asyncio.Event(), [asyncio.Event() for _ in range(CLIENTS)]
    connected = [asyncio.Event() for _ in range(CLIENTS + WRITERS)]
    tasks = [
        asyncio.create_task(clients.subscriber(k, connected[k], go, readies[k]))
        for k in range(CLIENTS)
    ]
    tasks += [
        asyncio.create_task(clients.writer(i, connected[CLIENTS + i])) for i in range(WRITERS)
    ]
    stdin = asyncio.get_running_loop().run_in_executor
    for event in connected:
        await event.wait()
    print("connected", flush=True)  # the server's memory is measured now, and
    await stdin(None, sys.stdin.readline)
    go.set()
    for event in readies:
        await event.wait()
    print("subscribed", flush=True)  # now
    await stdin(None, sys.stdin.readline)

    # Paced: writes at ``rate`` per second, whether or not the server keeps up.
    count = int(rate * duration)
    start = time.time_ns()
    began = time.monotonic()
    for seq in range(count):
        delay = began + seq / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await clients.write(seq)
    end = time.time_ns()
    settled = await _settle(clients, count)
    paced = {**_summary(clients, range(count), start, end), "settled": settled}

    # Flat out: each writer keeps ``depth`` writes in flight until the time is up.
    first = count
    seq = first
    while not clients.answered.empty():
        clients.answered.get_nowait()
    start = time.time_ns()
    stop = time.monotonic() + duration
    for _ in range(depth):
        for _ in range(WRITERS):
            await clients.write(seq)
            seq += 1
    while time.monotonic() < stop:
        try:
            await asyncio.wait_for(
                clients.answered.get(), timeout=max(0.0, stop - time.monotonic())
            )
        except TimeoutError:
            break
        await clients.write(seq)
        seq += 1
    end = time.time_ns()
    settled = await _settle(clients, seq)
    flat_out = {**_summary(clients, range(first, seq), start, end), "settled": settled}
    print(json.dumps({"paced": paced, "flat_out": flat_out}), flush=True)
    for task in tasks:
        task.cancel()


# -- the report -------------------------------------------------------------------------------


def _row(name: str, result: dict[str, Any]) -> str:
    paced, flat = result["paced"], result["flat_out"]
    unchanged = result.get("unchanged_runs", "–")
    delivered = sum(phase["updates"] for phase in (paced, flat))
    expected = sum(phase["expected_updates"] for phase in (paced, flat))
    return (
        f"| {name} | {delivered:,}/{expected:,} | {paced['updates_per_second']:,.0f} | "
        f"{paced['p50_ms']:.1f} | "
        f"{paced['p99_ms']:.1f} | {flat['updates_per_second']:,.0f} | {flat['p50_ms']:.1f} | "
        f"{flat['p99_ms']:.1f} | {result['memory_per_subscription'] / 1024:.1f} | "
        f"{result['memory_per_connection'] / 1024:.0f} | {unchanged} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0, help="writes/s in the paced phase")
    parser.add_argument("--depth", type=int, default=4, help="writes in flight per writer")
    parser.add_argument("--only", action="append", help="pyconvex, raw ASGI, Starlette, FastAPI")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        asyncio.run(run_load(args.load, args.mode, args.duration, args.rate, args.depth))
        return

    names = args.only or ["pyconvex", "raw ASGI", "Starlette", "FastAPI"]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            folder = Path(scratch) / name.replace(" ", "-")
            folder.mkdir()
            results[name] = measure(name, args, folder)
            print(f"{name}: {json.dumps(results[name])}", file=sys.stderr, flush=True)
    out = HERE / "results" / f"sync-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print(f"paced: {args.rate:.0f} writes/s ({args.rate * PER_CLIENT:,.0f} updates/s)\n")
    print("| server | updates delivered | paced updates/s | p50 ms | p99 ms | flat-out updates/s "
          "| p50 ms | p99 ms | KiB per idle subscription | KiB per connection "
          "| unchanged re-runs |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        print(_row(name, result))
    print(f"\n(results in {out.relative_to(HERE.parent)})")


if __name__ == "__main__":
    main()
