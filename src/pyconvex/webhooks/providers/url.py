"""Schemes that sign the URL the provider called: Twilio and Square.

Pass ``url=`` the public URL the provider was configured with (behind a
proxy, ``request.url`` may be ``http://`` and internal; that breaks both).

- Twilio: ``X-Twilio-Signature`` = base64 HMAC-SHA1 (auth token) of the URL
  followed by every form field, sorted by name, as name+value (repeated names:
  values sorted, duplicates once). A JSON body is not signed itself: the URL
  carries ``bodySHA256``, which must equal the body's sha256. Twilio signs
  URLs with or without the port inconsistently, so both are tried. A webhook
  signed with a SharedKey carries ``X-Twilio-Webhooks-Signature-Settings:
  key=<id>,algorithm=HMAC_SHA256``: then it is HMAC-SHA256 with that key's
  secret (as twilio-python 9.13's RequestValidator reads the header: no header,
  or no ``algorithm=``, means HMAC-SHA1; an algorithm it does not know fails).
- Square: ``x-square-hmacsha256-signature`` = base64 HMAC-SHA256 of URL + body.
"""

from __future__ import annotations

import hashlib
import hmac as stdlib_hmac
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

from ..core import (
    WebhookEvent,
    fail,
    from_base64,
    header,
    mac,
    matches,
    parse_payload,
    pick,
    text_or_none,
    verify_any,
)
from . import Delivery, scheme


def _need_url(url: str | None, provider: str) -> str:
    if not url or not isinstance(url, str):
        raise fail("missing_url", f"{provider} signs the URL it called: pass url= (the public URL)")
    return url


def _port_variants(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [url]
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    userinfo = userinfo + "@" if userinfo else ""
    default = {"https": 443, "http": 80}.get(parts.scheme)
    without = urlunsplit(parts._replace(netloc=f"{userinfo}{host}"))
    with_port = urlunsplit(parts._replace(netloc=f"{userinfo}{host}:{port or default}"))
    return list(dict.fromkeys([url, without, with_port]))


def _form_suffix(body: bytes) -> bytes:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return b""
    values: dict[str, set[str]] = {}
    for name, value in pairs:
        values.setdefault(name, set()).add(value)
    return "".join(
        name + value for name in sorted(values) for value in sorted(values[name])
    ).encode()


_TWILIO_ALGORITHMS = {"HMAC_SHA1": "sha1", "HMAC_SHA256": "sha256"}


def _twilio_algorithm(settings: str | None) -> str:
    """The hash ``X-Twilio-Webhooks-Signature-Settings`` names (``sha1`` without one)."""
    named = "HMAC_SHA1"
    for part in (settings or "").split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            named = value.strip()
            break
    algorithm = _TWILIO_ALGORITHMS.get(named.upper())
    if algorithm is None:
        raise fail("malformed_header", "Twilio's signature settings name an unknown algorithm")
    return algorithm


@scheme("twilio", None, "x-twilio-signature")
def twilio(d: Delivery) -> WebhookEvent:
    url = _need_url(d.url, "Twilio")
    signature = from_base64(header(d.headers, "x-twilio-signature"))
    algorithm = _twilio_algorithm(d.headers.get("x-twilio-webhooks-signature-settings"))
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        raise fail("missing_url", "url= is not a URL") from None
    body_digest = query.get("bodySHA256")
    suffix = b"" if body_digest else _form_suffix(d.body)
    candidates = [
        variant.encode("utf-8", "surrogatepass") + suffix for variant in _port_variants(url)
    ]
    if not any(
        matches(mac(key, c, algorithm), [signature]) for key in d.secrets for c in candidates
    ):
        raise fail("bad_signature", "No signature matched")
    if body_digest:
        actual = hashlib.sha256(d.body).hexdigest().encode()
        if not stdlib_hmac.compare_digest(
            actual, body_digest[0].lower().encode("utf-8", "replace")
        ):
            raise fail("body_mismatch", "The body does not match the signed bodySHA256")
    payload = parse_payload(d.body)
    event_id = d.headers.get("i-twilio-idempotency-token") or text_or_none(
        pick(payload, "MessageSid")
    )
    return WebhookEvent("twilio", event_id, None, None, payload, d.body)


@scheme("square", None, "x-square-hmacsha256-signature")
def square(d: Delivery) -> WebhookEvent:
    url = _need_url(d.url, "Square")
    signature = from_base64(header(d.headers, "x-square-hmacsha256-signature"))
    signed = url.encode("utf-8", "surrogatepass") + d.body
    verify_any(d.secrets, [signature], lambda key: mac(key, signed))
    payload = parse_payload(d.body)
    return WebhookEvent(
        "square",
        text_or_none(pick(payload, "event_id")),
        None,
        text_or_none(pick(payload, "type")),
        payload,
        d.body,
    )
