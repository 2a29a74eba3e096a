"""Slack and Zoom: ``v0=<hex HMAC-SHA256>`` over ``"v0:{timestamp}:{body}"``.

Slack: ``X-Slack-Signature`` and ``X-Slack-Request-Timestamp``, 300 s window.
Zoom: ``x-zm-signature`` and ``x-zm-request-timestamp``, keyed with the
secret token; Zoom documents no window, so 300 s is used as for Slack.
"""

from __future__ import annotations

from typing import Any

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


def _verify(d: Delivery, signature_header: str, timestamp_header: str) -> tuple[int, Any]:
    signature = header(d.headers, signature_header)
    ts_text = header(d.headers, timestamp_header)
    timestamp = unix_seconds(ts_text, timestamp_header)
    if not signature.startswith("v0="):
        raise fail("malformed_header", f"{signature_header} must start with v0=")
    signed = b"v0:" + ts_text.encode() + b":" + d.body
    verify_any(d.secrets, [from_hex(signature[3:])], lambda key: mac(key, signed))
    check_window(timestamp, d.tolerance, d.now)
    return timestamp, parse_payload(d.body)


@scheme("slack", 300, "x-slack-signature")
def slack(d: Delivery) -> WebhookEvent:
    timestamp, payload = _verify(d, "x-slack-signature", "x-slack-request-timestamp")
    # Events API deliveries carry event_id; interactions a trigger_id; slash commands neither.
    event_id = text_or_none(pick(payload, "event_id")) or text_or_none(pick(payload, "trigger_id"))
    kind = text_or_none(pick(payload, "event", "type")) or text_or_none(pick(payload, "type"))
    return WebhookEvent("slack", event_id, float(timestamp), kind, payload, d.body)


@scheme("zoom", 300, "x-zm-signature")
def zoom(d: Delivery) -> WebhookEvent:
    timestamp, payload = _verify(d, "x-zm-signature", "x-zm-request-timestamp")
    event_id = d.headers.get("x-zm-trackingid") or text_or_none(pick(payload, "event_ts"))
    return WebhookEvent(
        "zoom", event_id, float(timestamp), text_or_none(pick(payload, "event")), payload, d.body
    )
