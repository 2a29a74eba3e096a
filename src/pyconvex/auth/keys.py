"""A provider's signing keys: fetched with httpx, cached, refetched when they change.

For an OIDC provider the JWKS URL comes from its discovery document; a
``custom_jwt`` provider names it (or gives the keys inline). Keys are kept
for an hour. A token naming a key we do not have makes us fetch again at
once (the issuer may have rotated its keys), but at most once per
``refetch_interval``: otherwise anyone could make us hammer the issuer by
sending tokens with made-up ``kid``s. A failed fetch is not retried sooner
either.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt

from ..errors import AuthenticationError
from .providers import Provider, normalize_issuer

MAX_DOCUMENT = 512 * 1024  # a discovery document or JWKS is a few KB
FETCH_TIMEOUT = 10.0
KEYS_MAX_AGE = 3600.0
REFETCH_INTERVAL = 30.0


class KeySet:
    """The verification keys of one :class:`Provider`."""

    def __init__(
        self,
        provider: Provider,
        *,
        clock: Callable[[], float] = time.monotonic,
        refetch_interval: float = REFETCH_INTERVAL,
    ) -> None:
        self.provider = provider
        self._clock = clock
        self._refetch_interval = refetch_interval
        self._keys: list[jwt.PyJWK] | None = None
        self._fetched_at = 0.0
        self._failed_at: float | None = None  # the last fetch failed: wait before the next
        self._refetched_at: float | None = None  # the last refetch for an unknown kid
        self._generation = 0  # fetch attempts so far: concurrent waiters fetch once
        self._lock = asyncio.Lock()
        if provider.inline_jwks is not None:
            self._keys = _parse_jwks(provider.inline_jwks)

    async def find(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """The key a token's header names; raises :class:`AuthenticationError` if there is none."""
        inline = self.provider.inline_jwks is not None
        if not inline and (self._keys is None or self._clock() - self._fetched_at > KEYS_MAX_AGE):
            await self._refresh()
        key = self._pick(kid, algorithm)
        if key is None and not inline and self._may_refetch():
            # An unknown kid: the issuer may have rotated its keys.
            self._refetched_at = self._clock()
            await self._refresh()
            key = self._pick(kid, algorithm)
        if key is None:
            named = f"key {kid!r}"[:80] if kid is not None else "a key without a kid"
            raise AuthenticationError(
                "unknown_key", f"Could not verify token: {named} is not among the issuer's keys"
            )
        return key

    def _may_refetch(self) -> bool:
        last = self._refetched_at
        return last is None or self._clock() - last >= self._refetch_interval

    def _pick(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        keys = self._keys or []
        if kid is not None:
            named = [key for key in keys if key.key_id == kid]
        else:  # no kid: fine only when it cannot be ambiguous
            named = [key for key in keys if key.algorithm_name == algorithm]
            named = named if len(named) == 1 else []
        for key in named:
            if key.algorithm_name != algorithm:
                raise AuthenticationError(
                    "bad_algorithm",
                    f"Could not verify token: it says {algorithm}, its key is for {key.algorithm_name}",
                )
            return key
        return None

    async def _refresh(self) -> None:
        generation = self._generation
        async with self._lock:
            if self._generation != generation:
                return  # fetched by someone else while we waited for the lock
            failed = self._failed_at
            if failed is not None and self._clock() - failed < self._refetch_interval:
                if self._keys is None:
                    raise _unavailable(self.provider, "the last attempt failed; retrying later")
                return
            self._generation += 1
            try:
                keys = _parse_jwks(await self._download())
            except AuthenticationError:
                self._failed_at = self._clock()
                if self._keys is None:
                    raise
                return  # keep serving the keys we have
            self._keys, self._fetched_at, self._failed_at = keys, self._clock(), None

    async def _download(self) -> Mapping[str, Any]:
        provider = self.provider
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=True) as client:
            url = provider.jwks_url
            if provider.discovery_url is not None:
                discovery = await _get_json(client, provider.discovery_url, provider)
                issuer, url = discovery.get("issuer"), discovery.get("jwks_uri")
                if not isinstance(issuer, str) or normalize_issuer(issuer) != provider.issuer:
                    raise _unavailable(provider, f"the discovery document names issuer {issuer!r}")
                if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                    raise _unavailable(provider, "the discovery document has no jwks_uri")
            assert url is not None
            return await _get_json(client, url, provider)


async def _get_json(client: httpx.AsyncClient, url: str, provider: Provider) -> Mapping[str, Any]:
    try:
        async with client.stream("GET", url, headers={"accept": "application/json"}) as response:
            if response.status_code != 200:
                raise _unavailable(provider, f"{url} answered {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT:
                    raise _unavailable(provider, f"{url} sent more than {MAX_DOCUMENT} bytes")
        data = json.loads(bytes(body))
    except httpx.HTTPError as exc:
        raise _unavailable(provider, f"{url}: {type(exc).__name__}: {exc}") from None
    except ValueError:
        raise _unavailable(provider, f"{url} did not send JSON") from None
    if not isinstance(data, dict):
        raise _unavailable(provider, f"{url} did not send a JSON object")
    return data


def _parse_jwks(document: Mapping[str, Any]) -> list[jwt.PyJWK]:
    """The usable signing keys of a JWKS; others (``oct``, ``use: enc``, broken) are skipped."""
    keys = []
    for entry in document.get("keys") or []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in ("RSA", "EC"):  # never a shared secret ("oct")
            continue
        try:
            keys.append(jwt.PyJWK(entry))
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
    return keys


def _unavailable(provider: Provider, why: str) -> AuthenticationError:
    return AuthenticationError(
        "keys_unavailable", f"Could not fetch the signing keys of {provider.issuer}: {why}"
    )
