"""Webhook verification: every provider round trip, rotation, windows, official libraries, fuzzing."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyconvex.testing import sign_webhook
from pyconvex.webhooks import PROVIDERS, WebhookVerificationError, hmac_scheme, verify

NOW = 1_800_000_000
BODY = json.dumps(
    {"id": "evt_123", "type": "checkout.session.completed", "event_id": "e-1"}
).encode()
SVIX_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
DISCORD_PRIVATE = "11" * 32
SECRETS: dict[str, str] = {name: "s3cret-" + name for name in PROVIDERS}
SECRETS.update(
    {
        "svix": SVIX_SECRET,
        "clerk": SVIX_SECRET,
        "resend": SVIX_SECRET,
        "standard-webhooks": SVIX_SECRET,
    }
)
URL = "https://example.com/webhooks/x?a=1"


def verify_secret(name: str) -> str:
    if name == "discord":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(DISCORD_PRIVATE))
        return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    return SECRETS[name]


def signing_secret(name: str) -> str:
    return DISCORD_PRIVATE if name == "discord" else SECRETS[name]


def linear_body(stamp: float) -> bytes:
    return json.dumps({"type": "Issue", "webhookTimestamp": int(stamp * 1000)}).encode()


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_what_we_sign_we_verify(name: str) -> None:
    body = linear_body(NOW) if name == "linear" else BODY
    signed = sign_webhook(
        name, signing_secret(name), body, timestamp=NOW, event_id="delivery-1", url=URL
    )
    event = verify(
        name,
        body=signed.body,
        headers=signed.headers,
        secret=verify_secret(name),
        now=NOW,
        url=signed.url,
    )
    assert event.provider == name
    assert event.body == signed.body
    assert event.payload is not None
    if name in (
        "stripe",
        "svix",
        "clerk",
        "resend",
        "standard-webhooks",
        "slack",
        "zoom",
        "paddle",
        "discord",
        "mailgun",
    ):
        assert event.timestamp == NOW
    if name in (
        "svix",
        "clerk",
        "resend",
        "standard-webhooks",
        "github",
        "shopify",
        "linear",
        "twilio",
        "mailgun",
    ):
        assert event.id == "delivery-1"
    if name == "stripe":
        assert (event.id, event.type) == ("evt_123", "checkout.session.completed")
    # one flipped byte of the body fails
    tampered = signed.body[:-2] + bytes([signed.body[-2] ^ 1]) + signed.body[-1:]
    with pytest.raises(WebhookVerificationError):
        verify(
            name,
            body=tampered,
            headers=signed.headers,
            secret=verify_secret(name),
            now=NOW,
            url=signed.url,
        )


@pytest.mark.parametrize("name", ["stripe", "svix", "slack", "github", "shopify", "paddle"])
def test_rotation_a_retired_secret_beside_the_current_one(name: str) -> None:
    signed = sign_webhook(name, SECRETS[name], BODY, timestamp=NOW)
    retired = "whsec_" + base64.b64encode(b"x" * 32).decode() if name == "svix" else "old-secret"
    event = verify(
        name, body=signed.body, headers=signed.headers, secret=[retired, SECRETS[name]], now=NOW
    )
    assert event.body == BODY
    with pytest.raises(WebhookVerificationError) as caught:
        verify(name, body=signed.body, headers=signed.headers, secret=[retired], now=NOW)
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize(
    ("name", "window"),
    [("stripe", 300), ("svix", 300), ("slack", 300), ("paddle", 5), ("zoom", 300)],
)
def test_replay_window_in_both_directions(name: str, window: int) -> None:
    signed = sign_webhook(name, SECRETS[name], BODY, timestamp=NOW)
    kwargs: dict[str, Any] = {
        "body": signed.body,
        "headers": signed.headers,
        "secret": SECRETS[name],
    }
    assert verify(name, now=NOW + window, **kwargs).timestamp == NOW
    assert verify(name, now=NOW - window, **kwargs).timestamp == NOW
    with pytest.raises(WebhookVerificationError) as old:
        verify(name, now=NOW + window + 1, **kwargs)
    assert old.value.reason == "timestamp_too_old"
    with pytest.raises(WebhookVerificationError) as future:
        verify(name, now=NOW - window - 1, **kwargs)
    assert future.value.reason == "timestamp_in_future"
    assert verify(name, now=NOW + 3600, tolerance=7200, **kwargs).timestamp == NOW


def test_linear_window_is_in_the_body() -> None:
    signed = sign_webhook("linear", SECRETS["linear"], linear_body(NOW))
    assert verify(
        "linear", body=signed.body, headers=signed.headers, secret=SECRETS["linear"], now=NOW + 60
    )
    with pytest.raises(WebhookVerificationError) as caught:
        verify(
            "linear",
            body=signed.body,
            headers=signed.headers,
            secret=SECRETS["linear"],
            now=NOW + 61,
        )
    assert caught.value.reason == "timestamp_too_old"


def test_missing_secret_and_headers_have_their_reasons() -> None:
    with pytest.raises(WebhookVerificationError) as caught:
        verify("stripe", body=BODY, headers={}, secret="")
    assert caught.value.reason == "no_secret"
    with pytest.raises(WebhookVerificationError) as caught:
        verify("stripe", body=BODY, headers={}, secret="x")
    assert caught.value.reason == "missing_header"
    with pytest.raises(WebhookVerificationError) as caught:
        verify("twilio", body=BODY, headers={"X-Twilio-Signature": "abc="}, secret="x")
    assert caught.value.reason == "missing_url"
    with pytest.raises(ValueError, match="Unknown webhook provider"):
        verify("nope", body=BODY, headers={}, secret="x")


def test_configurable_hmac_scheme() -> None:
    acme = hmac_scheme(
        header_name="X-Acme-Signature",
        prefix="sha512=",
        algorithm="sha512",
        encoding="base64",
        timestamp_header="X-Acme-Time",
        id_header="X-Acme-Id",
    )
    signed = sign_webhook(acme, "k", BODY, timestamp=NOW)
    signed.headers["x-acme-id"] = "a-1"
    event = verify(acme, body=BODY, headers=signed.headers, secret="k", now=NOW)
    assert (event.id, event.timestamp) == ("a-1", NOW)
    with pytest.raises(WebhookVerificationError):
        verify(acme, body=BODY, headers=signed.headers, secret="k", now=NOW + 301)


def test_github_form_delivery_payload_is_the_json_inside() -> None:
    body = b"payload=" + json.dumps({"zen": "Keep it logically awesome."}).encode().replace(
        b" ", b"+"
    )
    signed = sign_webhook("github", "s", body)
    event = verify("github", body=body, headers=signed.headers, secret="s")
    assert event.payload == {"zen": "Keep it logically awesome."}


# -- the providers' own libraries, both ways -------------------------------------------------


def test_stripe_library_both_ways() -> None:
    import stripe

    secret = "whsec_test_secret"
    text = BODY.decode()
    theirs = stripe.WebhookSignature.generate_signature_header(
        text, secret, timestamp=int(time.time())
    )
    assert (
        verify("stripe", body=BODY, headers={"Stripe-Signature": theirs}, secret=secret).id
        == "evt_123"
    )
    ours = sign_webhook("stripe", secret, BODY)
    assert stripe.WebhookSignature.verify_header(
        text, ours.headers["stripe-signature"], secret, tolerance=300
    )


def test_svix_library_both_ways() -> None:
    from svix.webhooks import Webhook

    hook = Webhook(SVIX_SECRET)
    now = datetime.now(tz=UTC)
    theirs = hook.sign("msg_1", now, BODY.decode())
    headers = {
        "svix-id": "msg_1",
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": theirs,
    }
    assert verify("svix", body=BODY, headers=headers, secret=SVIX_SECRET).id == "msg_1"
    ours = sign_webhook("svix", SVIX_SECRET, BODY, event_id="msg_2")
    hook.verify(BODY, ours.headers)  # raises svix's WebhookVerificationError if it disagrees


def test_standardwebhooks_library_both_ways() -> None:
    from standardwebhooks.webhooks import Webhook

    hook = Webhook(SVIX_SECRET)
    now = datetime.now(tz=UTC)
    theirs = hook.sign("msg_1", now, BODY.decode())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": theirs,
    }
    assert verify("standard-webhooks", body=BODY, headers=headers, secret=SVIX_SECRET).id == "msg_1"
    ours = sign_webhook("standard-webhooks", SVIX_SECRET, BODY)
    hook.verify(BODY, ours.headers)  # raises if it disagrees


def test_slack_sdk_both_ways() -> None:
    from slack_sdk.signature import SignatureVerifier

    slack = SignatureVerifier("8f742231b10e8888abcd99yyyzzz85a5")
    body = b"token=x&team_id=T1&command=%2Fweather&text=94070"
    stamp = str(int(time.time()))
    theirs = slack.generate_signature(timestamp=stamp, body=body)
    headers = {"X-Slack-Signature": theirs, "X-Slack-Request-Timestamp": stamp}
    event = verify("slack", body=body, headers=headers, secret="8f742231b10e8888abcd99yyyzzz85a5")
    assert event.payload["command"] == "/weather"
    ours = sign_webhook("slack", "8f742231b10e8888abcd99yyyzzz85a5", body)
    assert slack.is_valid(
        body, ours.headers["x-slack-request-timestamp"], ours.headers["x-slack-signature"]
    )


def test_twilio_library_both_ways() -> None:
    from twilio.request_validator import RequestValidator

    validator = RequestValidator("12345")
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309"}
    body = b"CallSid=CA1234567890ABCDE&Digits=1234&From=%2B14158675309"
    theirs = validator.compute_signature(url, params)
    assert verify(
        "twilio", body=body, headers={"X-Twilio-Signature": theirs}, secret="12345", url=url
    )
    ours = sign_webhook("twilio", "12345", body, url=url)
    assert validator.validate(url, params, ours.headers["x-twilio-signature"])
    json_body = b'{"property": "value"}'
    ours_json = sign_webhook("twilio", "12345", json_body, url=url)
    assert ours_json.url is not None and "bodySHA256=" in ours_json.url
    assert validator.validate(
        ours_json.url, json_body.decode(), ours_json.headers["x-twilio-signature"]
    )


def test_twilio_shared_key_signatures_are_hmac_sha256_as_the_library_reads_them() -> None:
    from twilio.request_validator import HMAC_SHA256, RequestValidator

    validator = RequestValidator("shared-key-secret")
    url = "https://mycompany.com/sms"
    params = {"MessageSid": "SM1", "Body": "hi"}
    body = b"MessageSid=SM1&Body=hi"
    theirs = validator.compute_signature(url, params, HMAC_SHA256)
    settings = "key=webhooks_sharedkey_1, algorithm=HMAC_SHA256"
    headers = {"X-Twilio-Signature": theirs, "X-Twilio-Webhooks-Signature-Settings": settings}
    event = verify("twilio", body=body, headers=headers, secret="shared-key-secret", url=url)
    assert event.payload == {"MessageSid": "SM1", "Body": "hi"}
    # the same bytes without the settings header are checked as SHA-1, and fail
    with pytest.raises(WebhookVerificationError) as sha1:
        verify(
            "twilio",
            body=body,
            headers={"X-Twilio-Signature": theirs},
            secret="shared-key-secret",
            url=url,
        )
    assert sha1.value.reason == "bad_signature"
    # a settings header without algorithm= means SHA-1, as the library reads it
    legacy = validator.compute_signature(url, params)
    headers = {"X-Twilio-Signature": legacy, "X-Twilio-Webhooks-Signature-Settings": "key=k1"}
    assert verify("twilio", body=body, headers=headers, secret="shared-key-secret", url=url)
    # an algorithm neither knows fails
    headers = {
        "X-Twilio-Signature": theirs,
        "X-Twilio-Webhooks-Signature-Settings": "algorithm=HMAC_MD5",
    }
    with pytest.raises(WebhookVerificationError) as unknown:
        verify("twilio", body=body, headers=headers, secret="shared-key-secret", url=url)
    assert unknown.value.reason == "malformed_header"
    assert not validator.validate(url, params, theirs, "HMAC_MD5")


# -- fuzzing: whatever the bytes, only WebhookVerificationError ---------------------------------

HEADER_NAMES = sorted(
    {
        "stripe-signature", "paddle-signature", "svix-id", "svix-timestamp", "svix-signature",
        "webhook-id", "webhook-timestamp", "webhook-signature", "x-slack-signature",
        "x-slack-request-timestamp", "x-zm-signature", "x-zm-request-timestamp",
        "x-hub-signature-256", "x-hub-signature", "x-shopify-hmac-sha256", "x-signature",
        "linear-signature", "x-twilio-signature", "x-square-hmacsha256-signature",
        "x-signature-ed25519", "x-signature-timestamp",
    }
)  # fmt: skip
texts = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "t=1,v1=00",
            "v1,AAAA",
            "v0=zz",
            "ts=1;h1=00",
            "sha256=",
            "1800000000",
            "-1",
            "1e9",
            "١٢",
            "v1a,====",
            " ",
        ]
    ),
)
header_values = st.dictionaries(st.sampled_from(HEADER_NAMES), texts, max_size=6)
secrets = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40),
    st.lists(st.one_of(st.text(max_size=20), st.binary(max_size=20)), max_size=3),
    st.sampled_from([SVIX_SECRET, "whsec_!!", "whpk_AAAA", "00" * 32, "whsec_"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(PROVIDERS)),
    headers=header_values,
    body=st.one_of(
        st.binary(max_size=200),
        st.just(BODY),
        st.just(b'{"signature": {"timestamp": "1", "token": "t", "signature": "00"}}'),
    ),
    secret=secrets,
    now=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    url=st.one_of(st.none(), st.text(max_size=40), st.just("https://[::1:80/x")),
)
def test_fuzz_only_verification_errors_escape(
    name: str, headers: dict[str, str], body: bytes, secret: Any, now: float | None, url: str | None
) -> None:
    try:
        verify(name, body=body, headers=headers, secret=secret, now=now, url=url)
    except WebhookVerificationError as exc:
        assert exc.reason


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(PROVIDERS)),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
    which=st.sampled_from(["body", "header"]),
)
def test_fuzz_a_signed_delivery_with_one_byte_changed_fails_cleanly(
    name: str, position: int, flip: int, which: str
) -> None:
    body = linear_body(NOW) if name == "linear" else BODY
    signed = sign_webhook(name, signing_secret(name), body, timestamp=NOW, url=URL)
    headers = dict(signed.headers)
    new_body = signed.body
    if which == "body":
        i = position % len(new_body)
        new_body = new_body[:i] + bytes([new_body[i] ^ flip]) + new_body[i + 1 :]
    else:
        signature_headers = [h for h in headers if h in PROVIDERS[name].secret_headers]
        if not signature_headers:
            return
        target = signature_headers[0]
        value = headers[target].encode("latin-1")
        i = position % len(value)
        headers[target] = (value[:i] + bytes([value[i] ^ flip]) + value[i + 1 :]).decode("latin-1")
    try:
        verify(
            name,
            body=new_body,
            headers=headers,
            secret=verify_secret(name),
            now=NOW,
            url=signed.url,
        )
    except WebhookVerificationError:
        return
    # A change that still verifies must be one that does not alter what was signed: base64
    # padding bits in a header, a form re-encoding Twilio signs identically, or Mailgun's event
    # data, which Mailgun's scheme does not sign at all (only timestamp + token).
    assert which == "header" or name in ("twilio", "mailgun")
