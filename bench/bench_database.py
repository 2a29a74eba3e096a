"""Database throughput: inserts per second and indexed point lookups per second by table size.

    python3 bench/bench_database.py                      # 1k, 100k and 1M documents
    python3 bench/bench_database.py --sizes 1000,10000   # quicker

Everything runs through the function executor on a real SQLite file (WAL,
synchronous=FULL: every commit fsynced), one process, one core's worth of Python. The raw
sqlite3 floor uses the same pragmas. Results are printed as a Markdown table for
docs/benchmarks.md. "One per transaction" runs one mutation at a time, so every commit pays
its own fsync (group commit needs company: see bench_http.py).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from pyconvex.deployment import Deployment

APP = Path(__file__).parent / "apps" / "dbbench"


async def _rate(n: int, work) -> float:
    start = time.perf_counter()
    for i in range(n):
        await work(i)
    return n / (time.perf_counter() - start)


def raw_sqlite(path: Path) -> tuple[float, float]:
    """The floor under us: plain sqlite3 inserts, same pragmas, no pyconvex."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, value BLOB)")
    body = b"x" * 140
    start = time.perf_counter()
    for i in range(2000):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?)", (f"s{i}", body))
        conn.execute("COMMIT")
    single = 2000 / (time.perf_counter() - start)
    start = time.perf_counter()
    for b in range(10):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t VALUES (?, ?)", ((f"b{b}-{i}", body) for i in range(1000)))
        conn.execute("COMMIT")
    batched = 10_000 / (time.perf_counter() - start)
    conn.close()
    return single, batched


async def run(sizes: list[int], lookups: int, repeats: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        raw_single, raw_batched = raw_sqlite(Path(tmp) / "raw.sqlite3")
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        async with Deployment(APP, database_url=url) as deployment:
            ex = deployment.executor
            single = await _rate(
                2000, lambda i: ex.run("docs:insert_one", {"key": f"single{i}", "n": i})
            )
            start = time.perf_counter()
            for b in range(10):
                await ex.run("docs:insert_batch", {"start": 10_000_000 + b * 1000, "count": 1000})
            batched = 10_000 / (time.perf_counter() - start)
            print(f"inserts/s: one per transaction {single:,.0f}; 1000 per mutation {batched:,.0f}")

        have = 0
        for size in sizes:
            db_path = Path(tmp) / f"size{size}.sqlite3"
            url = f"sqlite:///{db_path}"
            async with Deployment(APP, database_url=url) as deployment:
                ex = deployment.executor
                while have < size:
                    count = min(5000, size - have)
                    await ex.run("docs:insert_batch", {"start": have, "count": count})
                    have += count
                keys = [f"k{random.randrange(size)}" for _ in range(lookups)]

                async def lookup(i: int, ex=ex, keys=keys) -> None:
                    doc = await ex.run("docs:lookup", {"key": keys[i]})
                    assert doc is not None and doc["key"] == keys[i]

                rates = [await _rate(lookups, lookup) for _ in range(repeats)]
                rows.append((size, statistics.median(rates)))
                print(f"{size:>9,} docs: {statistics.median(rates):,.0f} lookups/s")
            # carry the data over to the next size instead of reinserting it
            if size != sizes[-1]:
                next_path = Path(tmp) / f"size{sizes[sizes.index(size) + 1]}.sqlite3"
                db_path.rename(next_path)
                for suffix in ("-wal", "-shm"):
                    side = Path(str(db_path) + suffix)
                    if side.exists():
                        side.rename(Path(str(next_path) + suffix))

    base = rows[0][1]
    print("\n| documents | lookups/s | cost vs smallest |")
    print("|---:|---:|---:|")
    for size, rate in rows:
        print(f"| {size:,} | {rate:,.0f} | {base / rate:.2f}x |")
    print("\n| inserts/s | pyconvex | raw sqlite3 | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| one per transaction | {single:,.0f} | {raw_single:,.0f} | {single / raw_single:.2f} |"
    )
    print(
        f"| 1000 per transaction | {batched:,.0f} | {raw_batched:,.0f} | {batched / raw_batched:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    ns = parser.parse_args()
    sizes = sorted(int(s) for s in ns.sizes.split(","))
    asyncio.run(run(sizes, ns.lookups, ns.repeats))


if __name__ == "__main__":
    main()
