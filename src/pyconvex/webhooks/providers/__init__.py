"""One module per family of schemes; each provider is a :class:`Scheme`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core import WebhookEvent


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery as every scheme sees it: the raw body, lower-case headers, the secrets as
    bytes, the replay window (None: none), the clock (None: now) and the signed URL."""

    body: bytes
    headers: dict[str, str]
    secrets: list[bytes]
    tolerance: float | None
    now: float | None
    url: str | None


Verifier = Callable[[Delivery], WebhookEvent]


@dataclass(frozen=True)
class Scheme:
    """A provider's verification: its name, its documented replay window, the function."""

    name: str
    tolerance: float | None
    verify: Verifier
    # Headers that carry signatures or secrets: redacted wherever deliveries are stored.
    secret_headers: tuple[str, ...] = ()
    # How a configurable scheme (hmac_scheme) was configured, for signing test requests.
    options: tuple[tuple[str, Any], ...] = ()

    def __repr__(self) -> str:
        return f"<webhook scheme {self.name}>"


def scheme(
    name: str, tolerance: float | None, *secret_headers: str
) -> Callable[[Verifier], Scheme]:
    def wrap(fn: Verifier) -> Scheme:
        return Scheme(name, tolerance, fn, tuple(h.lower() for h in secret_headers))

    return wrap
