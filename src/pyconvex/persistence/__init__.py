"""Storage engines behind one narrow interface (see :mod:`.base`)."""

from .base import Persistence, ReadTransaction, ScanRow, WriteBatch, WriteTransaction

__all__ = [
    "Persistence",
    "ReadTransaction",
    "ScanRow",
    "WriteBatch",
    "WriteTransaction",
    "open_persistence",
]


def open_persistence(url: str) -> Persistence:
    """Open a store from a URL.

    ``sqlite:///relative/db.sqlite3`` or ``sqlite:////absolute/db.sqlite3`` (SQLAlchemy's
    spelling); ``postgresql://user:password@host:port/dbname`` (libpq's; ``postgres://`` too).
    """
    if url.startswith("sqlite:///"):
        from .sqlite import SqlitePersistence

        return SqlitePersistence(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresPersistence

        return PostgresPersistence(url)
    raise ValueError(
        f"Unsupported database URL {url!r}: expected sqlite:///PATH or postgresql://..."
    )
