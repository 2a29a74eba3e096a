"""1 GiB through an upload URL and through an HTTP action: the server's memory stays flat."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx

from test_cli_serving import WEB, Process

MiB = 1024 * 1024
SIZE = 1024 * MiB
BLOCKS = [bytes([i]) * MiB for i in range(256)]


def gibibyte() -> Iterator[bytes]:
    for i in range(SIZE // MiB):
        yield BLOCKS[i % 256]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_one_gib_uploads_in_flat_memory(tmp_path: Path) -> None:
    app = tmp_path / "web"
    shutil.copytree(WEB / "convex", app / "convex", ignore=shutil.ignore_patterns("__pycache__"))
    server = Process("dev", str(app), "--max-body-size", str(2 * SIZE))
    try:
        with httpx.Client(timeout=300) as client:
            made = client.post(
                f"{server.api}/api/mutation", json={"path": "files:upload_url", "args": {}}
            )
            url = made.json()["value"]
            first = client.post(
                url, content=gibibyte(), headers={"content-type": "application/x-big"}
            )
            assert first.status_code == 200, first.text
            second = client.post(f"{server.site}/upload", content=gibibyte())
            assert second.status_code == 200, second.text

            for storage_id in (first.json()["storageId"], second.json()["storageId"]):
                file_url = f"{server.api}/api/storage/{storage_id}"
                assert client.head(file_url).headers["content-length"] == str(SIZE)
                offset = 300 * MiB + 12345  # inside block 300, whose byte is 300 % 256
                part = client.get(file_url, headers={"Range": f"bytes={offset}-{offset + 15}"})
                assert part.status_code == 206
                assert part.content == bytes([300 % 256]) * 16
                tail = client.get(file_url, headers={"Range": "bytes=-4"})
                assert tail.content == bytes([(SIZE // MiB - 1) % 256]) * 4
        peak = peak_rss_mib(server.proc.pid)
        print(f"server peak RSS: {peak:.0f} MiB")
        assert peak < 200, f"peak RSS {peak:.0f} MiB"
    finally:
        server.stop()
