"""Folders and files only their owner may read: the deployment's folder (``.pyconvex/``)
and what pyconvex writes in it (API.md section 20).

The SQLite file holds env values and webhook secrets, the logs what functions print, the
blobs what users upload. Modes are set explicitly, not left to the umask: a permissive
umask (0o022 is common, 0o000 happens) would make them readable by every user of the
machine, and a strict odd one (0o277) would lock pyconvex out of its own folder.

    private_dir(state_dir, tighten=True)   # 0700, made if missing
    fd = open_private(path, os.O_WRONLY | os.O_APPEND)   # 0600, made if missing
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str], *, tighten: bool = False) -> Path:
    """Make ``path`` and its missing parents as 0700 folders. ``tighten`` also sets 0700 on
    ``path`` if it was there already: for pyconvex's own folder, which older versions made
    with the umask's mode (the files inside are then out of others' reach whatever theirs)."""
    folder = Path(path)
    missing: list[Path] = []
    probe = folder
    while not probe.exists() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    for made in reversed(missing):
        try:
            os.mkdir(made, DIR_MODE)
        except FileExistsError:  # another process made it meanwhile: its mode is its own
            continue
        os.chmod(made, DIR_MODE)  # the umask may have taken bits from mkdir's mode
    if tighten and not missing:
        _chmod(folder, DIR_MODE)
    return folder


def open_private(path: str | os.PathLike[str], flags: int) -> int:
    """``os.open(path, flags)``, making the file 0600 if it is new, and setting 0600 on one
    there already (a file an older version made, or an umask that took bits away)."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
            with contextlib.suppress(PermissionError):  # someone else's file: leave it
                os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def tighten_file(path: str | os.PathLike[str]) -> None:
    """0600 on a file if it exists and is ours (the SQLite file and its WAL and SHM)."""
    _chmod(Path(path), FILE_MODE)


def _chmod(path: Path, mode: int) -> None:
    # Absent, or someone else's (a shared folder): nothing to do, and no reason to fail.
    with contextlib.suppress(FileNotFoundError, PermissionError):
        if path.stat().st_mode & 0o777 != mode:
            os.chmod(path, mode)
