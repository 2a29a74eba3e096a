"""One module per family of schemes; each provider is a :class:`Scheme`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core import WebhookEvent

# verify(body, headers, secrets, tolerance, now, url) -> event
Verifier = Callable[
    [bytes, dict[str, str], list[bytes], float | None, float | None, str | None], WebhookEvent
]


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
