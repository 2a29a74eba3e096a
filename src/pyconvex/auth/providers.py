"""The token issuers an app trusts: ``convex/auth_config.py``'s ``providers``.

    providers = [
        # OpenID Connect: keys from https://auth.example.com/.well-known/openid-configuration
        {"domain": "https://auth.example.com", "application_id": "my-app"},
        # any issuer of JWTs, with its keys at a URL or inline
        {"type": "custom_jwt", "issuer": "https://api.example.com",
         "jwks": "https://api.example.com/jwks.json", "algorithm": "RS256",
         "application_id": None},
    ]

A token is checked against the provider whose issuer equals its ``iss``
(a trailing slash does not matter) and whose ``application_id`` is in its
``aud`` (``None``: the audience is not checked).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

ALGORITHMS = ("RS256", "ES256")
_OIDC_KEYS = frozenset({"domain", "application_id"})
_CUSTOM_KEYS = frozenset({"type", "issuer", "jwks", "algorithm", "application_id"})


class ProviderConfigError(ValueError):
    """A ``providers`` entry that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Provider:
    """One trusted issuer, normalised from its ``auth_config.py`` entry."""

    issuer: str  # without a trailing slash
    application_id: str | None
    algorithms: tuple[str, ...]
    discovery_url: str | None = None  # OIDC: where to learn the JWKS URL
    jwks_url: str | None = None  # custom_jwt with a URL
    inline_jwks: Mapping[str, Any] | None = None  # custom_jwt with the keys themselves

    @property
    def source(self) -> str:
        return self.discovery_url or self.jwks_url or "inline JWKS"


def normalize_issuer(issuer: str) -> str:
    return issuer.rstrip("/")


def parse_providers(entries: Any) -> list[Provider]:
    """Check and normalise ``providers``; a :class:`ProviderConfigError` names the bad entry."""
    if not isinstance(entries, list):
        raise ProviderConfigError("`providers` must be a list of dicts")
    return [_parse(index, entry) for index, entry in enumerate(entries)]


def _parse(index: int, entry: Any) -> Provider:
    where = f"providers[{index}]"
    if not isinstance(entry, Mapping):
        raise ProviderConfigError(f"{where} must be a dict, not {type(entry).__name__}")
    kind = entry.get("type", "oidc")
    allowed = _CUSTOM_KEYS if kind == "custom_jwt" else _OIDC_KEYS | {"type"}
    for key in entry:
        if key not in allowed:
            hint = " (pyconvex spells it application_id)" if key == "applicationID" else ""
            raise ProviderConfigError(f"{where} has an unknown key {key!r}{hint}")
    application_id = entry.get("application_id")
    if application_id is not None and not isinstance(application_id, str):
        raise ProviderConfigError(f"{where}: application_id must be a string or None")
    if kind == "oidc":
        domain = _url(where, "domain", entry.get("domain"))
        return Provider(
            issuer=normalize_issuer(domain),
            application_id=application_id,
            algorithms=ALGORITHMS,
            discovery_url=normalize_issuer(domain) + "/.well-known/openid-configuration",
        )
    if kind != "custom_jwt":
        raise ProviderConfigError(
            f'{where}: unknown type {kind!r} (use "custom_jwt" or leave it out)'
        )
    issuer = entry.get("issuer")
    if not isinstance(issuer, str) or not issuer:
        raise ProviderConfigError(f"{where}: a custom_jwt provider needs an issuer")
    algorithm = entry.get("algorithm", "RS256")
    if algorithm not in ALGORITHMS:
        raise ProviderConfigError(f"{where}: algorithm must be one of {', '.join(ALGORITHMS)}")
    jwks = entry.get("jwks")
    base = Provider(normalize_issuer(issuer), application_id, (algorithm,))
    if isinstance(jwks, str) and jwks.startswith(("https://", "http://")):
        return replace(base, jwks_url=_url(where, "jwks", jwks))
    return replace(base, inline_jwks=_inline(where, jwks))


def _url(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme not in ("https", "http"):
        raise ProviderConfigError(f"{where}: {key} must be an http(s) URL, not {value!r}")
    return value


def _inline(where: str, jwks: Any) -> Mapping[str, Any]:
    """A JWKS given as a dict, a JSON string, or a ``data:`` URI (as Convex accepts)."""
    data = jwks
    try:
        if isinstance(jwks, str) and jwks.startswith("data:"):
            meta, _, payload = jwks[5:].partition(",")
            raw = (
                base64.b64decode(payload) if meta.endswith(";base64") else unquote_to_bytes(payload)
            )
            data = json.loads(raw)
        elif isinstance(jwks, str):
            data = json.loads(jwks)
    except ValueError as exc:
        raise ProviderConfigError(f"{where}: jwks could not be read: {exc}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise ProviderConfigError(
            f'{where}: jwks must be a URL or a JWKS ({{"keys": [...]}}) as a dict, JSON or data: URI'
        )
    return data
