"""Convex's sync protocol: its messages as they travel, one JSON object per text frame.

Reference: convex-js ``src/browser/sync/protocol.ts`` and the backend's
``crates/convex/sync_types``. Client to server: ``Connect``, ``ModifyQuerySet``,
``Mutation``, ``Action``, ``Authenticate``, ``Event``; server to client: ``Transition``
(and ``TransitionChunk`` for a large one), ``MutationResponse``, ``ActionResponse``,
``AuthError``, ``FatalError``, ``Ping``.

>>> encode_ts(1)
'AQAAAAAAAAA='
>>> Version(1, 0, 5).to_json()
{'querySet': 1, 'identity': 0, 'ts': 'BQAAAAAAAAA='}
"""

from __future__ import annotations

import base64
import binascii
import struct
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from ..errors import InvalidValueError
from ..values import MAX_JSON_DEPTH, NestingError, parse_json, plain_json

#: The largest message Convex's backend sends in one piece; bigger transitions are chunked.
MAX_MESSAGE = 5_000_000

# The deepest a message holds a function's arguments: ModifyQuerySet.modifications[i].args[0].
_MAX_DEPTH = MAX_JSON_DEPTH + 4
_encoder = msgspec.json.Encoder(enc_hook=plain_json)
_U64 = 2**64


class ProtocolError(Exception):
    """A message no well-behaved client sends. It is answered with a ``FatalError``, and the
    socket closes."""


def encode_ts(ts: int) -> str:
    """A u64 timestamp as the protocol spells it: 8 little-endian bytes in base64."""
    return base64.b64encode(struct.pack("<Q", ts)).decode()


def decode_ts(text: Any) -> int:
    if not isinstance(text, str):
        raise ProtocolError(f"A timestamp must be a base64 string, not {text!r}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"Invalid timestamp {text!r}") from None
    if len(raw) != 8:
        raise ProtocolError(f"Invalid timestamp {text!r}: not 8 bytes")
    ts: int = struct.unpack("<Q", raw)[0]
    return ts


@dataclass(frozen=True, slots=True)
class Version:
    """A session's state version: the client's query set, its identity, and the commit
    every result of the transition was read at."""

    query_set: int
    identity: int
    ts: int

    def to_json(self) -> dict[str, Any]:
        return {"querySet": self.query_set, "identity": self.identity, "ts": encode_ts(self.ts)}


INITIAL = Version(0, 0, 0)


def canonical_path(path: Any) -> str:
    """A function path as the JS client canonicalizes it: ``"mod"`` is ``"mod:default"``
    and a ``.js`` module suffix goes away."""
    if not isinstance(path, str) or not path:
        raise ProtocolError(f"udfPath must be a string, not {path!r}")
    module, _, name = path.partition(":")
    for suffix in (".js", ".ts", ".py"):
        module = module.removesuffix(suffix)
    return f"{module}:{name or 'default'}"


def _int(message: dict[str, Any], field: str, *, optional: bool = False) -> int:
    value = message.get(field)
    if value is None and optional:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _U64:
        raise ProtocolError(f"{message.get('type')}.{field} must be a whole number, not {value!r}")
    return value


def _args(message: dict[str, Any]) -> Any:
    args = message.get("args")
    if isinstance(args, list) and len(args) == 1:
        return args[0]
    if isinstance(args, dict):
        return args
    raise ProtocolError(f"{message.get('type')}.args must be [ {{...}} ], not {args!r}")


def parse(frame: str | bytes) -> dict[str, Any]:
    """A client message, checked: ``ProtocolError`` names what is wrong with it."""
    try:
        message = parse_json(frame, max_depth=_MAX_DEPTH)
    except NestingError as exc:
        raise ProtocolError(
            f"A message is JSON {exc} (arguments may nest {MAX_JSON_DEPTH})"
        ) from None
    except InvalidValueError as exc:
        raise ProtocolError(f"A message is not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError('A message must be a JSON object with a "type"')
    kind = message["type"]
    if kind == "Connect":
        if not isinstance(message.get("sessionId"), str):
            raise ProtocolError("Connect.sessionId must be a string")
        if message.get("maxObservedTimestamp") is not None:
            message["maxObservedTimestamp"] = decode_ts(message["maxObservedTimestamp"])
    elif kind == "ModifyQuerySet":
        _int(message, "baseVersion")
        _int(message, "newVersion")
        changes = message.get("modifications")
        if not isinstance(changes, list):
            raise ProtocolError("ModifyQuerySet.modifications must be a list")
        for change in changes:
            if not isinstance(change, dict) or change.get("type") not in ("Add", "Remove"):
                raise ProtocolError(f"Unknown query set modification {change!r}")
            _int(change, "queryId")
            if change["type"] == "Add":
                change["udfPath"] = canonical_path(change.get("udfPath"))
                change["args"] = _args(change)
                journal = change.get("journal")
                if journal is not None and not isinstance(journal, str):
                    raise ProtocolError("Add.journal must be a string or null")
    elif kind in ("Mutation", "Action"):
        _int(message, "requestId")
        message["udfPath"] = canonical_path(message.get("udfPath"))
        message["args"] = _args(message)
    elif kind == "Authenticate":
        _int(message, "baseVersion")
        if message.get("tokenType") not in ("Admin", "User", "None"):
            raise ProtocolError(f"Unknown Authenticate.tokenType {message.get('tokenType')!r}")
        if message["tokenType"] != "None" and not isinstance(message.get("value"), str):
            raise ProtocolError("Authenticate.value must be a string")
    elif kind != "Event":
        raise ProtocolError(f"Unknown message type {kind!r}")
    return message


def encode(message: dict[str, Any]) -> str:
    return _encoder.encode(message).decode()


# -- server messages -------------------------------------------------------------------


def transition(
    start: Version, end: Version, modifications: list[dict[str, Any]], skew: int | None
) -> dict[str, Any]:
    message = {
        "type": "Transition",
        "startVersion": start.to_json(),
        "endVersion": end.to_json(),
        "modifications": modifications,
        "serverTs": time.time_ns(),  # nanoseconds, as the JS client reads it
    }
    if skew is not None:  # left out, not null, when the client sent no clock
        message["clientClockSkew"] = skew
    return message


def chunks(text: str, transition_id: str, size: int = MAX_MESSAGE) -> list[dict[str, Any]]:
    """A serialized transition in ``TransitionChunk`` messages of at most ``size``
    characters (cut between code points, as JSON text may be)."""
    parts = [text[i : i + size] for i in range(0, len(text), size)]
    return [
        {
            "type": "TransitionChunk",
            "chunk": part,
            "partNumber": number,
            "totalParts": len(parts),
            "transitionId": transition_id,
        }
        for number, part in enumerate(parts)
    ]


def outcome(
    kind: str,
    request_id: int,
    *,
    value: Any = None,
    error: str | None = None,
    error_data: Any = None,
    log_lines: list[str],
    ts: int | None = None,
) -> dict[str, Any]:
    """A ``MutationResponse`` or ``ActionResponse``. ``errorData`` is left out unless the
    failure was a ``ConvexError``: the JS client reads its mere presence as one."""
    message: dict[str, Any] = {
        "type": kind,
        "requestId": request_id,
        "success": error is None,
        "result": value if error is None else error,
        "logLines": log_lines,
    }
    if kind == "MutationResponse":
        message["ts"] = encode_ts(ts) if error is None and ts is not None else None
    if error is not None and error_data is not None:
        message["errorData"] = error_data
    return message


PING = '{"type":"Ping"}'
