"""The function API on the API port: Convex's wire format, admin key, logs, env."""

from __future__ import annotations

import base64
import math
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from conftest import Served


def call(served: Served, kind: str, path: str, args: Any = None, **extra: Any) -> dict[str, Any]:
    body = {"path": path, "args": {} if args is None else args, **extra}
    headers = extra.pop("headers", None)
    body.pop("headers", None)
    response = httpx.post(f"{served.api}/api/{kind}", json=body, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_success_shape(web: Served) -> None:
    assert call(web, "mutation", "counters:increment", {"name": "a"}) == {
        "status": "success",
        "value": 1,
    }
    assert call(web, "query", "counters:get", {"name": "a"}) == {"status": "success", "value": 1}


def test_run_endpoint(web: Served) -> None:
    response = httpx.post(f"{web.api}/api/run/counters/get", json={"args": {"name": "zz"}})
    assert response.json() == {"status": "success", "value": 0}


def test_missing_and_internal_functions_are_not_found_without_admin_key(web: Served) -> None:
    for path in ("counters:nope", "counters:secret", "nowhere:fn"):
        result = call(web, "query", path)
        assert result == {
            "status": "error",
            "errorMessage": f"Could not find public function for '{path}'.",
        }


def test_admin_key_reaches_internal_functions(web: Served) -> None:
    result = call(web, "query", "counters:secret", headers=web.admin)
    assert result == {"status": "success", "value": "internal"}


def test_wrong_admin_key_is_401(web: Served) -> None:
    response = httpx.post(
        f"{web.api}/api/query",
        json={"path": "counters:secret", "args": {}},
        headers={"Authorization": "Convex wrong"},
    )
    assert response.status_code == 401
    assert response.json()["code"] == "BadAdminKey"


def test_wrong_kind_is_an_error(web: Served) -> None:
    result = call(web, "mutation", "counters:get", {"name": "a"})
    assert result["status"] == "error"
    assert "defined as Query" in result["errorMessage"]


def test_argument_validation_error(web: Served) -> None:
    result = call(web, "mutation", "counters:increment", {})
    assert result["status"] == "error"
    assert result["errorMessage"].startswith("ArgumentValidationError: ")
    assert "errorData" not in result


def test_thrown_error_message_and_redaction(web: Served, serve_app, web_app) -> None:  # type: ignore[no-untyped-def]
    result = call(web, "query", "counters:fails")
    assert result["status"] == "error"
    first, second = result["errorMessage"].split("\n", 1)
    assert first.startswith("[Request ID: ") and first.endswith("] Server Error")
    assert second == "Uncaught ValueError: the query broke"
    production = serve_app(web_app, production=True)
    redacted = call(production, "query", "counters:fails")
    assert redacted["errorMessage"].endswith("] Server Error")
    assert "broke" not in redacted["errorMessage"]


def test_convex_error_data(web: Served) -> None:
    result = call(web, "query", "counters:refuses", format="convex_encoded_json")
    assert result["status"] == "error"
    assert result["errorMessage"].startswith("Uncaught ConvexError")
    packed = base64.b64encode(struct.pack("<q", 2**60)).decode()
    assert result["errorData"] == {"code": "NOPE", "n": {"$integer": packed}}


def _int(n: int) -> dict[str, str]:
    return {"$integer": base64.b64encode(struct.pack("<q", n)).decode()}


def _float(x: float) -> dict[str, str]:
    return {"$float": base64.b64encode(struct.pack("<d", x)).decode()}


@pytest.mark.parametrize(
    "encoded",
    [
        _int(2**62),
        _int(-(2**63)),
        _float(float("inf")),
        _float(-0.0),
        {"$bytes": base64.b64encode(b"\x00\xffbytes").decode()},
        {"nested": [1, 2.5, "x", None, True, _int(2**55), {"$bytes": ""}]},
    ],
)
def test_convex_json_round_trips(web: Served, encoded: Any) -> None:
    result = call(web, "query", "counters:echo", {"value": encoded}, format="convex_encoded_json")
    assert result == {"status": "success", "value": encoded}


def test_nan_round_trips(web: Served) -> None:
    result = call(
        web, "query", "counters:echo", {"value": _float(math.nan)}, format="convex_encoded_json"
    )
    raw = base64.b64decode(result["value"]["$float"])
    assert math.isnan(struct.unpack("<d", raw)[0])


def test_clean_json_is_the_default_format(web: Served) -> None:
    value = {"big": _int(2**60), "b": {"$bytes": "aGk="}, "inf": _float(float("-inf")), "n": 3}
    result = call(web, "query", "counters:echo", {"value": value})
    assert result["value"] == {"big": 2**60, "b": "aGk=", "inf": "-Infinity", "n": 3}


def test_numbers_as_convex_clients_send_them(web: Served) -> None:
    """convex_encoded_json: a JSON number is a float (a JS number), $integer an Int64."""
    sent = {"n": 3, "big": _int(2**60)}
    result = call(web, "query", "counters:types", {"value": sent}, format="convex_encoded_json")
    assert result["value"] == {"n": "float", "big": "Int64"}
    plain = call(web, "query", "counters:types", {"value": {"n": 3}})  # format json
    assert plain["value"] == {"n": "int"}


def test_an_int_no_float_holds_is_an_error_naming_its_path(web: Served) -> None:
    result = call(web, "query", "counters:huge", format="convex_encoded_json")
    assert result["status"] == "error"
    assert ".big" in result["errorMessage"] and "v.int64()" in result["errorMessage"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"args": {}}', 'needs a "path"'),
        (b'{"path": "counters:get", "args": {"$bad": 1}}', "Invalid arguments"),
        (b'{"path": "counters:get", "args": 3}', '"args" must be an object'),
        (b'{"path": "counters:get", "format": "xml"}', "Unknown format"),
    ],
)
def test_malformed_requests_are_400(web: Served, body: bytes, message: str) -> None:
    response = httpx.post(
        f"{web.api}/api/query", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_unknown_api_path_is_404(web: Served) -> None:
    assert httpx.post(f"{web.api}/api/nothing").status_code == 404


def test_log_lines_are_returned_and_capped(web: Served) -> None:
    result = call(web, "query", "counters:chatty", {"tag": "t", "n": 3})
    assert result["logLines"] == ["[LOG] t 0", "[LOG] t 1", "[LOG] t 2", "[WARN] done t"]
    many = call(web, "query", "counters:chatty", {"tag": "m", "n": 300})
    assert len(many["logLines"]) == 257
    assert many["logLines"][255] == "[LOG] m 255"
    assert (
        many["logLines"][256] == "[WARN] Log overflow (maximum 256). Remaining log lines omitted."
    )


def test_plain_def_function_logs_from_its_thread(web: Served) -> None:
    result = call(web, "query", "counters:plain")
    assert result == {"status": "success", "value": 0, "logLines": ["[LOG] from a thread"]}


def test_concurrent_logs_never_mix(web: Served) -> None:
    tags = [f"tag{i}" for i in range(24)]

    def run(tag: str) -> dict[str, Any]:
        return call(web, "query", "counters:chatty", {"tag": tag, "n": 30})

    with ThreadPoolExecutor(8) as pool:
        results = dict(zip(tags, pool.map(run, tags), strict=True))
    for tag, result in results.items():
        assert result["logLines"] == [f"[LOG] {tag} {i}" for i in range(30)] + [
            f"[WARN] done {tag}"
        ]
    # In the deployment's log stream, each request id carries one tag only.
    by_request: dict[str, set[str]] = {}
    for line in web.backend.recent_logs:
        by_request.setdefault(line.request_id, set()).add(
            line.message.split()[-1 if line.level == "WARN" else 0]
        )
    assert len(by_request) == len(tags)
    assert all(len(found) == 1 for found in by_request.values())


def test_http_action_logs_of_concurrent_requests_never_mix(web: Served) -> None:
    def run(i: int) -> None:
        assert httpx.post(f"{web.site}/log?tag=r{i}").status_code == 200

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(run, range(16)))
    lines: dict[str, list[str]] = {}
    for line in web.backend.recent_logs:
        lines.setdefault(line.request_id, []).append(line.message)
        assert line.function == "POST /log"
    assert len(lines) == 16
    for messages in lines.values():
        tag = messages[0].split()[0]
        assert messages == [f"{tag} {i}" for i in range(20)] + [f"info {tag}"]


def test_read_modify_write_over_http_is_exact(web: Served) -> None:
    """8 threads x 50 HTTP requests, each running a read-modify-write mutation."""
    barrier = threading.Barrier(8)

    def worker() -> None:
        with httpx.Client() as client:
            barrier.wait()
            for _ in range(50):
                response = client.post(f"{web.site}/increment", json={"name": "shared"})
                assert response.status_code == 200

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert call(web, "query", "counters:get", {"name": "shared"})["value"] == 400


def test_env_vars_through_the_api(web: Served) -> None:
    assert httpx.get(f"{web.api}/api/env").status_code == 403
    put = httpx.put(f"{web.api}/api/env/GREETING", json={"value": "hello"}, headers=web.admin)
    assert put.status_code == 200
    assert httpx.get(f"{web.api}/api/env", headers=web.admin).json() == {
        "variables": {"GREETING": "hello"}
    }
    assert httpx.get(f"{web.site}/env?name=GREETING").json() == {"value": "hello"}
    assert httpx.get(f"{web.site}/env?name=CONVEX_SITE_URL").json() == {"value": web.site}
    assert httpx.get(f"{web.site}/env?name=CONVEX_CLOUD_URL").json() == {"value": web.api}
    bad = httpx.put(f"{web.api}/api/env/1BAD", json={"value": "x"}, headers=web.admin)
    assert bad.status_code == 400
    assert "must start with a letter" in bad.json()["message"]
    assert httpx.delete(f"{web.api}/api/env/GREETING", headers=web.admin).json() == {
        "removed": True
    }
    assert httpx.get(f"{web.site}/env?name=GREETING").json() == {"value": None}


def test_logs_endpoint(web: Served) -> None:
    call(web, "query", "counters:chatty", {"tag": "x", "n": 2})
    assert httpx.get(f"{web.api}/api/logs").status_code == 403
    response = httpx.get(f"{web.api}/api/logs", headers=web.admin)
    lines = [httpx.Response(200, content=raw).json() for raw in response.content.splitlines()]
    assert [line["message"] for line in lines] == ["x 0", "x 1", "done x"]
    assert {line["function"] for line in lines} == {"counters:chatty"}


def test_query_ts_and_query_at_ts_read_one_commit(web: Served) -> None:
    def ts() -> str:
        response = httpx.post(
            f"{web.api}/api/query_ts", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 200
        found: str = response.json()["ts"]
        assert found.isdigit()
        return found

    call(web, "mutation", "counters:increment", {"name": "at"})
    first = ts()
    call(web, "mutation", "counters:increment", {"name": "at"})
    second = ts()
    assert int(second) > int(first)
    assert call(web, "query_at_ts", "counters:get", {"name": "at"}, ts=first)["value"] == 1
    assert call(web, "query_at_ts", "counters:get", {"name": "at"}, ts=second)["value"] == 2
    # Convex's own backend spells a timestamp as 8 little-endian bytes in base64: also taken.
    convex_ts = base64.b64encode(int(first).to_bytes(8, "little")).decode()
    assert call(web, "query_at_ts", "counters:get", {"name": "at"}, ts=convex_ts)["value"] == 1


@pytest.mark.parametrize(
    ("ts", "code"),
    [
        ("-1", "BadRequest"),
        ("abc", "BadRequest"),
        (None, "BadRequest"),
        (str(2**64), "BadRequest"),
        (str(2**63), "InvalidTimestamp"),  # newer than anything committed
        ("1", "InvalidTimestamp"),  # long out of retention
    ],
)
def test_query_at_a_bad_timestamp_is_a_400_naming_it(web: Served, ts: Any, code: str) -> None:
    call(web, "mutation", "counters:increment", {"name": "bad"})
    body = {"path": "counters:get", "args": {"name": "bad"}, "ts": ts}
    response = httpx.post(f"{web.api}/api/query_at_ts", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
