"""Stripe and Paddle: a timestamp and one or more hex HMACs in one header.

Stripe: ``Stripe-Signature: t=1700000000,v1=<hex>,v1=<hex>,v0=...`` over
``"{t}.{body}"``, keyed with the whole ``whsec_...`` string; only ``v1``
counts; 300 s window. Paddle: ``Paddle-Signature: ts=...;h1=<hex>`` over
``"{ts}:{body}"``, keyed with the secret as is; 5 s window.
"""

from __future__ import annotations

from ..core import (
    WebhookEvent,
    check_window,
    fail,
    from_hex,
    header,
    mac,
    parse_payload,
    pick,
    text_or_none,
    unix_seconds,
    verify_any,
)
from . import Delivery, scheme


def _fields(value: str, separator: str, name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in value.split(separator):
        key, sep, item = part.strip().partition("=")
        if sep:  # a malformed entry is skipped, not fatal: the others may still match
            out.setdefault(key.strip(), []).append(item.strip())
    if not out:
        raise fail("malformed_header", f"The {name} header holds no key=value pairs")
    return out


def _verify(
    d: Delivery, name: str, separator: str, ts_key: str, sig_key: str, joiner: bytes
) -> tuple[int, object]:
    """The shared scheme: ``{ts_key}=<ts>`` and ``{sig_key}=<hex>`` entries in one header, an
    HMAC-SHA256 over ``ts + joiner + body``. Returns the timestamp and the parsed payload."""
    fields = _fields(header(d.headers, name.lower()), separator, name)
    if ts_key not in fields or sig_key not in fields:
        raise fail(
            "malformed_header", f"{name} has no timestamp ({ts_key}=) or no {sig_key} signature"
        )
    ts_text = fields[ts_key][0]
    timestamp = unix_seconds(ts_text, f"{name} timestamp")
    signed = ts_text.encode() + joiner + d.body
    verify_any(d.secrets, [from_hex(s) for s in fields[sig_key]], lambda key: mac(key, signed))
    check_window(timestamp, d.tolerance, d.now)
    return timestamp, parse_payload(d.body)


@scheme("stripe", 300, "stripe-signature")
def stripe(d: Delivery) -> WebhookEvent:
    timestamp, payload = _verify(d, "Stripe-Signature", ",", "t", "v1", b".")
    event_id = text_or_none(pick(payload, "id"))
    kind = text_or_none(pick(payload, "type"))
    return WebhookEvent("stripe", event_id, float(timestamp), kind, payload, d.body)


@scheme("paddle", 5, "paddle-signature")
def paddle(d: Delivery) -> WebhookEvent:
    timestamp, payload = _verify(d, "Paddle-Signature", ";", "ts", "h1", b":")
    event_id = text_or_none(pick(payload, "event_id")) or text_or_none(
        pick(payload, "notification_id")
    )
    kind = text_or_none(pick(payload, "event_type"))
    return WebhookEvent("paddle", event_id, float(timestamp), kind, payload, d.body)
