"""``verify``: check a webhook delivery against its provider's scheme, over the raw bytes.

    from pyconvex.webhooks import verify, WebhookVerificationError

    try:
        event = verify("stripe", body=await request.body(), headers=request.headers,
                       secret=env["STRIPE_WEBHOOK_SECRET"])
    except WebhookVerificationError as exc:
        return Response.json({"error": exc.reason}, status=400)
    event.id, event.type, event.payload

``secret`` may be a list (during a rotation, the old and the new secret);
``tolerance`` overrides the provider's replay window (None: the provider's
own; checked in the past and the future); ``now`` the clock; ``url`` is the
public URL the provider signed (Twilio, Square).

For any bytes in any header or body, the only exception is
:class:`WebhookVerificationError`, with a stable ``reason``.
"""

from __future__ import annotations

from typing import Any

from .core import WebhookEvent, WebhookVerificationError, as_body, as_headers, as_secrets, fail
from .providers import Delivery, Scheme
from .providers.basestring import slack, zoom
from .providers.body import github, intercom, lemonsqueezy, linear, shopify
from .providers.others import discord, mailgun
from .providers.stripe import paddle, stripe
from .providers.svix import clerk, resend, standard_webhooks, svix
from .providers.url import square, twilio

PROVIDERS: dict[str, Scheme] = {
    scheme.name: scheme
    for scheme in (
        stripe, github, svix, clerk, resend, standard_webhooks, slack, shopify, twilio,
        linear, paddle, square, discord, zoom, lemonsqueezy, intercom, mailgun,
    )
}  # fmt: skip

_DEFAULT = object()


def scheme_of(provider: str | Scheme) -> Scheme:
    if isinstance(provider, Scheme):
        return provider
    found = PROVIDERS.get(provider) if isinstance(provider, str) else None
    if found is None:
        raise ValueError(
            f"Unknown webhook provider {provider!r}: one of {', '.join(sorted(PROVIDERS))}, "
            "or a scheme from hmac_scheme(...)"
        )
    return found


def verify(
    provider: str | Scheme,
    *,
    body: bytes | str,
    headers: Any,
    secret: Any,
    tolerance: Any = _DEFAULT,
    now: float | None = None,
    url: str | None = None,
) -> WebhookEvent:
    """Verify one delivery; return the event, or raise :class:`WebhookVerificationError`."""
    scheme = scheme_of(provider)
    raw = as_body(body)
    window = scheme.tolerance if tolerance is _DEFAULT or tolerance is None else float(tolerance)
    parsed_headers = as_headers(headers)
    secrets = as_secrets(secret)
    try:
        return scheme.verify(Delivery(raw, parsed_headers, secrets, window, now, url))
    except WebhookVerificationError:
        raise
    except Exception as exc:  # a bug in a scheme must still read as a refusal, not a 500
        raise fail(
            "malformed_header", f"The delivery could not be read: {type(exc).__name__}"
        ) from None
