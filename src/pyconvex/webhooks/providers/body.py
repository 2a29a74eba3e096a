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
from . import Scheme, scheme


def _signed(
    value: str, prefix: str, decode: Callable[[str], bytes | None], name: str
) -> bytes | None:
    if prefix:
        if not value.startswith(prefix):
            raise fail("malformed_header", f"{name} must start with {prefix}")
        value = value[len(prefix) :]
    return decode(value)


@scheme("github", None, "x-hub-signature-256", "x-hub-signature")
def github(
    body: bytes,
    headers: dict[str, str],
    secrets: list[bytes],
    tolerance: float | None,
    now: float | None,
    url: str | None,
) -> WebhookEvent:
    signature = _signed(
        header(headers, "x-hub-signature-256"), "sha256=", from_hex, "X-Hub-Signature-256"
    )
    verify_any(secrets, [signature], lambda key: mac(key, body))
    payload = parse_payload(body)
    return WebhookEvent(
        "github",
        headers.get("x-github-delivery"),
        None,
        headers.get("x-github-event"),
        payload,
        body,
    )


@scheme("shopify", None, "x-shopify-hmac-sha256")
def shopify(
    body: bytes,
    headers: dict[str, str],
    secrets: list[bytes],
    tolerance: float | None,
    now: float | None,
    url: str | None,
) -> WebhookEvent:
    signature = from_base64(header(headers, "x-shopify-hmac-sha256"))
    verify_any(secrets, [signature], lambda key: mac(key, body))
    event_id = headers.get("x-shopify-webhook-id") or headers.get("x-shopify-event-id")
    return WebhookEvent(
        "shopify", event_id, None, headers.get("x-shopify-topic"), parse_payload(body), body
    )


@scheme("lemonsqueezy", None, "x-signature")
def lemonsqueezy(
    body: bytes,
    headers: dict[str, str],
    secrets: list[bytes],
    tolerance: float | None,
    now: float | None,
    url: str | None,
) -> WebhookEvent:
    signature = from_hex(header(headers, "x-signature"))
    verify_any(secrets, [signature], lambda key: mac(key, body))
    payload = parse_payload(body)
    kind = headers.get("x-event-name") or text_or_none(pick(payload, "meta", "event_name"))
    event_id = text_or_none(pick(payload, "meta", "webhook_id"))
    return WebhookEvent("lemonsqueezy", event_id, None, kind, payload, body)


@scheme("intercom", None, "x-hub-signature")
def intercom(
    body: bytes,
    headers: dict[str, str],
    secrets: list[bytes],
    tolerance: float | None,
    now: float | None,
    url: str | None,
) -> WebhookEvent:
    signature = _signed(header(headers, "x-hub-signature"), "sha1=", from_hex, "X-Hub-Signature")
    verify_any(secrets, [signature], lambda key: mac(key, body, "sha1"))
    payload = parse_payload(body)
    return WebhookEvent(
        "intercom",
        text_or_none(pick(payload, "id")),
        None,
        text_or_none(pick(payload, "topic")),
        payload,
        body,
    )


@scheme("linear", 60, "linear-signature")
def linear(
    body: bytes,
    headers: dict[str, str],
    secrets: list[bytes],
    tolerance: float | None,
    now: float | None,
    url: str | None,
) -> WebhookEvent:
    signature = from_hex(header(headers, "linear-signature"))
    verify_any(secrets, [signature], lambda key: mac(key, body))
    payload = parse_payload(body)
    stamp = pick(payload, "webhookTimestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        raise fail("malformed_body", "The Linear payload has no whole-number webhookTimestamp")
    check_window(stamp / 1000, tolerance, now)
    kind = headers.get("linear-event") or text_or_none(pick(payload, "type"))
    return WebhookEvent("linear", headers.get("linear-delivery"), stamp / 1000, kind, payload, body)


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

    def verify(
        body: bytes,
        headers: dict[str, str],
        secrets: list[bytes],
        tolerance: float | None,
        now: float | None,
        url: str | None,
    ) -> WebhookEvent:
        signature = _signed(header(headers, name), prefix, decode, header_name)
        timestamp: int | None = None
        signed = body
        if timestamp_header is not None:
            ts_text = header(headers, timestamp_header.lower())
            timestamp = unix_seconds(ts_text, timestamp_header)
            signed = ts_text.encode() + b"." + body
        verify_any(secrets, [signature], lambda key: mac(key, signed, algorithm))
        if timestamp is not None:
            check_window(timestamp, tolerance, now)
        event_id = headers.get(id_header.lower()) if id_header else None
        kind = headers.get(type_header.lower()) if type_header else None
        return WebhookEvent("hmac", event_id, timestamp, kind, parse_payload(body), body)

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
