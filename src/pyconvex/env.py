"""Deployment environment variables: ``from pyconvex import env``.

    secret = env["STRIPE_WEBHOOK_SECRET"]       # KeyError naming the fix if unset
    region = env.get("REGION", "eu")

Values are set with ``pyconvex env set NAME VALUE`` and stored in the
deployment's database (the ``_env_vars`` system table), so every process of a
deployment sees the same ones. A name the deployment does not define falls
back to the process environment. ``CONVEX_SITE_URL`` (where HTTP actions are
served) and ``CONVEX_CLOUD_URL`` (the function API) are always defined.
Module-level code of the app sees the same values: while the functions folder
is imported they are in ``os.environ`` (over the process's own).

Each process keeps a copy, re-read at most every quarter second when a
function or HTTP action starts, so a change made by another process is seen
within that time; a change made through this process is seen at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .database.system import ENV_VARS

if TYPE_CHECKING:
    from .database import Database

BUILTIN_NAMES = ("CONVEX_CLOUD_URL", "CONVEX_SITE_URL")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
MAX_VALUE_BYTES = 8192
REFRESH_SECONDS = 0.25


def check_name(name: object) -> str:
    """Convex's rules: a letter first, then letters, digits or underscores, at most 40."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"Invalid environment variable name {name!r}: it must start with a letter and hold "
            "only letters, digits and underscores, at most 40 characters"
        )
    if name in BUILTIN_NAMES:
        raise ValueError(f"{name} is set by pyconvex and cannot be changed")
    return name


def check_value(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"The value of {name} must be a string, not {type(value).__name__}")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise ValueError(f"The value of {name} is over {MAX_VALUE_BYTES} bytes")
    return value


class EnvStore:
    """One deployment's variables: the stored ones, cached, plus the built-in URLs."""

    def __init__(self, database: Database, builtins: Mapping[str, str]) -> None:
        self._database = database
        self.builtins = dict(builtins)
        self._values: dict[str, str] = {}
        self._loaded_at = float("-inf")

    def stale(self) -> bool:
        """Whether the copy is old enough to be re-read (a cheap check for hot paths)."""
        return time.monotonic() - self._loaded_at >= REFRESH_SECONDS

    async def refresh(self, *, force: bool = False) -> None:
        """Re-read the stored variables if the copy is older than a quarter second."""
        now = time.monotonic()
        if not force and now - self._loaded_at < REFRESH_SECONDS:
            return
        async with self._database.read(system=True) as reader:
            docs = await reader.query(ENV_VARS).collect()
        self._values = {doc["name"]: doc["value"] for doc in docs}
        self._loaded_at = now

    async def list(self) -> dict[str, str]:
        """The stored variables (not the built-in ones), sorted by name."""
        await self.refresh(force=True)
        return dict(sorted(self._values.items()))

    async def set(self, name: str, value: str) -> None:
        check_name(name)
        check_value(name, value)

        async def write(writer: Any) -> None:
            existing = (
                await writer.query(ENV_VARS)
                .with_index("by_name", lambda q: q.eq("name", name))
                .first()
            )
            if existing is None:
                await writer.insert(ENV_VARS, {"name": name, "value": value})
            else:
                await writer.patch(existing["_id"], {"value": value})

        await self._database.transact(write, system=True)
        await self.refresh(force=True)

    async def remove(self, name: str) -> bool:
        """Delete a variable; False if it was not set."""
        check_name(name)

        async def delete(writer: Any) -> bool:
            existing = (
                await writer.query(ENV_VARS)
                .with_index("by_name", lambda q: q.eq("name", name))
                .first()
            )
            if existing is None:
                return False
            await writer.delete(existing["_id"])
            return True

        removed: bool = await self._database.transact(delete, system=True)
        await self.refresh(force=True)
        return removed

    def visible(self) -> dict[str, str]:
        """Every variable code of this deployment sees (the stored ones and the built-in URLs),
        as last read: no database read."""
        return {**self._values, **self.builtins}

    def lookup(self, name: str) -> str | None:
        found = self.builtins.get(name)
        if found is None:
            found = self._values.get(name)
        if found is None:
            found = os.environ.get(name)
        return found


class Env(Mapping[str, str]):
    """The variables of the deployment running the current function.

    Outside a function (at import time, in a script) it reads the deployment
    that started last in this process, or else the process environment.
    """

    def _store(self) -> EnvStore | None:
        from .functions.logs import current_execution

        execution = current_execution.get()
        if execution is not None and execution.env is not None:
            store: EnvStore = execution.env
            return store
        return _last_started

    def __getitem__(self, name: str) -> str:
        store = self._store()
        found = store.lookup(name) if store is not None else os.environ.get(name)
        if found is None:
            raise KeyError(
                f"Environment variable {name} is not set: set it with "
                f"`pyconvex env set {name} <value>`"
            )
        return found

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name``, or ``default``."""
        try:
            return self[name]
        except KeyError:
            return default

    def _names(self) -> set[str]:
        store = self._store()
        names = set(os.environ)
        if store is not None:
            names |= set(store._values) | set(store.builtins)
        return names

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._names()))

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        # Never print values: they are secrets.
        return f"<pyconvex env: {len(self)} variables>"


_last_started: EnvStore | None = None


def set_process_default(store: EnvStore) -> None:
    global _last_started
    _last_started = store


def forget_process_default(store: EnvStore) -> None:
    global _last_started
    if _last_started is store:
        _last_started = None


@contextlib.contextmanager
def process_default(store: EnvStore) -> Iterator[None]:
    """``store`` as the process default for the block (an app's import: its module-level
    ``env[...]`` reads this deployment, not the one that started last), then the previous."""
    global _last_started
    previous, _last_started = _last_started, store
    try:
        yield
    finally:
        _last_started = previous


env = Env()
