"""Discord (Ed25519 over timestamp + body) and Mailgun (the signature is in the body).

- Discord: ``X-Signature-Ed25519`` (hex) over ``X-Signature-Timestamp`` +
  body, verified with the application's public key (hex). Discord documents
  no replay window; none is applied unless ``tolerance`` is given.
- Mailgun: the body (JSON ``{"signature": {"timestamp", "token",
  "signature"}, "event-data": {...}}``, or the same fields in a form) holds
  hex HMAC-SHA256 (signing key) of timestamp + token. Mailgun documents no
  window either; 300 s is applied, and the event id is the token, so a replayed
  delivery is caught by deduplication.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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


@scheme("discord", None, "x-signature-ed25519")
def discord(d: Delivery) -> WebhookEvent:
    signature = from_hex(header(d.headers, "x-signature-ed25519"))
    ts_text = header(d.headers, "x-signature-timestamp")
    timestamp = unix_seconds(ts_text, "X-Signature-Timestamp")
    keys = []
    for secret in d.secrets:
        raw = from_hex(secret.decode("latin-1").strip())
        if raw is None or len(raw) != 32:
            raise fail("malformed_secret", "A Discord public key is 32 bytes in hex")
        keys.append(Ed25519PublicKey.from_public_bytes(raw))
    ok = False
    if signature is not None and len(signature) == 64:
        for key in keys:
            try:
                key.verify(signature, ts_text.encode() + d.body)
                ok = True
            except InvalidSignature:
                pass
    if not ok:
        raise fail("bad_signature", "No signature matched")
    check_window(timestamp, d.tolerance, d.now)
    payload = parse_payload(d.body)
    kind = pick(payload, "type")
    return WebhookEvent(
        "discord",
        text_or_none(pick(payload, "id")),
        float(timestamp),
        None if kind is None else text_or_none(kind),
        payload,
        d.body,
    )


@scheme("mailgun", 300)
def mailgun(d: Delivery) -> WebhookEvent:
    payload = parse_payload(d.body)
    block = pick(payload, "signature") if isinstance(pick(payload, "signature"), dict) else payload
    ts_text, token, signature = (pick(block, key) for key in ("timestamp", "token", "signature"))
    if not (isinstance(ts_text, str) and isinstance(token, str) and isinstance(signature, str)):
        raise fail("malformed_body", "The Mailgun body has no timestamp, token and signature")
    timestamp = unix_seconds(ts_text, "Mailgun timestamp")
    signed = (ts_text + token).encode("utf-8", "surrogatepass")
    verify_any(d.secrets, [from_hex(signature)], lambda key: mac(key, signed))
    check_window(timestamp, d.tolerance, d.now)
    kind = text_or_none(pick(payload, "event-data", "event")) or text_or_none(
        pick(payload, "event")
    )
    return WebhookEvent("mailgun", token, float(timestamp), kind, payload, d.body)
