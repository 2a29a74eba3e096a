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
from . import scheme


def _fields(value: str, separator: str, name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in value.split(separator):
        key, sep, item = part.strip().partition("=")
        if sep:  # a malformed entry is skipped, not fatal: the others may still match
            out.setdefault(key.strip(), []).append(item.strip())
    if not out:
        raise fail("malformed_header", f"The {name} header holds no key=value pairs")
    return out


@scheme("stripe", 300, "stripe-signature")
def stripe(
    body: bytes,
    headers: dict[str, str],
    secrets: list[bytes],
    tolerance: float | None,
    now: float | None,
    url: str | None,
) -> WebhookEvent:
    fields = _fields(header(headers, "stripe-signature"), ",", "Stripe-Signature")
    if "t" not in fields or "v1" not in fields:
        raise fail("malformed_header", "Stripe-Signature has no timestamp (t=) or no v1 signature")
    ts_text = fields["t"][0]
    timestamp = unix_seconds(ts_text, "Stripe-Signature timestamp")
    signed = ts_text.encode() + b"." + body
    verify_any(secrets, [from_hex(s) for s in fields["v1"]], lambda key: mac(key, signed))
    check_window(timestamp, tolerance, now)
    payload = parse_payload(body)
    return WebhookEvent(
        "stripe",
        text_or_none(pick(payload, "id")),
        float(timestamp),
        text_or_none(pick(payload, "type")),
        payload,
        body,
    )


@scheme("paddle", 5, "paddle-signature")
def paddle(
    body: bytes,
    headers: dict[str, str],
    secrets: list[bytes],
    tolerance: float | None,
    now: float | None,
    url: str | None,
) -> WebhookEvent:
    fields = _fields(header(headers, "paddle-signature"), ";", "Paddle-Signature")
    if "ts" not in fields or "h1" not in fields:
        raise fail("malformed_header", "Paddle-Signature has no timestamp (ts=) or no h1 signature")
    ts_text = fields["ts"][0]
    timestamp = unix_seconds(ts_text, "Paddle-Signature timestamp")
    signed = ts_text.encode() + b":" + body
    verify_any(secrets, [from_hex(s) for s in fields["h1"]], lambda key: mac(key, signed))
    check_window(timestamp, tolerance, now)
    payload = parse_payload(body)
    return WebhookEvent(
        "paddle",
        text_or_none(pick(payload, "event_id")) or text_or_none(pick(payload, "notification_id")),
        float(timestamp),
        text_or_none(pick(payload, "event_type")),
        payload,
        body,
    )
