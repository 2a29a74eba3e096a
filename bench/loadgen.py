"""A small HTTP/1.1 load generator for requests wrk cannot make: each one signed afresh.

Keep-alive connections, one request in flight on each, the next request built by a
Python function (so every webhook carries its own event id and signature). Counts
answers by status. Run it pinned to its own core: `taskset -c 1 python3 bench/loadgen.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable


async def _connection(
    host: str, port: int, make: Callable[[], bytes], deadline: float, counts: Counter[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < deadline:
            writer.write(make())
            status_line = await reader.readline()
            status = int(status_line.split(b" ", 2)[1])
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            counts[status] += 1
    finally:
        writer.close()


def run(
    host: str, port: int, make: Callable[[], bytes], *, connections: int, seconds: float
) -> tuple[float, Counter[int]]:
    """Requests per second over ``seconds``, and the answers by status."""
    counts: Counter[int] = Counter()

    async def main() -> float:
        start = time.monotonic()
        deadline = start + seconds
        await asyncio.gather(
            *(_connection(host, port, make, deadline, counts) for _ in range(connections))
        )
        return sum(counts.values()) / (time.monotonic() - start)

    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        rate = runner.run(main())
    return rate, counts
