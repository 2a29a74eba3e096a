"""Webhooks: verification for 15 providers over the raw bytes, and durable ingestion.

from pyconvex.webhooks import verify, WebhookVerificationError, hmac_scheme
"""

from .core import REASONS, WebhookEvent, WebhookVerificationError
from .providers.body import hmac_scheme
from .verify import PROVIDERS, verify

__all__ = [
    "PROVIDERS",
    "REASONS",
    "WebhookEvent",
    "WebhookVerificationError",
    "hmac_scheme",
    "verify",
]
