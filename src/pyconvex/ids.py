"""Document ids: opaque, URL-safe strings that encode their table.

An id is 20 bytes in Crockford base32 (32 characters, like Convex's): 6 bytes
of the creation time in milliseconds and 8 random bytes, 4 bytes of a hash of
the table name, and a 2-byte checksum. The table hash is what lets
``v.id("users")`` reject an id of another table without a database read; the
checksum rejects typos. The time prefix makes new ids land at the end of the
store's id index instead of at random places in it (several times fewer pages
written per commit); the 64 random bits keep ids unguessable. Ids are still
opaque: sort by ``_creationTime``, not by id.

>>> doc_id = new_id("users")
>>> is_id_of(doc_id, "users"), is_id_of(doc_id, "items")
(True, False)
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from functools import lru_cache

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
ID_LENGTH = 32


@lru_cache(maxsize=4096)
def table_hash(table: str) -> bytes:
    return hashlib.sha256(b"pyconvex-table:" + table.encode()).digest()[:4]


def _checksum(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=2).digest()


# 20 bytes are exactly 32 base32 characters, so base32 here is 16 lookups of 10 bits each:
# the same text as base64.b32encode (then Crockford's alphabet), several times faster.
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_SHIFTS = range(150, -1, -10)


def encode(raw: bytes) -> str:
    """Crockford base32 of exactly 20 bytes."""
    n = int.from_bytes(raw, "big")
    return "".join([_PAIRS[(n >> shift) & 1023] for shift in _SHIFTS])


def new_id(table: str) -> str:
    """A fresh id for a document of ``table``."""
    body = int(time.time() * 1000).to_bytes(6, "big") + os.urandom(8) + table_hash(table)
    return encode(body + _checksum(body))


# Crockford's digits, as the digits int(..., 32) reads; anything else fails the regex first.
_TO_INT_DIGITS = str.maketrans(_CROCKFORD, "0123456789abcdefghijklmnopqrstuv")
_WELL_FORMED = re.compile(r"[0-9a-hjkmnp-tv-z]{32}")


def _decode(doc_id: object) -> bytes | None:
    if not isinstance(doc_id, str) or _WELL_FORMED.fullmatch(doc_id) is None:
        return None
    raw = int(doc_id.translate(_TO_INT_DIGITS), 32).to_bytes(20, "big")
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
