"""Order-preserving byte encoding of values, for index keys and comparisons.

``encode(a) < encode(b)`` (as bytes) exactly when ``a`` sorts before ``b`` in
Convex's order: absent < null < numbers < false < true < strings < bytes <
arrays < objects. ``int`` and ``float`` are one numeric type here, compared by
their exact values (so ``1 == 1.0`` and ``2**60 + 1 > 2**60``), and ``-0.0``
equals ``0.0``; NaN sorts above infinity. Every encoding is self-delimiting,
so a key of several fields compares field by field and a prefix range is a
byte range. Both SQLite and PostgreSQL compare BLOB/bytea with memcmp, which
is why index ranges can be plain ``key >= ? AND key < ?`` scans.

>>> encode(1) == encode(1.0), encode(2) < encode(2.5) < encode(False) < encode("")
(True, True)
"""

from __future__ import annotations

import struct
from typing import Any

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()

_ABSENT = b"\x01"
_NULL = b"\x02"
_NUMBER = b"\x03"
_FALSE = b"\x04"
_TRUE = b"\x05"
_STRING = b"\x06"
_BYTES = b"\x07"
_ARRAY = b"\x08"
_OBJECT = b"\x09"
_END = b"\x00"
_FIELD = b"\x01"

_EXACT = b"\x80"
_BELOW = b"\x40"  # an int just below the float it rounds to
_ABOVE = b"\xc0"  # an int just above it
_NAN = struct.pack(">Q", 0xFFF8000000000000)


def _float_bits(f: float) -> bytes:
    if f != f:
        return _NAN
    if f == 0.0:
        f = 0.0  # -0.0 equals 0.0
    (bits,) = struct.unpack(">Q", struct.pack(">d", f))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return struct.pack(">Q", bits)


def _number(n: int | float) -> bytes:
    if isinstance(n, float):
        return _NUMBER + _float_bits(n) + _EXACT
    f = float(n)
    rest = n - int(f)
    if rest == 0:
        return _NUMBER + _float_bits(f) + _EXACT
    # An int64 beyond 2**53 that no float holds exactly: order it around its float by the remainder.
    marker = _BELOW if rest < 0 else _ABOVE
    return _NUMBER + _float_bits(f) + marker + struct.pack(">Q", rest + (1 << 63))


def _escaped(raw: bytes) -> bytes:
    return raw.replace(b"\x00", b"\x00\xff") + _END


def encode(value: Any) -> bytes:
    """The sort key of one value (``MISSING`` for an absent field)."""
    if value is MISSING:
        return _ABSENT
    if value is None:
        return _NULL
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, str):
        return _STRING + _escaped(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bytes):
        return _BYTES + _escaped(value)
    if isinstance(value, list):
        return _ARRAY + b"".join(encode(item) for item in value) + _END
    if isinstance(value, dict):
        # Each field opens with _FIELD so that an empty key cannot read as the object's end.
        parts = [
            _FIELD + _escaped(k.encode("utf-8", "surrogatepass")) + encode(value[k])
            for k in sorted(value)
        ]
        return _OBJECT + b"".join(parts) + _END
    raise TypeError(f"cannot order a {type(value).__name__}")


def get_field(doc: dict[str, Any], path: str) -> Any:
    """The value at a dotted field path, or ``MISSING``."""
    if "." not in path:
        return doc.get(path, MISSING)
    current: Any = doc
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return MISSING
        current = current[part]
    return current


def index_key(doc: dict[str, Any], fields: tuple[str, ...]) -> bytes:
    """The full index key of a document: its fields, then ``_creationTime``, then ``_id``."""
    return fields_key(doc, fields) + identity_key(doc)


def fields_key(doc: dict[str, Any], fields: tuple[str, ...]) -> bytes:
    """The part of an index key that comes from the indexed fields."""
    if len(fields) == 1:
        return encode(get_field(doc, fields[0]))
    return b"".join([encode(get_field(doc, f)) for f in fields])


def identity_key(doc: dict[str, Any]) -> bytes:
    """The tail every index key of a document shares: ``_creationTime``, then ``_id``.

    Both never change, so a write computes this once for all of a document's indexes.
    """
    return _number(doc["_creationTime"]) + _STRING + _escaped(doc["_id"].encode())


def successor(prefix: bytes) -> bytes | None:
    """The smallest byte string above every string that starts with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def compare(a: Any, b: Any) -> int:
    ka, kb = encode(a), encode(b)
    return (ka > kb) - (ka < kb)
