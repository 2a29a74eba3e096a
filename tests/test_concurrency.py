"""Serializable mutations across OS processes sharing one SQLite file or PostgreSQL database."""

import asyncio
import subprocess
import sys
import textwrap

from pyconvex.deployment import Deployment

WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from pyconvex.deployment import Deployment

    async def main(app, url, times):
        async with Deployment(app, database_url=url) as d:
            for _ in range(times):
                await d.executor.run("counters:increment", {"name": "shared"})

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_four_processes_increment_exactly_1000_times(basic_app, database_url):
    # On PostgreSQL the four processes' writers run at once: the lost races are retried.
    url = database_url
    async with Deployment(basic_app, database_url=url):
        pass  # create the file and its indexes once, before the race
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(basic_app), url, "250"])
        for _ in range(4)
    ]
    codes = await asyncio.gather(*(asyncio.to_thread(w.wait, 120) for w in workers))
    assert codes == [0, 0, 0, 0]
    async with Deployment(basic_app, database_url=url) as d:
        assert await d.executor.run("counters:get", {"name": "shared"}) == 1000
        counters = await d.executor.run_in_mutation(lambda ctx: ctx.db.query("counters").collect())
        assert len(counters) == 1  # no lost insert race either


async def test_concurrent_mutations_in_one_process(t):
    results = await asyncio.gather(
        *(t.mutation("counters:increment", {"name": "c"}) for _ in range(100))
    )
    assert sorted(results) == list(range(1, 101))
    assert await t.query("counters:get", {"name": "c"}) == 100


async def test_query_reads_one_snapshot(t):
    """A query that reads twice sees the same data even if a mutation commits in between."""
    await t.mutation("counters:increment", {"name": "s"})
    seen = []
    gate = asyncio.Event()
    resume = asyncio.Event()

    async def slow_reader():
        async with t.deployment.database.read() as reader:
            first = await reader.query("counters").collect()
            gate.set()
            await resume.wait()
            second = await reader.query("counters").collect()
            seen.append((first, second))

    task = asyncio.create_task(slow_reader())
    await gate.wait()
    await t.mutation("counters:increment", {"name": "s"})
    resume.set()
    await task
    first, second = seen[0]
    assert first == second and first[0]["value"] == 1
    assert await t.query("counters:get", {"name": "s"}) == 2
