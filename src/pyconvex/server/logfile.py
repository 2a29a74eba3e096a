"""The deployment's log file: ``DIR/.pyconvex/logs.jsonl``, one JSON object per line.

``pyconvex dev`` and ``serve`` append every execution's lines to it;
``pyconvex logs [--follow]`` reads it. At 10 MiB it is renamed to
``logs.jsonl.1`` (replacing the previous one) and a new file begins.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..functions.logs import LogLine
from ..owner_only import open_private, private_dir
from .asgi import encode_json

FILE_NAME = "logs.jsonl"
ROTATE_BYTES = 10 * 1024 * 1024
_TAIL_BLOCK = 256 * 1024


class LogFile:
    """A sink that appends lines to the log file (one write per execution)."""

    def __init__(self, state_dir: Path) -> None:
        private_dir(state_dir, tighten=True)
        self.path = state_dir / FILE_NAME

    def __call__(self, lines: list[LogLine]) -> None:
        data = b"".join(encode_json(line.to_json()) + b"\n" for line in lines)
        with os.fdopen(open_private(self.path, os.O_WRONLY | os.O_APPEND), "ab") as out:
            out.write(data)
            size = out.tell()
        if size > ROTATE_BYTES:
            os.replace(self.path, self.path.with_name(FILE_NAME + ".1"))


def _parse(raw: str) -> LogLine | None:
    try:
        return LogLine.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError):
        return None  # a line cut short by a crash: skip it


def tail(state_dir: Path, count: int) -> list[LogLine]:
    """The last ``count`` lines of the log file.

    Read from the end, a block at a time: the dashboard asks every second, and the file
    may hold 10 MiB.
    """
    path = state_dir / FILE_NAME
    if count <= 0 or not path.exists():
        return []
    with open(path, "rb") as source:
        end = source.seek(0, os.SEEK_END)
        start, data = end, b""
        while start > 0 and data.count(b"\n") <= count:
            start = max(0, start - _TAIL_BLOCK)
            source.seek(start)
            data = source.read(end - start)
    raws = data.split(b"\n")
    if start > 0:
        raws = raws[1:]  # begun mid-line
    found = (_parse(raw.decode("utf-8", errors="replace")) for raw in raws if raw.strip())
    return [line for line in found if line is not None][-count:]


def follow(state_dir: Path, *, poll: float = 0.2) -> Iterator[LogLine]:
    """Lines appended from now on, forever (survives rotation)."""
    path = state_dir / FILE_NAME
    position = path.stat().st_size if path.exists() else 0
    inode = path.stat().st_ino if path.exists() else None
    pending = b""
    while True:
        try:
            stat = path.stat()
        except FileNotFoundError:
            time.sleep(poll)
            continue
        if stat.st_ino != inode or stat.st_size < position:
            inode, position, pending = stat.st_ino, 0, b""
        if stat.st_size > position:
            with open(path, "rb") as source:
                source.seek(position)
                pending += source.read()
                position = source.tell()
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                line = _parse(raw.decode("utf-8", errors="replace"))
                if line is not None:
                    yield line
        else:
            time.sleep(poll)
