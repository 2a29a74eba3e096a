"""Storage engines behind one narrow interface (see :mod:`.base`)."""

from .base import Persistence, ReadTransaction, ScanRow, WriteTransaction

__all__ = ["Persistence", "ReadTransaction", "ScanRow", "WriteTransaction", "open_persistence"]


def open_persistence(url: str) -> Persistence:
    """Open a store from a URL.

    ``sqlite:///relative/db.sqlite3`` or ``sqlite:////absolute/db.sqlite3`` (SQLAlchemy's spelling).
    """
    if url.startswith("sqlite:///"):
        from .sqlite import SqlitePersistence

        return SqlitePersistence(url.removeprefix("sqlite:///"))
    raise ValueError(f"Unsupported database URL {url!r}: expected sqlite:///PATH")
