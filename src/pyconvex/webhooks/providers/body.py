"""Schemes that sign the raw body alone with an HMAC in one header.

- GitHub: ``X-Hub-Signature-256: sha256=<hex>``; id ``X-GitHub-Delivery``, type ``X-GitHub-Event``.
- Shopify: ``X-Shopify-Hmac-Sha256: <base64>``; id ``X-Shopify-Webhook-Id``, type ``X-Shopify-Topic``.
- Lemon Squeezy: ``X-Signature: <hex>``; type ``X-Event-Name``.
- Intercom: ``X-Hub-Signature: sha1=<hex>`` (HMAC-SHA1 with the client secret).
- Linear: ``Linear-Signature: <hex>``; the body's ``webhookTimestamp`` (ms) within 60 s.
- ``hmac``: any of these shapes, configured with :func:`hmac_scheme`.
None of them signs a timestamp (Linear's is in the signed body).
"""

from __future__ import annotations

from collections.abc import Callable

from ..core import (
    WebhookEvent,
    check_window,
    fail,
    from_base64,
    from_hex,
    header,
    mac,
    parse_payload,
    pick,
    text_or_none,
    unix_seconds,
    verify_any,
)
from . import Delivery, Scheme, scheme


def _signed(
    value: str, prefix: str, decode: Callable[[str], bytes | None], name: str
) -> bytes | None:
    if prefix:
        if not value.startswith(prefix):
            raise fail("malformed_header", f"{name} must start with {prefix}")
        value = value[len(prefix) :]
    return decode(value)


@scheme("github", None, "x-hub-signature-256", "x-hub-signature")
def github(d: Delivery) -> WebhookEvent:
    signature = _signed(
        header(d.headers, "x-hub-signature-256"), "sha256=", from_hex, "X-Hub-Signature-256"
    )
    verify_any(d.secrets, [signature], lambda key: mac(key, d.body))
    payload = parse_payload(d.body)
    return WebhookEvent(
        "github",
        d.headers.get("x-github-delivery"),
        None,
        d.headers.get("x-github-event"),
        payload,
        d.body,
    )


@scheme("shopify", None, "x-shopify-hmac-sha256")
def shopify(d: Delivery) -> WebhookEvent:
    signature = from_base64(header(d.headers, "x-shopify-hmac-sha256"))
    verify_any(d.secrets, [signature], lambda key: mac(key, d.body))
    event_id = d.headers.get("x-shopify-webhook-id") or d.headers.get("x-shopify-event-id")
    return WebhookEvent(
        "shopify", event_id, None, d.headers.get("x-shopify-topic"), parse_payload(d.body), d.body
    )


@scheme("lemonsqueezy", None, "x-signature")
def lemonsqueezy(d: Delivery) -> WebhookEvent:
    signature = from_hex(header(d.headers, "x-signature"))
    verify_any(d.secrets, [signature], lambda key: mac(key, d.body))
    payload = parse_payload(d.body)
    kind = d.headers.get("x-event-name") or text_or_none(pick(payload, "meta", "event_name"))
    event_id = text_or_none(pick(payload, "meta", "webhook_id"))
    return WebhookEvent("lemonsqueezy", event_id, None, kind, payload, d.body)


@scheme("intercom", None, "x-hub-signature")
def intercom(d: Delivery) -> WebhookEvent:
    signature = _signed(header(d.headers, "x-hub-signature"), "sha1=", from_hex, "X-Hub-Signature")
    verify_any(d.secrets, [signature], lambda key: mac(key, d.body, "sha1"))
    payload = parse_payload(d.body)
    return WebhookEvent(
        "intercom",
        text_or_none(pick(payload, "id")),
        None,
        text_or_none(pick(payload, "topic")),
        payload,
        d.body,
    )


@scheme("linear", 60, "linear-signature")
def linear(d: Delivery) -> WebhookEvent:
    signature = from_hex(header(d.headers, "linear-signature"))
    verify_any(d.secrets, [signature], lambda key: mac(key, d.body))
    payload = parse_payload(d.body)
    stamp = pick(payload, "webhookTimestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        raise fail("malformed_body", "The Linear payload has no whole-number webhookTimestamp")
    check_window(stamp / 1000, d.tolerance, d.now)
    kind = d.headers.get("linear-event") or text_or_none(pick(payload, "type"))
    return WebhookEvent(
        "linear", d.headers.get("linear-delivery"), stamp / 1000, kind, payload, d.body
    )


_ENCODINGS: dict[str, Callable[[str], bytes | None]] = {"hex": from_hex, "base64": from_base64}


def hmac_scheme(
    *,
    header_name: str,
    algorithm: str = "sha256",
    encoding: str = "hex",
    prefix: str = "",
    timestamp_header: str | None = None,
    tolerance: float | None = 300,
    id_header: str | None = None,
    type_header: str | None = None,
) -> Scheme:
    """A scheme for providers pyconvex does not know by name.

    The signature in ``header_name`` (after ``prefix``) is the ``encoding``
    (``hex`` or ``base64``) of HMAC-``algorithm`` over the body, or, with
    ``timestamp_header``, over ``"{timestamp}.{body}"``, the timestamp then
    checked against ``tolerance``.

        acme = hmac_scheme(header_name="X-Acme-Signature", prefix="sha256=")
        event = verify(acme, body=raw, headers=request.headers, secret=env["ACME_SECRET"])
    """
    if algorithm not in ("sha1", "sha256", "sha512"):
        raise ValueError(f"algorithm must be sha1, sha256 or sha512, not {algorithm!r}")
    if encoding not in _ENCODINGS:
        raise ValueError(f"encoding must be hex or base64, not {encoding!r}")
    decode = _ENCODINGS[encoding]
    name = header_name.lower()

    def verify(d: Delivery) -> WebhookEvent:
        signature = _signed(header(d.headers, name), prefix, decode, header_name)
        timestamp: int | None = None
        signed = d.body
        if timestamp_header is not None:
            ts_text = header(d.headers, timestamp_header.lower())
            timestamp = unix_seconds(ts_text, timestamp_header)
            signed = ts_text.encode() + b"." + d.body
        verify_any(d.secrets, [signature], lambda key: mac(key, signed, algorithm))
        if timestamp is not None:
            check_window(timestamp, d.tolerance, d.now)
        event_id = d.headers.get(id_header.lower()) if id_header else None
        kind = d.headers.get(type_header.lower()) if type_header else None
        return WebhookEvent("hmac", event_id, timestamp, kind, parse_payload(d.body), d.body)

    options = {
        "header_name": header_name,
        "algorithm": algorithm,
        "encoding": encoding,
        "prefix": prefix,
        "timestamp_header": timestamp_header,
    }
    return Scheme(
        "hmac", tolerance if timestamp_header else None, verify, (name,), tuple(options.items())
    )
