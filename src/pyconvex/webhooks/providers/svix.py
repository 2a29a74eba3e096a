"""Svix (and its senders Clerk and Resend) and Standard Webhooks.

Headers ``svix-id``/``svix-timestamp``/``svix-signature`` or
``webhook-id``/``webhook-timestamp``/``webhook-signature``; the signed content
is ``"{id}.{timestamp}.{body}"`` with the timestamp exactly as sent. The
signature header is a space-separated list of ``v1,<base64 HMAC-SHA256>``
(keyed with the base64-decoded secret after ``whsec_``) and, in Standard
Webhooks, ``v1a,<base64 Ed25519>`` (verified with the public key after
``whpk_``). Entries of other versions, and malformed ones, are skipped.
300 s window, both directions.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..core import (
    WebhookEvent,
    check_window,
    fail,
    from_base64,
    header,
    mac,
    matches,
    parse_payload,
    pick,
    text_or_none,
    unix_seconds,
)
from . import Delivery, Scheme, scheme


def _headers(headers: dict[str, str]) -> tuple[str, str, str]:
    prefix = "svix-" if "svix-signature" in headers or "svix-id" in headers else "webhook-"
    return (
        header(headers, prefix + "id"),
        header(headers, prefix + "timestamp"),
        header(headers, prefix + "signature"),
    )


def _keys(secrets: list[bytes]) -> tuple[list[bytes], list[Ed25519PublicKey]]:
    hmac_keys: list[bytes] = []
    public_keys: list[Ed25519PublicKey] = []
    for secret in secrets:
        text = secret.decode("latin-1").strip()
        if text.startswith("whpk_"):
            raw = from_base64(text[5:])
            if raw is None or len(raw) != 32:
                raise fail("malformed_secret", "A whpk_ public key must be 32 bytes in base64")
            public_keys.append(Ed25519PublicKey.from_public_bytes(raw))
            continue
        raw = from_base64(text.removeprefix("whsec_"))
        if not raw:
            raise fail("malformed_secret", "A whsec_ secret must be base64 after the prefix")
        hmac_keys.append(raw)
    return hmac_keys, public_keys


def _verify(name: str, d: Delivery) -> WebhookEvent:
    body, headers, secrets, tolerance, now = d.body, d.headers, d.secrets, d.tolerance, d.now
    message_id, ts_text, signature_list = _headers(headers)
    timestamp = unix_seconds(ts_text, "webhook timestamp")
    hmac_keys, public_keys = _keys(secrets)
    signed = f"{message_id}.{ts_text}.".encode() + body
    v1: list[bytes | None] = []
    v1a: list[bytes] = []
    for entry in signature_list.split(" "):
        version, sep, value = entry.partition(",")
        if not sep:
            continue
        decoded = from_base64(value)
        if decoded is None:
            continue
        if version == "v1":
            v1.append(decoded)
        elif version == "v1a" and len(decoded) == 64:
            v1a.append(decoded)
    ok = any(matches(mac(key, signed), v1) for key in hmac_keys)
    if not ok:
        for public_key in public_keys:
            for signature in v1a:
                try:
                    public_key.verify(signature, signed)
                    ok = True
                except InvalidSignature:
                    pass
    if not ok:
        raise fail("bad_signature", "No signature matched")
    check_window(timestamp, tolerance, now)
    payload = parse_payload(body)
    return WebhookEvent(
        name, message_id, float(timestamp), text_or_none(pick(payload, "type")), payload, body
    )


def _named(name: str) -> Scheme:
    @scheme(name, 300, "svix-signature", "webhook-signature")
    def verify(d: Delivery) -> WebhookEvent:
        return _verify(name, d)

    return verify


svix = _named("svix")
clerk = _named("clerk")
resend = _named("resend")
standard_webhooks = _named("standard-webhooks")
