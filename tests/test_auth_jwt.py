"""JWT identities: a test issuer serves discovery and JWKS over real HTTP; tokens are made here."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Issuer
from pyconvex.auth import (
    AuthenticationError,
    Authenticator,
    ProviderConfigError,
    TokenAuth,
    UserIdentity,
    parse_providers,
)
from pyconvex.functions import Auth


def oidc(issuer: Issuer, **options: Any) -> Authenticator:
    providers = parse_providers([{"domain": issuer.url, "application_id": issuer.audience}])
    return Authenticator(providers, **options)


async def reason(authenticator: Authenticator, token: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        await authenticator.verify(token)
    return caught.value.reason


async def test_a_valid_token_gives_the_identity_with_standard_and_custom_claims(
    issuer: Issuer,
) -> None:
    token = issuer.token(sub="user_42", picture="https://img/ada.png", org="acme", roles=["admin"])
    identity = await oidc(issuer).verify(token)
    assert identity.token_identifier == f"{issuer.url}|user_42"
    assert (identity.subject, identity.issuer) == ("user_42", issuer.url)
    assert (identity.name, identity.email, identity.email_verified) == (
        "Ada Lovelace",
        "ada@example.com",
        True,
    )
    assert identity.picture_url == "https://img/ada.png"
    assert identity["org"] == "acme" and identity.get("roles") == ["admin"]
    assert identity.custom_claims == {"org": "acme", "roles": ["admin"]}
    assert issuer.hits == {"/.well-known/openid-configuration": 1, "/jwks": 1}


async def test_keys_are_cached_across_tokens(issuer: Issuer) -> None:
    authenticator = oidc(issuer)
    for n in range(5):
        await authenticator.verify(issuer.token(sub=f"user_{n}"))
    assert issuer.hits["/jwks"] == 1


async def test_es256_tokens_verify(issuer: Issuer) -> None:
    identity = await oidc(issuer).verify(issuer.token("e1"))
    assert identity.subject == "user_1"


async def test_a_trailing_slash_on_the_issuer_does_not_matter(issuer: Issuer) -> None:
    providers = parse_providers([{"domain": issuer.url + "/", "application_id": issuer.audience}])
    identity = await Authenticator(providers).verify(issuer.token(iss=issuer.url + "/"))
    assert identity.issuer == issuer.url + "/"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"nbf": int(time.time()) + 120}, "not_yet_valid"),
        ({"iat": int(time.time()) + 120}, "not_yet_valid"),
        ({"aud": "someone-else"}, "wrong_audience"),
        ({"aud": ["a", "b"]}, "wrong_audience"),
        ({"iss": "https://evil.example.com"}, "wrong_issuer"),
        ({"exp": None}, "malformed"),
        ({"sub": None}, "malformed"),
    ],
)
async def test_bad_claims_are_rejected(
    issuer: Issuer, overrides: dict[str, Any], expected: str
) -> None:
    assert await reason(oidc(issuer), issuer.token(**overrides)) == expected


async def test_a_small_clock_skew_is_forgiven(issuer: Issuer) -> None:
    now = int(time.time())
    token = issuer.token(exp=now - 5, nbf=now + 5)
    assert (await oidc(issuer).verify(token)).subject == "user_1"


async def test_an_audience_list_holding_the_application_id_passes(issuer: Issuer) -> None:
    token = issuer.token(aud=["other", issuer.audience])
    assert (await oidc(issuer).verify(token)).subject == "user_1"


async def test_unknown_kid_refetches_once_then_is_rejected_and_rate_limited(issuer: Issuer) -> None:
    now = [0.0]
    authenticator = oidc(issuer, clock=lambda: now[0])
    await authenticator.verify(issuer.token("k1"))
    assert issuer.hits["/jwks"] == 1
    # k2 is not published: one refetch to look for it, then rejected.
    assert await reason(authenticator, issuer.token("k2")) == "unknown_key"
    assert issuer.hits["/jwks"] == 2
    # More made-up kids right away do not reach the issuer again.
    for _ in range(10):
        assert await reason(authenticator, issuer.token("k2")) == "unknown_key"
    assert issuer.hits["/jwks"] == 2
    # The issuer rotates to k2; once the interval has passed the new key is fetched.
    issuer.published = ["k2"]
    now[0] += 31
    identity = await authenticator.verify(issuer.token("k2"))
    assert identity.subject == "user_1"
    assert issuer.hits["/jwks"] == 3


async def test_a_key_rotation_is_picked_up_on_the_first_token_with_the_new_kid(
    issuer: Issuer,
) -> None:
    authenticator = oidc(issuer)
    await authenticator.verify(issuer.token("k1"))
    issuer.published = ["k1", "k2"]
    assert (await authenticator.verify(issuer.token("k2"))).subject == "user_1"
    assert issuer.hits["/jwks"] == 2


async def test_alg_none_is_rejected(issuer: Issuer) -> None:
    token = jwt.encode(issuer.claims(), None, algorithm="none", headers={"kid": "k1"})
    assert await reason(oidc(issuer), token) == "bad_algorithm"
    assert "/jwks" not in issuer.hits  # rejected before any key is looked up


def _hs256_forged(issuer: Issuer, secret: bytes) -> str:
    """What PyJWT refuses to make: an HS256 token whose HMAC key is the issuer's public key."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    import hashlib
    import hmac

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64(json.dumps(issuer.claims()).encode())
    signature = b64(hmac.new(secret, header + b"." + payload, hashlib.sha256).digest())
    return (header + b"." + payload + b"." + signature).decode()


async def test_hs256_signed_with_the_public_key_is_rejected(issuer: Issuer) -> None:
    public_pem = (
        issuer.private["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for secret in (public_pem, json.dumps(issuer.jwk("k1")).encode()):
        assert await reason(oidc(issuer), _hs256_forged(issuer, secret)) == "bad_algorithm"


async def test_a_token_signed_by_another_key_with_a_known_kid_is_rejected(issuer: Issuer) -> None:
    claims = issuer.claims()
    forged = jwt.encode(claims, issuer.private["k2"], algorithm="RS256", headers={"kid": "k1"})
    assert await reason(oidc(issuer), forged) == "bad_signature"


async def test_an_alg_that_does_not_match_its_key_is_rejected(issuer: Issuer) -> None:
    forged = jwt.encode(
        issuer.claims(), issuer.private["e1"], algorithm="ES256", headers={"kid": "k1"}
    )
    assert await reason(oidc(issuer), forged) == "bad_algorithm"


async def test_no_providers_names_the_config_file(issuer: Issuer) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await Authenticator([]).verify(issuer.token())
    assert caught.value.reason == "no_provider"
    assert "no providers configured" in str(caught.value)
    assert "convex/auth_config.py" in str(caught.value)


async def test_an_unreachable_issuer_is_keys_unavailable(issuer: Issuer) -> None:
    token = issuer.token()
    url = issuer.url
    issuer.close()
    providers = parse_providers([{"domain": url, "application_id": issuer.audience}])
    assert await reason(Authenticator(providers), token) == "keys_unavailable"


async def test_custom_jwt_with_a_jwks_url_and_no_audience(issuer: Issuer) -> None:
    providers = parse_providers(
        [
            {
                "type": "custom_jwt",
                "issuer": issuer.url,
                "jwks": issuer.url + "/jwks",
                "algorithm": "ES256",
                "application_id": None,
            }
        ]
    )
    authenticator = Authenticator(providers)
    assert (await authenticator.verify(issuer.token("e1", aud="anything"))).subject == "user_1"
    assert "/.well-known/openid-configuration" not in issuer.hits
    # The provider allows ES256 only: an RS256 token of the same issuer is refused.
    assert await reason(authenticator, issuer.token("k1")) == "bad_algorithm"


@pytest.mark.parametrize("form", ["dict", "json", "data-uri"])
async def test_custom_jwt_with_inline_keys(issuer: Issuer, form: str) -> None:
    jwks: Any = issuer.jwks()
    if form == "json":
        jwks = json.dumps(jwks)
    elif form == "data-uri":
        jwks = (
            "data:text/plain;charset=utf-8;base64,"
            + base64.b64encode(json.dumps(jwks).encode()).decode()
        )
    providers = parse_providers(
        [
            {
                "type": "custom_jwt",
                "issuer": issuer.url,
                "jwks": jwks,
                "application_id": "pyconvex-test",
            }
        ]
    )
    identity = await Authenticator(providers).verify(issuer.token("k1"))
    assert identity.subject == "user_1"
    assert issuer.hits == {}  # nothing fetched


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"domain": "auth.example.com"}, "domain must be an http(s) URL"),
        ({"domain": "https://a", "applicationID": "x"}, "pyconvex spells it application_id"),
        ({"type": "custom_jwt", "jwks": "https://a/jwks"}, "needs an issuer"),
        ({"type": "custom_jwt", "issuer": "https://a", "jwks": {}}, "jwks must be a URL or a JWKS"),
        (
            {
                "type": "custom_jwt",
                "issuer": "https://a",
                "jwks": "https://a/j",
                "algorithm": "HS256",
            },
            "algorithm must be one of RS256, ES256",
        ),
        ({"type": "saml"}, "unknown type"),
        ("https://a", "must be a dict"),
    ],
)
def test_bad_provider_entries_are_named(entry: Any, message: str) -> None:
    with pytest.raises(ProviderConfigError) as caught:
        parse_providers([{"domain": "https://ok.example.com"}, entry])
    assert "providers[1]" in str(caught.value) and message in str(caught.value)


async def test_token_auth_verifies_once_and_raises_each_time(issuer: Issuer) -> None:
    authenticator = oidc(issuer)
    auth = authenticator.auth_for(f"Bearer {issuer.token(exp=int(time.time()) - 600)}".encode())
    assert isinstance(auth, TokenAuth)
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="expired"):
            await auth.get_user_identity()
    good = authenticator.auth_for("bearer " + issuer.token())
    first = await good.get_user_identity()
    assert first is not None and await good.get_user_identity() is first
    # Another scheme is not a token: anonymous, no error.
    assert type(authenticator.auth_for(b"Basic dXNlcjpwYXNz")) is Auth
    assert await authenticator.auth_for(b"Basic dXNlcjpwYXNz").get_user_identity() is None


def test_for_test_identities() -> None:
    ada = UserIdentity.for_test(name="Ada", email="ada@example.com", org="acme")
    assert ada.issuer == "https://convex.test"
    assert ada.token_identifier == f"https://convex.test|{ada.subject}"
    assert (ada.name, ada.email, ada["org"]) == ("Ada", "ada@example.com", "acme")
    fixed = UserIdentity.for_test(subject="u1", issuer="https://i", token_identifier="custom")
    assert (fixed.subject, fixed.token_identifier) == ("u1", "custom")


@settings(max_examples=300, deadline=None)
@given(
    token=st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda h, p, s: ".".join([h, p, s]),
            st.text(max_size=60),
            st.text(max_size=60),
            st.text(max_size=60),
        ),
        st.builds(
            lambda h, p: (
                base64.urlsafe_b64encode(h).decode().rstrip("=")
                + "."
                + base64.urlsafe_b64encode(p).decode().rstrip("=")
                + ".c2ln"
            ),
            st.binary(max_size=80),
            st.binary(max_size=80),
        ),
    )
)
async def test_garbage_only_ever_raises_authentication_error(token: str) -> None:
    # No providers with keys to fetch: everything here must fail before the network.
    providers = parse_providers(
        [
            {
                "type": "custom_jwt",
                "issuer": "https://i",
                "jwks": {"keys": []},
                "application_id": None,
            }
        ]
    )
    with pytest.raises(AuthenticationError):
        await Authenticator(providers).verify(token)
