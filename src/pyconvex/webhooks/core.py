"""What every webhook scheme shares: the event, the error, and careful parsing.

Everything here assumes hostile input. Header values may hold any text,
bodies any bytes; the helpers turn every oddity into a
:class:`WebhookVerificationError` with a stable ``reason`` and never let
another exception out. Signatures are compared as bytes in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from ..errors import PyConvexError

_json = msgspec.json.decode  # several times faster than json.loads on 2 KB bodies

REASONS = (
    "missing_header",  # a header the scheme needs is absent
    "malformed_header",  # present, but not in the scheme's format
    "bad_signature",  # no signature matched any secret
    "timestamp_too_old",  # outside the replay window, in the past
    "timestamp_in_future",  # outside the replay window, in the future
    "no_secret",  # no secret was given (an empty env var, say)
    "malformed_secret",  # the secret is not in the provider's format
    "missing_url",  # the scheme signs the URL and none was given
    "body_mismatch",  # the body does not match a signed digest of it (Twilio JSON)
    "malformed_body",  # the signature lives in the body, which could not be read (Mailgun)
)


class WebhookVerificationError(PyConvexError, ValueError):
    """A delivery that did not verify; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class WebhookEvent:
    """A verified delivery.

    ``id`` is the provider's delivery or event id (what deduplication keys
    on), ``timestamp`` epoch seconds when the scheme signs one, ``type`` the
    event type when the provider names one, ``payload`` the parsed body
    (JSON, or the form fields of an urlencoded body), ``body`` the raw bytes.
    """

    provider: str
    id: str | None
    timestamp: float | None
    type: str | None
    payload: Any
    body: bytes = field(repr=False)


Secrets = str | bytes | Sequence[str | bytes]


def fail(reason: str, message: str) -> WebhookVerificationError:
    return WebhookVerificationError(reason, message)


# -- inputs ---------------------------------------------------------------------------------


def as_body(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    raise TypeError(f"body must be the raw bytes of the request, not {type(body).__name__}")


def as_headers(headers: object) -> dict[str, str]:
    """Lower-case names to the first value, whatever mapping or pair list was given."""
    if headers is None:
        return {}
    items: Iterable[Any]
    if hasattr(headers, "raw") and isinstance(headers.raw, list):  # Starlette Headers
        items = headers.raw
    elif isinstance(headers, Mapping):
        items = headers.items()
    elif isinstance(headers, Iterable) and not isinstance(headers, (str, bytes)):
        items = headers
    else:
        raise TypeError(
            f"headers must be a mapping or a list of pairs, not {type(headers).__name__}"
        )
    out: dict[str, str] = {}
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            continue
        name_text = _text(name)
        value_text = _text(value)
        if name_text is None or value_text is None:
            continue
        out.setdefault(name_text.lower(), value_text)
    return out


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return None


def as_secrets(secret: object) -> list[bytes]:
    """Every secret given (rotation: old and new side by side), as bytes; empty ones dropped."""
    if secret is None:
        raise fail("no_secret", "No webhook secret was given (is the environment variable set?)")
    values = [secret] if isinstance(secret, (str, bytes, bytearray)) else list(secret)  # type: ignore[call-overload]
    out: list[bytes] = []
    for value in values:
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogatepass")
        if isinstance(value, (bytes, bytearray)) and value:
            out.append(bytes(value))
    if not out:
        raise fail("no_secret", "No webhook secret was given (is the environment variable set?)")
    return out


def header(headers: dict[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise fail("missing_header", f"The {name} header is missing")
    return value.strip()


_UNIX_SECONDS = re.compile(r"(0|[1-9][0-9]{0,11})", re.ASCII)


def unix_seconds(text: str, name: str) -> int:
    """Whole seconds in plain ASCII digits, exactly as signed: no sign, no fraction, no
    leading zeros, no Unicode digits (``int()`` accepts all of those)."""
    if not _UNIX_SECONDS.fullmatch(text):
        raise fail(
            "malformed_header", f"The {name} is not a whole number of seconds: {text[:40]!r}"
        )
    return int(text)


def check_window(timestamp: float, tolerance: float | None, now: float | None) -> None:
    """Both directions: a replayed old delivery and one dated in the future both fail."""
    if tolerance is None:
        return
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise fail("timestamp_too_old", f"The delivery is more than {tolerance:g} s old")
    if timestamp > current + tolerance:
        raise fail(
            "timestamp_in_future", f"The delivery is dated more than {tolerance:g} s in the future"
        )


# -- signatures ----------------------------------------------------------------------------


def mac(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def from_hex(text: str) -> bytes | None:
    try:
        return bytes.fromhex(text) if text.isascii() else None
    except ValueError:
        return None


_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}", re.ASCII)


def from_base64(text: str) -> bytes | None:
    """Standard base64, strictly (the alphabet, padding), else None: never an exception."""
    if not _B64.fullmatch(text):
        return None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def matches(expected: bytes, candidates: Iterable[bytes | None]) -> bool:
    """Whether any candidate equals ``expected``; every comparison is constant-time."""
    found = False
    for candidate in candidates:
        if candidate is not None and hmac.compare_digest(expected, candidate):
            found = True
    return found


def verify_any(
    secrets: list[bytes], signatures: list[bytes | None], sign: Callable[[bytes], bytes]
) -> None:
    for key in secrets:
        if matches(sign(key), signatures):
            return
    raise fail("bad_signature", "No signature matched")


# -- payloads --------------------------------------------------------------------------------


def parse_payload(body: bytes) -> Any:
    """The JSON body, or the fields of an urlencoded one (GitHub's form deliveries: the JSON in
    ``payload=``), else None. Never raises."""
    try:
        return _json(body)
    except (ValueError, RecursionError):  # msgspec.DecodeError is a ValueError
        pass
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    fields: dict[str, Any] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    inner = fields.get("payload")
    if isinstance(inner, str):
        try:
            return _json(inner)
        except (ValueError, RecursionError):
            pass
    return fields or None


def pick(payload: Any, *path: str) -> Any:
    """``payload[path[0]][path[1]]...`` or None, for payloads of any shape."""
    for key in path:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(key)
    return payload


def text_or_none(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        return str(value)
    return None
