"""Signing in to the dashboard: the session cookie, CSRF tokens, and slowing down guessers.

The cookie holds no secret of its own: ``expiry.nonce.mac``, where ``mac`` is
an HMAC of the first two under a key derived from the admin key. Every worker
process shares the admin key, so every worker accepts every session, and
changing the admin key signs everybody out. The CSRF token of a session is
another HMAC of its nonce: a page from another origin can neither read it nor
make it.

    signer = Signer("pyconvex-admin-...")
    cookie = signer.new_session(now=0.0)
    nonce = signer.session_nonce(cookie, now=60.0)     # None when forged or expired
    assert signer.csrf_ok(nonce, signer.csrf_token(nonce))
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable

COOKIE_NAME = "pyconvex_dashboard"
#: How long a sign-in lasts.
SESSION_SECONDS = 12 * 3600
#: Wrong keys from one address within ``GUESS_WINDOW`` seconds before it must wait.
MAX_GUESSES = 5
GUESS_WINDOW = 60.0
_MAX_ADDRESSES = 10_000


class Signer:
    """Makes and checks session cookies and CSRF tokens for one admin key."""

    def __init__(self, admin_key: str) -> None:
        self._key = hashlib.sha256(b"pyconvex dashboard\x00" + admin_key.encode()).digest()

    def _mac(self, purpose: str, message: str) -> str:
        data = f"{purpose}\x00{message}".encode()
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def new_session(self, *, now: float | None = None) -> str:
        expiry = int((time.time() if now is None else now) + SESSION_SECONDS)
        nonce = secrets.token_urlsafe(18)
        return f"{expiry}.{nonce}.{self._mac('session', f'{expiry}.{nonce}')}"

    def session_nonce(self, cookie: str | None, *, now: float | None = None) -> str | None:
        """The session's nonce if ``cookie`` is one of ours and has not expired."""
        if not cookie or cookie.count(".") != 2:
            return None
        expiry, nonce, mac = cookie.split(".")
        if not _same(mac, self._mac("session", f"{expiry}.{nonce}")):
            return None
        if not expiry.isdigit() or int(expiry) < (time.time() if now is None else now):
            return None
        return nonce

    def csrf_token(self, nonce: str) -> str:
        return self._mac("csrf", nonce)

    def csrf_ok(self, nonce: str, token: str | None) -> bool:
        return bool(token) and _same(self.csrf_token(nonce), token or "")


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two strings, whatever characters a client sent (compare_digest
    refuses non-ASCII str)."""
    return hmac.compare_digest(a.encode(), b.encode())


class Guesses:
    """Wrong admin keys per client address: after five in a minute, it waits.

    Counted per process (each worker slows down the addresses it sees), and
    only wrong keys count, so a user who signs in correctly is never held up.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._now = clock
        self._wrong: dict[str, deque[float]] = {}

    def wait(self, address: str) -> float:
        """Seconds ``address`` must wait before its next try (0 when it may try now)."""
        recent = self._recent(address)
        if len(recent) < MAX_GUESSES:
            return 0.0
        return max(0.0, recent[-MAX_GUESSES] + GUESS_WINDOW - self._now())

    def wrong(self, address: str) -> None:
        if address not in self._wrong and len(self._wrong) >= _MAX_ADDRESSES:
            self._forget_old()
        self._wrong.setdefault(address, deque(maxlen=MAX_GUESSES)).append(self._now())

    def _recent(self, address: str) -> deque[float]:
        recent = self._wrong.get(address)
        if recent is None:
            return deque()
        while recent and recent[0] < self._now() - GUESS_WINDOW:
            recent.popleft()
        if not recent:
            del self._wrong[address]
        return recent

    def _forget_old(self) -> None:
        for address in list(self._wrong):
            self._recent(address)
        if len(self._wrong) >= _MAX_ADDRESSES:  # a flood of addresses: drop the oldest half
            for address in list(self._wrong)[: _MAX_ADDRESSES // 2]:
                del self._wrong[address]
