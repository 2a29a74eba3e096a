"""The value model: which Python objects are Convex values, and their wire forms.

Convex values in Python are ``None``, ``bool``, ``int``, ``float``, ``str``,
``bytes``, ``list``, ``dict`` with ``str`` keys that do not start with ``$``,
and :class:`Int64`. Convex has two number types: Float64 (a JS ``number``) and
Int64 (a JS ``bigint``). As in Convex's own Python client, a plain ``int`` is a
Convex *number* and an Int64 is an :class:`Int64`, an ``int`` that computes like
one. A value keeps its Python type through storage and back.

>>> to_convex_json({"n": 1, "big": Int64(2**60), "raw": b"\\x00"})
{'n': 1.0, 'big': {'$integer': 'AAAAAAAAABA='}, 'raw': {'$bytes': 'AA=='}}
>>> type(from_convex_json({"$integer": "AAAAAAAAABA="})).__name__
'Int64'
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, TypeAlias

import msgspec

from .errors import InvalidValueError

Value: TypeAlias = bool | int | float | str | bytes | list["Value"] | dict[str, "Value"] | None

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Beyond this a JSON number loses digits in JavaScript.
_JSON_SAFE_INT = 2**53


class Int64(int):
    """Convex's Int64 (``v.int64()``; a ``bigint`` in JavaScript): an ``int`` that
    travels as ``{"$integer": ...}`` and is stored as an Int64, where a plain ``int`` is
    a Convex number (a float64).

        count = Int64(3)
        count + 1            # 4: arithmetic gives plain ints, as with any int subclass
        ctx.db.insert("counters", {"value": Int64(count + 1)})

    ``v.int64()`` turns any ``int`` in the signed 64-bit range into one.
    """

    __slots__ = ()

    def __new__(cls, value: int = 0) -> Int64:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"Int64 takes an int, not {type(value).__name__}")
        if not INT64_MIN <= value <= INT64_MAX:
            raise OverflowError(f"{value} is outside the signed 64-bit range")
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"Int64({int(self)})"

    __str__ = int.__repr__  # str() and f-strings print the number, as for any int


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits for one kind of value (Convex's numbers)."""

    max_depth: int = 64
    max_array_len: int = 8192
    max_object_fields: int = 1024
    max_field_name_len: int = 1024
    max_size: int = 16 * 1024 * 1024


VALUE_LIMITS = Limits()
DOCUMENT_LIMITS = Limits(max_depth=16, max_size=1024 * 1024)


def check_value(value: object, *, limits: Limits = VALUE_LIMITS, what: str = "Value") -> None:
    """Raise :class:`InvalidValueError` unless ``value`` is a Convex value within ``limits``."""
    # A quick walk that only says yes or no; the slow one, which builds the
    # path of the problem for the message, runs only when the quick one says no.
    if not _quick(value, limits, 0):
        _check(value, limits, what, "", 0)


_SCALARS = frozenset({str, float, bool, bytes, type(None)})
_INTS = frozenset({int, Int64})
# Field names seen to be valid: documents repeat the same few, and a set probe
# is much cheaper than the checks. Bounded so hostile input cannot grow it.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_MAX = 65536


def _quick(value: object, limits: Limits, depth: int) -> bool:
    cls = value.__class__
    if cls in _SCALARS:
        return True
    if cls in _INTS:
        return INT64_MIN <= value <= INT64_MAX  # type: ignore[operator]
    if depth >= limits.max_depth:
        return False
    items: Any
    if cls is dict:
        if len(value) > limits.max_object_fields:  # type: ignore[arg-type]
            return False
        # The common case in C: every field name already seen to be valid.
        if not value.keys() <= _GOOD_NAMES:  # type: ignore[attr-defined]
            for key in value:  # type: ignore[attr-defined]
                if key not in _GOOD_NAMES and (
                    key.__class__ is not str or not _good_name(key, limits)
                ):
                    return False
        items = value.values()  # type: ignore[attr-defined]
    elif cls is list:
        if len(value) > limits.max_array_len:  # type: ignore[arg-type]
            return False
        items = value
    else:
        return False  # subclasses and everything else: let the slow walk decide
    if set(map(type, items)) <= _SCALARS:
        return True  # only strings, floats, ... (in C: no Python loop over them)
    for item in items:
        kind = item.__class__
        if kind in _SCALARS:
            continue
        if kind in _INTS:
            if not INT64_MIN <= item <= INT64_MAX:
                return False
        elif not _quick(item, limits, depth + 1):
            return False
    return True


def _good_name(key: str, limits: Limits) -> bool:
    if key.startswith("$") or len(key) > limits.max_field_name_len or _CONTROL.search(key):
        return False
    if len(_GOOD_NAMES) < _GOOD_NAMES_MAX and len(key) <= 64:
        _GOOD_NAMES.add(key)
    return True


def _fail(what: str, path: str, message: str) -> InvalidValueError:
    where = f" at path {path}" if path else ""
    return InvalidValueError(f"{what} is not a valid Convex value{where}: {message}")


def _check(value: object, limits: Limits, what: str, path: str, depth: int) -> None:
    if depth > limits.max_depth:
        raise _fail(what, path, f"it is nested more than {limits.max_depth} levels deep")
    if value is None or isinstance(value, (bool, float, str, bytes)):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise _fail(what, path, f"integer {value} is outside the signed 64-bit range")
        return
    if isinstance(value, list):
        if len(value) > limits.max_array_len:
            raise _fail(
                what, path, f"array has {len(value)} elements, more than {limits.max_array_len}"
            )
        for i, item in enumerate(value):
            _check(item, limits, what, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        if len(value) > limits.max_object_fields:
            raise _fail(
                what, path, f"object has {len(value)} fields, more than {limits.max_object_fields}"
            )
        for key, item in value.items():
            check_field_name(key, limits, what, path)
            _check(item, limits, what, f"{path}.{key}", depth + 1)
        return
    raise _fail(what, path, f"{type(value).__name__} is not supported ({_short_repr(value)})")


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def check_field_name(key: object, limits: Limits, what: str, path: str) -> None:
    if not isinstance(key, str):
        raise _fail(what, path, f"field name {key!r} is not a string")
    if key.startswith("$"):
        raise _fail(what, path, f"field name {key!r} starts with '$', which is reserved")
    if len(key) > limits.max_field_name_len:
        raise _fail(what, path, f"field name is longer than {limits.max_field_name_len} characters")
    if _CONTROL.search(key):
        raise _fail(what, path, f"field name {key!r} contains a control character")


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- storage encoding ----------------------------------------------------------

_INT64_EXT = 1  # msgpack extension type of an Int64: 8 bytes, little-endian


def _encode_other(value: Any) -> Any:
    if value.__class__ is Int64:
        return msgspec.msgpack.Ext(_INT64_EXT, struct.pack("<q", value))
    raise TypeError(f"{type(value).__name__} is not a Convex value")


def _decode_ext(code: int, data: memoryview) -> Any:
    if code == _INT64_EXT:
        return Int64(struct.unpack("<q", data)[0])
    raise ValueError(f"unknown stored extension type {code}")


_msgpack_encoder = msgspec.msgpack.Encoder(enc_hook=_encode_other)
_msgpack_decoder = msgspec.msgpack.Decoder(ext_hook=_decode_ext)


def encode(value: Any) -> bytes:
    """Encode a checked value for storage, keeping int, Int64, float and bytes apart
    (an Int64 is a msgpack extension; a plain int a msgpack integer)."""
    return _msgpack_encoder.encode(value)


def decode(data: bytes) -> Any:
    """Inverse of :func:`encode`."""
    return _msgpack_decoder.decode(data)


# -- Convex JSON ----------------------------------------------------------------


def to_convex_json(value: Value, *, wire: bool = True) -> Any:
    """A JSON-ready form of ``value`` in Convex's encoding, exact both ways: an
    :class:`Int64` as ``{"$integer": ...}``, bytes as ``{"$bytes": ...}``, NaN, the
    infinities and -0.0 as ``{"$float": ...}``, other numbers as JSON numbers.

    On the ``wire`` (what Convex's JavaScript clients read), a plain ``int`` is a float64:
    one a float cannot hold exactly is an :class:`InvalidValueError` naming its path. Off it
    (``pyconvex export``) such an int is written as the JSON integer it is.
    """
    try:
        return _convex_json(value, wire)
    except _Inexact as exc:
        where = f" at {exc.path}" if exc.path else ""
        raise InvalidValueError(
            f"The number {exc.number}{where} cannot be sent exactly: a plain int is a Convex "
            "number (a float64). Use pyconvex.Int64 for it, and v.int64() in its validator."
        ) from None


class _Inexact(Exception):
    """An int no float64 holds, on its way up to :func:`to_convex_json`, which names where
    it is: the path is worked out only then, not for every value encoded."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.within: object = number  # the value, then each container around it
        self.path = ""

    def inside(self, container: object, segment: str) -> None:
        self.path = segment + self.path
        self.within = container


def _convex_json(value: Value, wire: bool) -> Any:
    cls = value.__class__
    if value is None or cls is bool or cls is str:
        return value
    if cls is Int64:
        return {"$integer": base64.b64encode(struct.pack("<q", value)).decode()}
    if cls is int:
        number: int = value  # type: ignore[assignment]
        if not wire:
            return number
        if not -_JSON_SAFE_INT <= number <= _JSON_SAFE_INT and float(number) != number:
            raise _Inexact(number)
        # Written as the float it is on the wire (2.0, not 2): Convex's Python client
        # refuses JSON integers where a float64 is meant.
        return float(number)
    if cls is float:
        if math.isfinite(value) and not (value == 0.0 and math.copysign(1.0, value) < 0):  # type: ignore[arg-type]
            return value
        return {"$float": base64.b64encode(struct.pack("<d", value)).decode()}
    if cls is bytes:
        return {"$bytes": base64.b64encode(value).decode()}  # type: ignore[arg-type]
    if cls is list:
        try:
            return [_convex_json(item, wire) for item in value]  # type: ignore[union-attr]
        except _Inexact as exc:
            at = next(i for i, item in enumerate(value) if item is exc.within)  # type: ignore[arg-type]
            exc.inside(value, f"[{at}]")
            raise
    if cls is dict:
        try:
            return {k: _convex_json(item, wire) for k, item in value.items()}  # type: ignore[union-attr]
        except _Inexact as exc:
            key = next(k for k, item in value.items() if item is exc.within)  # type: ignore[union-attr]
            exc.inside(value, f".{key}")
            raise
    raise InvalidValueError(f"{type(value).__name__} is not a Convex value")


def to_clean_json(value: Value) -> Any:
    """Convex's "clean" JSON (the function API's ``format: "json"``): every number (int,
    Int64, float) a JSON number; bytes a base64 string; NaN and the infinities
    ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.

    >>> to_clean_json({"n": Int64(2**60), "b": b"hi", "x": float("inf"), "k": 3})
    {'n': 1152921504606846976, 'b': 'aGk=', 'x': 'Infinity', 'k': 3}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [to_clean_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_clean_json(v) for k, v in value.items()}
    raise InvalidValueError(f"{type(value).__name__} is not a Convex value")


_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def _b64(text: object, kind: str) -> bytes:
    if not isinstance(text, str) or len(text) % 4 or not _B64.match(text):
        raise InvalidValueError(f"{kind} must hold a base64 string, got {_short_repr(text)}")
    return base64.b64decode(text)


def from_convex_json(data: Any, *, numbers: str = "int") -> Value:
    """Decode parsed Convex JSON (``$integer``, ``$float``, ``$bytes``) into a value.

    ``{"$integer": ...}`` is an :class:`Int64`. A JSON integer is an ``int``, or with
    ``numbers="float"`` (Convex's clients, which know only float64 numbers and bigints)
    a ``float``, as every JSON number is then.
    """
    if data is None or isinstance(data, (bool, str)):
        return data
    if isinstance(data, int):
        if numbers == "float":
            return float(data)
        if not INT64_MIN <= data <= INT64_MAX:
            raise InvalidValueError(f"integer {data} is outside the signed 64-bit range")
        return data
    if isinstance(data, float):
        return data
    if isinstance(data, list):
        return [from_convex_json(v, numbers=numbers) for v in data]
    if isinstance(data, dict):
        if len(data) == 1:
            ((key, inner),) = data.items()
            if key == "$integer":
                raw = _b64(inner, "$integer")
                if len(raw) != 8:
                    raise InvalidValueError("$integer must encode exactly 8 bytes")
                return Int64(struct.unpack("<q", raw)[0])
            if key == "$float":
                raw = _b64(inner, "$float")
                if len(raw) != 8:
                    raise InvalidValueError("$float must encode exactly 8 bytes")
                return float(struct.unpack("<d", raw)[0])
            if key == "$bytes":
                return _b64(inner, "$bytes")
        out: dict[str, Value] = {}
        for key, inner in data.items():
            if not isinstance(key, str) or key.startswith("$"):
                raise InvalidValueError(f"field name {key!r} starts with '$', which is reserved")
            out[key] = from_convex_json(inner, numbers=numbers)
        return out
    raise InvalidValueError(f"{type(data).__name__} is not JSON")


def plain_json(value: Any) -> Any:
    """``enc_hook`` of pyconvex's JSON encoders: an :class:`Int64` is the JSON number it is
    (msgspec refuses subclasses of ``int`` on its own)."""
    if isinstance(value, int):
        return int(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


_json_encoder = msgspec.json.Encoder(enc_hook=plain_json)
_json_decoder = msgspec.json.Decoder()

#: How deep JSON from a client may nest: as deep as a Convex value (API.md section 20).
MAX_JSON_DEPTH = VALUE_LIMITS.max_depth


class NestingError(InvalidValueError):
    """JSON, or a value, nested deeper than a limit. ``path`` is where it first went past
    it (``.a[0].b``), ``""`` when that could not be found."""

    def __init__(self, limit: int, path: str) -> None:
        self.limit = limit
        self.path = path
        where = f" at path {path}" if path else ""
        super().__init__(f"nested more than {limit} levels deep{where}")


def parse_json(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON a client sent: :class:`NestingError` when it nests more than ``max_depth``
    containers deep, :class:`InvalidValueError` when it is not JSON.

    Never a ``RecursionError``: the parser and every recursive walk over a parsed value (the
    validators, Convex JSON decoding) run out of Python stack somewhere between a few hundred
    and a thousand levels, and that would be a 500 for a malformed request.
    """
    try:
        parsed = _json_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidValueError(str(exc)) from None
    except RecursionError:
        raise NestingError(max_depth, _deep_path_in_text(data, max_depth)) from None
    # Counting brackets runs in C and clears nearly every body without a walk: JSON cannot
    # nest deeper than the containers it opens.
    if isinstance(data, str):
        opened = data.count("[") + data.count("{")
    else:
        opened = data.count(b"[") + data.count(b"{")
    if opened > max_depth:
        path = deep_path(parsed, max_depth)
        if path is not None:
            raise NestingError(max_depth, path)
    return parsed


_CONTAINERS = (dict, list)


def deep_path(value: object, max_depth: int) -> str | None:
    """The path of the first list or dict nested inside ``max_depth`` others (so too deep
    for that limit), or None. Recurses at most ``max_depth`` levels, whatever ``value`` is."""
    cls = value.__class__
    if cls is not dict and cls is not list:
        return None
    if max_depth <= 0:
        return ""
    items: Any = value.values() if cls is dict else value  # type: ignore[attr-defined]
    kinds = set(map(type, items))
    if dict not in kinds and list not in kinds:
        return None  # the common leaf, decided in C
    pairs: Any = value.items() if cls is dict else enumerate(value)  # type: ignore[attr-defined, arg-type]
    for key, item in pairs:
        if item.__class__ in _CONTAINERS:
            inner = deep_path(item, max_depth - 1)
            if inner is not None:
                return _segment(key) + inner
    return None


def _segment(key: object) -> str:
    if isinstance(key, int):
        return f"[{key}]"
    text = str(key)
    return "." + (text if len(text) <= 40 else text[:37] + "...")


# Strings (escapes included) and the punctuation that opens, closes and separates.
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)
_TEXT_SEARCHED = 256 * 1024


def _deep_path_in_text(data: bytes | str, max_depth: int) -> str:
    """Where JSON text first nests more than ``max_depth`` deep, from the text itself: for
    JSON too deep for the parser to return a value at all. ``""`` if not found."""
    # A Python loop per token: only the start is searched, so a body built to be slow to
    # search (megabytes of commas before the deep part) costs milliseconds, not seconds.
    start = data[:_TEXT_SEARCHED]
    raw = start.encode() if isinstance(start, str) else bytes(start)
    stack: list[list[Any]] = []  # per open container: [is an object, index or key]
    key_next = False
    for token in _JSON_TOKEN.finditer(raw):
        text = token.group()
        first = text[0]
        if first == 0x22:  # a string: a key when an object expects one
            if key_next and stack:
                try:
                    stack[-1][1] = msgspec.json.decode(text)
                except msgspec.DecodeError:
                    stack[-1][1] = text[1:-1].decode("utf-8", "replace")
            key_next = False
        elif first in b"[{":
            if len(stack) >= max_depth:
                return "".join(_segment(key) for _, key in stack)
            stack.append([first == 0x7B, "" if first == 0x7B else 0])
            key_next = first == 0x7B
        elif first in b"]}":
            if stack:
                stack.pop()
            key_next = False
        elif stack:  # a comma
            if stack[-1][0]:
                key_next = True
            else:
                stack[-1][1] += 1
    return ""


def dumps(value: Value, *, wire: bool = True) -> bytes:
    """Convex JSON bytes for ``value`` (see :func:`to_convex_json` for ``wire``)."""
    return _json_encoder.encode(to_convex_json(value, wire=wire))


def loads(data: bytes | str) -> Value:
    """Parse Convex JSON bytes; raises ``ValueError`` on malformed JSON."""
    try:
        parsed = parse_json(data)
    except NestingError:
        raise
    except InvalidValueError as exc:
        raise InvalidValueError(f"invalid JSON: {exc}") from None
    return from_convex_json(parsed)


# -- display (used in error messages, as Convex prints values) -------------------

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def display_value(value: object) -> str:
    """Print a value the way Convex's error messages do: ``{a: 1, b: "x"}``."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value.__class__ is Int64:
        return f"{int(value)}n"  # a bigint, as JavaScript prints it
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return f"b{json.dumps(value.decode('latin-1'))}"
    if isinstance(value, list):
        return "[" + ", ".join(display_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (
            f"{k if isinstance(k, str) and _IDENT.match(k) else json.dumps(str(k))}: "
            f"{display_value(v)}"
            for k, v in value.items()
        )
        return "{" + ", ".join(items) + "}"
    return _short_repr(value)
