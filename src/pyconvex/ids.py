"""Document ids: opaque, URL-safe strings that encode their table.

An id is 20 bytes in Crockford base32 (32 characters, like Convex's): 14
random bytes, 4 bytes of a hash of the table name, and a 2-byte checksum. The
table hash is what lets ``v.id("users")`` reject an id of another table
without a database read; the checksum rejects typos.

>>> doc_id = new_id("users")
>>> is_id_of(doc_id, "users"), is_id_of(doc_id, "items")
(True, False)
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache

_RFC = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_TO_CROCKFORD = str.maketrans(_RFC, _CROCKFORD)
_FROM_CROCKFORD = str.maketrans(_CROCKFORD, _RFC)
_ID_CHARS = frozenset(_CROCKFORD)
ID_LENGTH = 32


@lru_cache(maxsize=4096)
def table_hash(table: str) -> bytes:
    return hashlib.sha256(b"pyconvex-table:" + table.encode()).digest()[:4]


def _checksum(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=2).digest()


def new_id(table: str) -> str:
    """A fresh id for a document of ``table``."""
    body = os.urandom(14) + table_hash(table)
    raw = body + _checksum(body)
    return base64.b32encode(raw).decode().translate(_TO_CROCKFORD)


def _decode(doc_id: object) -> bytes | None:
    if not isinstance(doc_id, str) or len(doc_id) != ID_LENGTH or not _ID_CHARS.issuperset(doc_id):
        return None
    raw = base64.b32decode(doc_id.translate(_FROM_CROCKFORD))
    if _checksum(raw[:18]) != raw[18:]:
        return None
    return raw


def is_id(doc_id: object) -> bool:
    """True if ``doc_id`` is a well-formed id of any table."""
    return _decode(doc_id) is not None


def is_id_of(doc_id: object, table: str) -> bool:
    """True if ``doc_id`` is a well-formed id of a document in ``table``."""
    raw = _decode(doc_id)
    return raw is not None and raw[14:18] == table_hash(table)


def id_table_hash(doc_id: object) -> bytes | None:
    raw = _decode(doc_id)
    return None if raw is None else raw[14:18]
