"""Bearer tokens to identities: JWT verification against the app's providers.

    authenticator = Authenticator(parse_providers(providers))
    identity = await authenticator.verify(token)      # UserIdentity, or AuthenticationError

What is checked, in order: the token parses; its ``iss`` names a provider and
its ``aud`` holds that provider's ``application_id``; its ``alg`` is one the
provider allows (RS256/ES256: never ``none``, never a shared-secret HMAC, so a
public key cannot be used as an HMAC secret); the key its ``kid`` names
verifies the signature; ``exp``, ``nbf`` and ``iat`` hold with a
``LEEWAY``-second allowance for clock skew; ``exp``, ``iss`` and ``sub`` are
present. PyJWT does the cryptography.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import jwt

from ..errors import AuthenticationError
from ..functions import Auth
from .identity import UserIdentity
from .keys import REFETCH_INTERVAL, KeySet
from .providers import Provider, normalize_issuer

LEEWAY = 30.0  # seconds of clock skew allowed on exp, nbf and iat
MAX_TOKEN = 16 * 1024
_CONFIG = "convex/auth_config.py"

# PyJWT's exceptions, most specific first, to our stable reasons.
_REASONS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "expired", "Token expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid", "Token is not yet valid"),
    (jwt.InvalidAudienceError, "wrong_audience", "Token has the wrong audience"),
    (jwt.InvalidSignatureError, "bad_signature", "Could not verify token signature"),
    (jwt.InvalidAlgorithmError, "bad_algorithm", "Token algorithm is not allowed"),
    (jwt.MissingRequiredClaimError, "malformed", "Token is missing a required claim"),
)


class Authenticator:
    """Verifies bearer tokens against a list of :class:`Provider`; keeps their keys cached."""

    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        leeway: float = LEEWAY,
        clock: Callable[[], float] = time.monotonic,
        refetch_interval: float = REFETCH_INTERVAL,
    ) -> None:
        self.providers = list(providers)
        self.leeway = leeway
        self.key_sets = [
            KeySet(provider, clock=clock, refetch_interval=refetch_interval)
            for provider in self.providers
        ]

    def auth_for(self, authorization: bytes | str | None) -> Auth:
        """``ctx.auth`` for a request's ``Authorization`` header (another scheme: anonymous)."""
        if authorization is None:
            return Auth()
        text = (
            authorization.decode("latin-1") if isinstance(authorization, bytes) else authorization
        )
        scheme, _, token = text.partition(" ")
        if scheme.lower() != "bearer":
            return Auth()
        return TokenAuth(self, token.strip())

    async def verify(self, token: str) -> UserIdentity:
        """The identity a token proves, or :class:`AuthenticationError` saying why not."""
        header, claims = _unverified(token)
        keys = self._key_set(claims)
        provider = keys.provider
        algorithm = header.get("alg")
        if algorithm not in provider.algorithms:
            raise AuthenticationError(
                "bad_algorithm",
                f"Could not verify token: algorithm {str(algorithm)[:20]!r} is not allowed "
                f"(allowed: {', '.join(provider.algorithms)})",
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationError("malformed", "Could not decode token: kid is not a string")
        key = await keys.find(kid, algorithm)
        try:
            verified = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=provider.application_id,
                leeway=self.leeway,
                options={
                    "verify_aud": provider.application_id is not None,
                    "verify_iss": False,  # matched above, trailing slash forgiven
                    "require": ["exp", "iss", "sub"],
                },
            )
        except jwt.PyJWTError as exc:
            for kind, reason, message in _REASONS:
                if isinstance(exc, kind):
                    raise AuthenticationError(reason, f"{message}: {exc}") from None
            raise AuthenticationError("malformed", f"Could not validate token: {exc}") from None
        if not isinstance(verified.get("sub"), str) or not verified["sub"]:
            raise AuthenticationError("malformed", "Could not validate token: sub is not a string")
        return UserIdentity.from_claims(verified)

    def _key_set(self, claims: dict[str, Any]) -> KeySet:
        """The keys of the provider whose issuer is the token's ``iss`` and whose app is in its ``aud``."""
        if not self.providers:
            raise AuthenticationError(
                "no_provider",
                "No auth provider found matching the given token (no providers configured). "
                f"Check {_CONFIG}.",
            )
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            raise AuthenticationError("malformed", "Could not decode token: iss is missing")
        matching = [k for k in self.key_sets if k.provider.issuer == normalize_issuer(issuer)]
        if not matching:
            raise AuthenticationError(
                "wrong_issuer",
                f"No auth provider found matching the given token (issuer {issuer[:200]!r}). "
                f"Check {_CONFIG}.",
            )
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        for keys in matching:
            wanted = keys.provider.application_id
            if wanted is None or wanted in audiences:
                return keys
        raise AuthenticationError(
            "wrong_audience",
            f"No auth provider found matching the given token (audience {str(audience)[:200]!r}). "
            f"Check {_CONFIG}.",
        )


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A token's header and claims, before any check: only to choose a provider and key."""
    if not token or len(token) > MAX_TOKEN:
        raise AuthenticationError("malformed", "Could not decode token: empty or too long")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except Exception as exc:  # hostile input: whatever PyJWT trips over is a malformed token
        raise AuthenticationError("malformed", f"Could not decode token: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthenticationError("malformed", "Could not decode token: not a JSON object")
    return header, claims


class TokenAuth(Auth):
    """``ctx.auth`` for a request that sent a bearer token: verified once, on first use."""

    def __init__(self, authenticator: Authenticator, token: str) -> None:
        super().__init__()
        self._authenticator = authenticator
        self._token = token
        self._error: AuthenticationError | None = None
        self._checked = False

    async def get_user_identity(self) -> UserIdentity | None:
        """The token's identity; raises :class:`AuthenticationError` if the token does not verify."""
        if not self._checked:
            try:
                self._identity = await self._authenticator.verify(self._token)
            except AuthenticationError as exc:
                self._error = exc
            self._checked = True
        if self._error is not None:
            raise AuthenticationError(self._error.reason, str(self._error))
        identity: UserIdentity | None = self._identity
        return identity
