"""The deployment's folder is its owner's only (API.md section 20): ``.pyconvex/`` and every
folder in it 0700, every file 0600 (the SQLite file and its WAL and SHM, the admin key,
the logs, stored blobs, temporary files), whatever the umask of the process that made
them. Checked on what the real ``pyconvex`` CLI leaves behind."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from conftest import APPS
from pyconvex.storage.local import LocalBlobStore

READY = re.compile(r"ready: function API (\S+) · HTTP actions (\S+)")
PORTS = ["--port", "0", "--site-port", "0"]


def cli(*args: str, umask: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyconvex.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        umask=umask,
    )


class Dev:
    """``pyconvex dev`` started with ``umask``, until :meth:`stop`."""

    def __init__(self, app: Path, umask: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyconvex.cli.main", "dev", str(app), *PORTS],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "COLUMNS": "500"},
            umask=umask,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        seen = []
        while (found := READY.search(line := lines.get(timeout=60))) is None:
            seen.append(line)
            assert self.proc.poll() is None, seen
        self.api = found.group(1)

    def _pump(self, lines: queue.Queue[str]) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            lines.put(line)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def modes(folder: Path) -> dict[str, int]:
    """Every path below ``folder`` (itself as ``.``) and its permission bits."""
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            found[str(path.relative_to(folder))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_owner_only(folder: Path) -> dict[str, int]:
    found = modes(folder)
    for name, mode in found.items():
        wanted = 0o700 if (folder / name).is_dir() else 0o600
        assert mode == wanted, f"{name} is {oct(mode)}, not {oct(wanted)}: {found}"
    return found


@pytest.fixture
def app(tmp_path: Path) -> Path:
    target = tmp_path / "web"
    shutil.copytree(APPS / "web" / "convex", target / "convex")
    return target


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_everything_pyconvex_writes_is_owner_only(app: Path, umask: int) -> None:
    stored = cli(
        "run", "files:store_bytes", '{"data": {"$bytes": "aGk="}}', "--app", str(app), umask=umask
    )
    assert stored.returncode == 0, stored.stderr
    state = app / ".pyconvex"
    assert_owner_only(state)

    dev = Dev(app, umask)
    try:
        body = {"path": "counters:chatty", "args": {"tag": "t", "n": 2}}
        assert httpx.post(f"{dev.api}/api/query", json=body).json()["status"] == "success"
        upload = httpx.post(
            f"{dev.api}/api/mutation", json={"path": "files:upload_url", "args": {}}
        ).json()["value"]
        assert httpx.post(upload, content=b"uploaded").status_code == 200
        running = assert_owner_only(state)  # with the WAL and SHM of a live server
        assert {"data.sqlite3", "data.sqlite3-wal", "data.sqlite3-shm"} <= set(running)
    finally:
        dev.stop()
    found = assert_owner_only(state)
    assert {".", "admin_key", "logs.jsonl", "data.sqlite3", "storage"} <= set(found)
    blobs = [name for name in found if name.startswith("storage/") and name.count("/") == 2]
    assert len(blobs) == 2, found  # the stored file and the uploaded one


def test_a_folder_an_older_version_made_is_tightened(app: Path) -> None:
    made = cli("run", "counters:get", '{"name": "a"}', "--app", str(app), umask=0o022)
    assert made.returncode == 0, made.stderr
    state = app / ".pyconvex"
    os.chmod(state, 0o755)  # what the umask gave before this version
    os.chmod(state / "data.sqlite3", 0o644)
    Dev(app, 0o022).stop()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "data.sqlite3").stat().st_mode) == 0o600


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


async def test_a_blob_being_written_is_owner_only(tmp_path: Path, permissive_umask: None) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    key = "0123456789abcdef0123456789abcdef"
    seen: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.sleep(0.05)  # the first piece is written meanwhile
        (partial,) = (tmp_path / "blobs" / key[:2]).glob(".*.partial")
        seen.append(stat.S_IMODE(partial.stat().st_mode))
        yield b"second"

    await store.put(key, chunks())
    assert seen == [0o600]
    assert_owner_only(tmp_path / "blobs")
