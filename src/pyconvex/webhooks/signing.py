"""Signing deliveries the way each provider does, for tests: ``pyconvex.testing.sign_webhook``.

    signed = sign_webhook("stripe", "whsec_test", body=b'{"id": "evt_1", "type": "x"}')
    response = await t.fetch("/webhooks/stripe", method="POST", headers=signed.headers, body=signed.body)

The inverse of each scheme in ``providers/``; the tests check every provider
both ways (what this signs, ``verify`` accepts), and against the providers'
own libraries where they can sign.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets as random
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .core import as_body, mac, parse_payload
from .providers import Scheme
from .providers.url import _form_suffix
from .verify import scheme_of


@dataclass
class SignedRequest:
    """What to send: the body (Mailgun's carries the signature) and the headers; ``url`` for
    schemes that sign it (Twilio JSON bodies add ``bodySHA256`` to it)."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    url: str | None = None


def _hex(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    return mac(key, message, algorithm).hex()


def _b64(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    return base64.b64encode(mac(key, message, algorithm)).decode()


def sign_webhook(
    provider: str | Scheme,
    secret: str | bytes,
    body: bytes | str | dict[str, Any],
    *,
    timestamp: int | None = None,
    event_id: str | None = None,
    event_type: str | None = None,
    url: str | None = None,
) -> SignedRequest:
    """A delivery of ``body`` signed with ``secret`` as ``provider`` signs it.

    ``body`` may be a dict (sent as JSON). ``timestamp`` defaults to now. For
    Discord and Standard Webhooks' ``v1a``, ``secret`` is the private key
    (Discord: 32-byte seed in hex; ``whsk_`` + base64 seed).
    """
    scheme = scheme_of(provider)
    raw = json.dumps(body).encode() if isinstance(body, dict) else as_body(body)
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    ts = int(time.time()) if timestamp is None else int(timestamp)
    t = str(ts)
    delivery = event_id or "evt_" + random.token_hex(8)
    name = scheme.name
    out = SignedRequest(raw, {"content-type": "application/json"}, url)
    h = out.headers
    if name == "stripe":
        h["stripe-signature"] = f"t={t},v1={_hex(key, t.encode() + b'.' + raw)}"
    elif name == "paddle":
        h["paddle-signature"] = f"ts={t};h1={_hex(key, t.encode() + b':' + raw)}"
    elif name in ("svix", "clerk", "resend", "standard-webhooks"):
        prefix = "webhook-" if name == "standard-webhooks" else "svix-"
        signed = f"{delivery}.{t}.".encode() + raw
        text = key.decode()
        if text.startswith("whsk_"):
            private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text[5:]))
            signature = "v1a," + base64.b64encode(private.sign(signed)).decode()
        else:
            signature = "v1," + _b64(base64.b64decode(text.removeprefix("whsec_")), signed)
        h.update(
            {prefix + "id": delivery, prefix + "timestamp": t, prefix + "signature": signature}
        )
    elif name in ("slack", "zoom"):
        names = (
            ("x-slack-signature", "x-slack-request-timestamp")
            if name == "slack"
            else ("x-zm-signature", "x-zm-request-timestamp")
        )
        h[names[0]] = "v0=" + _hex(key, b"v0:" + t.encode() + b":" + raw)
        h[names[1]] = t
    elif name == "github":
        h["x-hub-signature-256"] = "sha256=" + _hex(key, raw)
        h["x-github-delivery"] = delivery
        h["x-github-event"] = event_type or "ping"
    elif name == "shopify":
        h["x-shopify-hmac-sha256"] = _b64(key, raw)
        h["x-shopify-webhook-id"] = delivery
        h["x-shopify-topic"] = event_type or "orders/create"
    elif name == "lemonsqueezy":
        h["x-signature"] = _hex(key, raw)
        h["x-event-name"] = event_type or "order_created"
    elif name == "intercom":
        h["x-hub-signature"] = "sha1=" + _hex(key, raw, "sha1")
    elif name == "linear":
        h["linear-signature"] = _hex(key, raw)
        h["linear-delivery"] = delivery
    elif name == "square":
        if not url:
            raise ValueError("Square signs the notification URL: pass url=")
        h["x-square-hmacsha256-signature"] = _b64(key, url.encode() + raw)
    elif name == "twilio":
        if not url:
            raise ValueError("Twilio signs the URL it calls: pass url=")
        if parse_payload(raw) is not None and raw.lstrip().startswith((b"{", b"[")):
            url += ("&" if "?" in url else "?") + "bodySHA256=" + hashlib.sha256(raw).hexdigest()
            suffix = b""
        else:
            h["content-type"] = "application/x-www-form-urlencoded"
            suffix = _form_suffix(raw)
        out.url = url
        h["x-twilio-signature"] = _b64(key, url.encode() + suffix, "sha1")
        h["i-twilio-idempotency-token"] = delivery
    elif name == "discord":
        private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key.decode()))
        h["x-signature-ed25519"] = private.sign(t.encode() + raw).hex()
        h["x-signature-timestamp"] = t
    elif name == "mailgun":
        token = delivery
        block = {"timestamp": t, "token": token, "signature": _hex(key, (t + token).encode())}
        out.body = json.dumps({"signature": block, "event-data": parse_payload(raw)}).encode()
    elif name == "hmac":
        options = dict(scheme.options)
        signed = raw
        if options["timestamp_header"]:
            h[options["timestamp_header"].lower()] = t
            signed = t.encode() + b"." + raw
        encode = _hex if options["encoding"] == "hex" else _b64
        h[options["header_name"].lower()] = options["prefix"] + encode(
            key, signed, options["algorithm"]
        )
    else:  # pragma: no cover - every provider is handled above
        raise ValueError(f"Cannot sign for {name}")
    return out
