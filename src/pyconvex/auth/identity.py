"""``UserIdentity``: who is calling, as a verified token's claims describe them.

The fields are Convex's ``UserIdentity``, in Python spelling, filled from the
standard OpenID Connect claims; every claim (custom ones included) stays
readable by its own name:

    >>> who = UserIdentity.from_claims(
    ...     {"iss": "https://auth.example.com", "sub": "user_1", "email": "ada@example.com", "org": "acme"}
    ... )
    >>> who.token_identifier, who.email, who["org"]
    ('https://auth.example.com|user_1', 'ada@example.com', 'acme')
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# UserIdentity field <- OIDC claim (https://openid.net/specs/openid-connect-core-1_0.html#StandardClaims)
_STANDARD = {
    "name": "name",
    "given_name": "given_name",
    "family_name": "family_name",
    "nickname": "nickname",
    "preferred_username": "preferred_username",
    "profile_url": "profile",
    "picture_url": "picture",
    "email": "email",
    "email_verified": "email_verified",
    "gender": "gender",
    "birthday": "birthdate",
    "timezone": "zoneinfo",
    "language": "locale",
    "phone_number": "phone_number",
    "phone_number_verified": "phone_number_verified",
    "address": "address",
    "updated_at": "updated_at",
}
# Claims about the token rather than the user: not "custom claims".
_REGISTERED = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "azp", "auth_time"})
_NOT_CUSTOM = _REGISTERED | frozenset(_STANDARD.values())

TEST_ISSUER = "https://convex.test"


@dataclass(frozen=True)
class UserIdentity:
    """The verified caller of a function or HTTP action.

    ``token_identifier`` (``"issuer|subject"``) is unique across providers:
    store it, not ``subject``, to recognise a user again. ``identity["claim"]``
    and ``identity.get("claim")`` read any claim of the token, custom ones too.
    """

    token_identifier: str
    subject: str
    issuer: str
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    nickname: str | None = None
    preferred_username: str | None = None
    profile_url: str | None = None
    picture_url: str | None = None
    email: str | None = None
    email_verified: bool | None = None
    gender: str | None = None
    birthday: str | None = None
    timezone: str | None = None
    language: str | None = None
    phone_number: str | None = None
    phone_number_verified: bool | None = None
    address: Any = None
    updated_at: Any = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> UserIdentity:
        """Build the identity a verified token's claims describe (``iss`` and ``sub`` required)."""
        issuer, subject = str(claims["iss"]), str(claims["sub"])
        fields = {name: claims.get(claim) for name, claim in _STANDARD.items()}
        return cls(
            token_identifier=f"{issuer}|{subject}",
            subject=subject,
            issuer=issuer,
            claims=MappingProxyType(dict(claims)),
            **fields,
        )

    @classmethod
    def for_test(cls, **fields: Any) -> UserIdentity:
        """An identity for tests: every keyword is a field or a custom claim.

            UserIdentity.for_test(name="Ada", org="acme")

        ``subject`` defaults to a fresh UUID, ``issuer`` to ``https://convex.test``.
        """
        claims: dict[str, Any] = {
            "iss": fields.pop("issuer", TEST_ISSUER),
            "sub": fields.pop("subject", str(uuid.uuid4())),
        }
        token_identifier = fields.pop("token_identifier", None)
        for name, value in fields.items():
            claims[_STANDARD.get(name, name)] = value
        identity = cls.from_claims(claims)
        if token_identifier is not None:
            object.__setattr__(identity, "token_identifier", str(token_identifier))
        return identity

    @property
    def custom_claims(self) -> dict[str, Any]:
        """The claims that are neither registered JWT claims nor standard OIDC ones."""
        return {key: value for key, value in self.claims.items() if key not in _NOT_CUSTOM}

    def __getitem__(self, claim: str) -> Any:
        return self.claims[claim]

    def get(self, claim: str, default: Any = None) -> Any:
        return self.claims.get(claim, default)
