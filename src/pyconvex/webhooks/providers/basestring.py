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
from . import scheme


def _verify(
    name: str,
    signature_header: str,
    timestamp_header: str,
    body: bytes,
    headers: dict[str, str],
    secrets: list[bytes],
    tolerance: float | None,
    now: float | None,
) -> tuple[int, Any]:
    signature = header(headers, signature_header)
    ts_text = header(headers, timestamp_header)
    timestamp = unix_seconds(ts_text, timestamp_header)
    if not signature.startswith("v0="):
        raise fail("malformed_header", f"{signature_header} must start with v0=")
    signed = b"v0:" + ts_text.encode() + b":" + body
    verify_any(secrets, [from_hex(signature[3:])], lambda key: mac(key, signed))
    check_window(timestamp, tolerance, now)
    return timestamp, parse_payload(body)


@scheme("slack", 300, "x-slack-signature")
def slack(
    body: bytes,
    headers: dict[str, str],
    secrets: list[bytes],
    tolerance: float | None,
    now: float | None,
    url: str | None,
) -> WebhookEvent:
    timestamp, payload = _verify(
        "slack",
        "x-slack-signature",
        "x-slack-request-timestamp",
        body,
        headers,
        secrets,
        tolerance,
        now,
    )
    # Events API deliveries carry event_id; interactions a trigger_id; slash commands neither.
    event_id = text_or_none(pick(payload, "event_id")) or text_or_none(pick(payload, "trigger_id"))
    kind = text_or_none(pick(payload, "event", "type")) or text_or_none(pick(payload, "type"))
    return WebhookEvent("slack", event_id, float(timestamp), kind, payload, body)


@scheme("zoom", 300, "x-zm-signature")
def zoom(
    body: bytes,
    headers: dict[str, str],
    secrets: list[bytes],
    tolerance: float | None,
    now: float | None,
    url: str | None,
) -> WebhookEvent:
    timestamp, payload = _verify(
        "zoom", "x-zm-signature", "x-zm-request-timestamp", body, headers, secrets, tolerance, now
    )
    event_id = headers.get("x-zm-trackingid") or text_or_none(pick(payload, "event_ts"))
    return WebhookEvent(
        "zoom", event_id, float(timestamp), text_or_none(pick(payload, "event")), payload, body
    )
