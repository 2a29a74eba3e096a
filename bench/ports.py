"""Ports for the benchmarks' servers: a free one, and waiting until a server listens on it."""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    """Return once ``port`` accepts connections; kill ``proc`` and raise if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # a benchmark, not a test: polling is fine here
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{what} did not start")
