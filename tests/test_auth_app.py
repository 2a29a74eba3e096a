"""Identity and API keys in an app: the function API, HTTP actions, the scheduler, ConvexTest."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conftest import APPS, Issuer, Served
from pyconvex.errors import AppLoadError
from pyconvex.testing import ConvexTest

AUTH_APP = APPS / "auth"


@pytest.fixture
def served(serve_issued: Callable[..., Served]) -> Served:
    return serve_issued(AUTH_APP)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_function_api_gives_functions_the_identity(served: Served, issuer: Issuer) -> None:
    response = served.call("query", "users:whoami", headers=bearer(issuer.token(org="acme")))
    assert response.json() == {
        "status": "success",
        "value": {
            "token_identifier": f"{issuer.url}|user_1",
            "name": "Ada Lovelace",
            "org": "acme",
        },
    }
    assert served.call("query", "users:whoami").json()["value"] is None


def test_identity_reaches_everything_run_from_an_action(served: Served, issuer: Issuer) -> None:
    response = served.call(
        "action", "users:whoami_via_nested_action", headers=bearer(issuer.token())
    )
    value = response.json()["value"]
    assert value["action"] == value["query"] == value["mutation"]
    assert value["query"]["token_identifier"] == f"{issuer.url}|user_1"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not-a-jwt", "malformed"),
        ("expired", "expired"),
        ("wrong-audience", "wrong_audience"),
    ],
)
def test_function_api_answers_401_to_a_bad_token(
    served: Served, issuer: Issuer, token: str, reason: str
) -> None:
    tokens = {
        "expired": issuer.token(exp=int(time.time()) - 600),
        "wrong-audience": issuer.token(aud="other-app"),
    }
    response = served.call("query", "users:whoami", headers=bearer(tokens.get(token, token)))
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "Unauthenticated" and body["reason"] == reason


def test_http_action_sees_the_identity_and_passes_it_on(served: Served, issuer: Issuer) -> None:
    response = httpx.get(f"{served.site}/me", headers=bearer(issuer.token(sub="user_9")))
    assert response.status_code == 200
    body = response.json()
    assert body["subject"] == "user_9"
    assert body["via_query"]["token_identifier"] == f"{issuer.url}|user_9"


def test_http_action_bad_token_does_not_reject_the_request(served: Served, issuer: Issuer) -> None:
    # The handler runs and decides: get_user_identity() raised, the handler answered 403.
    response = httpx.get(f"{served.site}/me", headers=bearer(issuer.token(iss="https://evil")))
    assert response.status_code == 403
    assert response.json() == {"error": "Invalid token", "reason": "wrong_issuer"}
    assert httpx.get(f"{served.site}/me").status_code == 401
    basic = httpx.get(f"{served.site}/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401  # another scheme is no token at all


def test_a_plain_def_http_action_reads_the_identity_too(served: Served, issuer: Issuer) -> None:
    response = httpx.get(f"{served.site}/me-sync", headers=bearer(issuer.token("e1")))
    assert response.json() == {"name": "Ada Lovelace"}


def test_the_guide_api_key_pattern(served: Served) -> None:
    created = served.call(
        "mutation", "keys:create", {"owner": "acct_1", "scopes": ["read"]}, headers=served.admin
    ).json()
    key = created["value"]
    assert key.startswith("pcx_")
    url = f"{served.site}/api/protected"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"X-API-Key": "pcx_wrong"}).status_code == 403
    assert (
        httpx.get(
            url, headers={"X-API-Key": key[:-1] + ("A" if key[-1] != "A" else "B")}
        ).status_code
        == 403
    )
    ok = httpx.get(url, headers={"X-API-Key": key})
    assert ok.status_code == 200 and ok.json()["owner"] == "acct_1"
    assert ok.json()["last_used_at"] == pytest.approx(time.time(), abs=60)
    # A key without the "read" scope is refused.
    other = served.call("mutation", "keys:create", {"owner": "acct_2"}, headers=served.admin)
    assert httpx.get(url, headers={"X-API-Key": other.json()["value"]}).status_code == 403
    # Revoked: refused from then on.
    listed = served.call("query", "keys:mine", {"owner": "acct_1"}).json()["value"]
    served.call("mutation", "keys:revoke", {"id": listed[0]["_id"]}, headers=served.admin)
    assert httpx.get(url, headers={"X-API-Key": key}).status_code == 403


async def test_only_a_hash_of_the_key_is_stored(database_url: str) -> None:
    async with ConvexTest(AUTH_APP, database_url=database_url) as t:
        key = await t.mutation("keys:create", {"owner": "acct_1"})
        rows = await t.run(lambda ctx: ctx.db.system.query("_api_keys").collect())
        assert len(rows) == 1
        stored = repr(rows[0])
        assert key not in stored and key[len("pcx_") + 6 :] not in stored
        assert rows[0]["prefix"] == key[: len("pcx_") + 6]
        assert len(rows[0]["hash"]) == 64


async def test_validate_records_last_use_and_revoke_and_list(database_url: str) -> None:
    async with ConvexTest(AUTH_APP, database_url=database_url) as t:
        key = await t.mutation("keys:create", {"owner": "acct_1", "scopes": ["read", "write"]})
        # From a query: valid, but nothing written.
        record = await t.query("keys:check", {"key": key})
        assert record["owner"] == "acct_1" and record["scopes"] == ["read", "write"]
        assert record.get("last_used_at") is None and "hash" not in record
        assert await t.query("keys:check", {"key": key + "x"}) is None
        # From a mutation ctx: last_used_at is written in its transaction.
        from pyconvex import api_keys

        used = await t.run(lambda ctx: api_keys.validate(ctx, key, scope="write"))
        assert used["last_used_at"] == pytest.approx(time.time(), abs=60)
        assert await t.run(lambda ctx: api_keys.validate(ctx, key, scope="admin")) is None
        listed = await t.query("keys:mine", {"owner": "acct_1"})
        assert [row["last_used_at"] for row in listed] == [used["last_used_at"]]
        assert await t.mutation("keys:revoke", {"id": record["_id"]}) is True
        assert await t.mutation("keys:revoke", {"id": record["_id"]}) is False
        assert await t.query("keys:check", {"key": key}) is None
        assert (await t.query("keys:mine", {"owner": "acct_1"}))[0]["revoked_at"] is not None
        with pytest.raises(TypeError, match="mutation, action or HTTP action"):
            await t.query("keys:create_from_query")


async def test_with_identity_reaches_functions_and_http_actions(database_url: str) -> None:
    async with ConvexTest(AUTH_APP, database_url=database_url) as t:
        as_ada = t.with_identity(name="Ada", org="acme", subject="ada")
        assert await as_ada.query("users:whoami") == {
            "token_identifier": "https://convex.test|ada",
            "name": "Ada",
            "org": "acme",
        }
        assert await t.query("users:whoami") is None  # t itself stays anonymous
        assert (await as_ada.fetch("/me")).json()["subject"] == "ada"
        assert (await t.fetch("/me")).status_code == 401


async def test_scheduled_functions_run_without_identity(database_url: str) -> None:
    async with ConvexTest(AUTH_APP, database_url=database_url) as t:
        await t.with_identity(name="Ada").mutation("users:note", {"text": "hi"})
        assert await t.finish_scheduled_functions() == 1
        assert await t.query("users:probes") == [True]


async def test_a_bad_auth_config_names_the_file(tmp_path: Path) -> None:
    functions = tmp_path / "convex"
    functions.mkdir()
    (functions / "auth_config.py").write_text('providers = [{"domain": "auth.example.com"}]\n')
    with pytest.raises(AppLoadError) as caught:
        async with ConvexTest(tmp_path):
            pass
    assert "auth_config.py" in str(caught.value) and "domain must be an http(s) URL" in str(
        caught.value
    )
