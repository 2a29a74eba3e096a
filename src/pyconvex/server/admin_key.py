"""The admin key: the credential that may call internal functions and manage a deployment.

It is ``PYCONVEX_ADMIN_KEY`` when set. Otherwise it is kept in
``DIR/.pyconvex/admin_key`` (mode 0600), made on first use, so ``pyconvex dev``
and the CLI commands run on the same machine agree on it without configuration.
Clients send it as ``Authorization: Convex <key>``.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from ..owner_only import open_private, private_dir

ENV_NAME = "PYCONVEX_ADMIN_KEY"
FILE_NAME = "admin_key"


def admin_key(state_dir: Path, *, create: bool = True) -> str | None:
    """The deployment's admin key (made and stored if ``create`` and there is none yet)."""
    from_env = os.environ.get(ENV_NAME)
    if from_env:
        return from_env
    path = state_dir / FILE_NAME
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    if stored or not create:
        return stored or None
    private_dir(state_dir, tighten=True)
    key = "pyconvex-admin-" + secrets.token_urlsafe(32)
    # Written aside, then linked into place: two processes starting at once
    # agree on the first key, and nobody ever reads a half-written file.
    tmp = state_dir / f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = open_private(tmp, os.O_WRONLY | os.O_EXCL)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        tmp.unlink()
    return key


def matches(expected: str | None, presented: bytes) -> bool:
    """Constant-time comparison of a presented key with the expected one."""
    if not expected:
        return False
    return hmac.compare_digest(expected.encode(), presented)
