"""Leases: how a process tells a crashed worker's claims from a live one's, on both backends."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import eventually
from pyconvex.persistence import open_persistence

HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from pyconvex.persistence import open_persistence

    async def main():
        store = open_persistence(sys.argv[1])
        await store.hold_lease(sys.argv[2])
        print("held", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_a_lease_lives_with_its_process_and_dies_with_it(database_url: str) -> None:
    store = open_persistence(database_url)
    try:
        await store.hold_lease("mine")
        assert await store.lease_alive("mine")
        assert not await store.lease_alive("never-held")
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, database_url, "theirs"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            assert await store.lease_alive("theirs")
            with pytest.raises(RuntimeError, match="held by another process"):
                await store.hold_lease("theirs")
        finally:
            holder.kill()  # SIGKILL: no chance to let go
            holder.wait()

        # The kernel (SQLite's file locks) or the server (PostgreSQL's sessions) lets go as the
        # process dies; poll for it rather than guess how long that takes.
        async def gone() -> bool:
            return not await store.lease_alive("theirs")

        await eventually(gone, "the dead holder's lease never went", timeout=10)
        await store.hold_lease("theirs")  # free to take now
    finally:
        await store.close()
