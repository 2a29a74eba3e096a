"""HTTP actions over real HTTP: status codes, Request readers, Response bodies."""

from __future__ import annotations

import socket

import httpx
import pytest

from conftest import Served


def test_health(web: Served) -> None:
    response = httpx.get(f"{web.site}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))


def test_unknown_path_is_404_text(web: Served) -> None:
    response = httpx.get(f"{web.site}/nope")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "No matching routes found"


def test_other_method_is_405_with_allow(web: Served) -> None:
    response = httpx.put(f"{web.site}/inspect")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    # a {param} path and a prefix path know their methods too
    assert httpx.post(f"{web.site}/users/1/posts/2").headers["allow"] == "GET, HEAD"
    assert httpx.delete(f"{web.site}/files/a/b").status_code == 405


def test_head_runs_get_without_body(web: Served) -> None:
    get = httpx.get(f"{web.site}/inspect")
    head = httpx.head(f"{web.site}/inspect")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["x-handled"] == "yes"
    # the handler sees method HEAD (the body says so), so compare lengths on /health
    assert get.json()["method"] == "GET"
    health = httpx.head(f"{web.site}/health")
    assert health.content == b""
    assert health.headers["content-length"] == str(len(httpx.get(f"{web.site}/health").content))


@pytest.mark.parametrize("method", ["GET", "OPTIONS"])
def test_get_and_options_handlers_see_no_body(serve_app, tmp_path, method: str) -> None:  # type: ignore[no-untyped-def]
    app = tmp_path / "app"
    (app / "convex").mkdir(parents=True)
    (app / "convex" / "http.py").write_text(
        "from pyconvex import HttpRouter, Response\n"
        "http = HttpRouter()\n"
        "@http.route(path='/b', method='GET')\n"
        "@http.route(path='/b', method='OPTIONS')\n"
        "async def b(ctx, request):\n"
        "    return Response.json({'body': (await request.body()).decode()})\n"
    )
    served = serve_app(app)
    response = httpx.request(method, f"{served.site}/b", content=b"hidden")
    assert response.json() == {"body": ""}


def test_body_over_limit_is_413_before_the_handler(serve_app, web_app) -> None:  # type: ignore[no-untyped-def]
    served = serve_app(web_app, max_body=1000)
    response = httpx.post(f"{served.site}/increment", content=b"x" * 1001)
    assert response.status_code == 413
    assert response.json()["code"] == "PayloadTooLarge"
    # the handler never ran: no counter was written
    assert httpx.post(f"{served.site}/echo?as=bytes", content=b"x" * 1000).json() == {"bytes": 1000}
    assert served.backend.recent_logs == type(served.backend.recent_logs)()

    def chunks():  # no Content-Length: the limit holds while the body streams in
        for _ in range(11):
            yield b"y" * 100

    chunked = httpx.post(f"{served.site}/echo?as=stream", content=chunks())
    assert chunked.status_code == 413


def test_default_limit_is_20_mib_and_checked_before_reading(web: Served) -> None:
    assert web.backend.max_body == 20 * 1024 * 1024
    # Announce 20 MiB + 1 and send nothing: the answer must come without the body.
    port = web.listeners.site_port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            b"POST /echo?as=bytes HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: %d\r\n\r\n" % (20 * 1024 * 1024 + 1)
        )
        head = b""
        while not head.endswith(b"}"):  # the JSON reason ends the response
            chunk = conn.recv(65536)
            if not chunk:
                break
            head += chunk
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"over the limit of 20 MiB" in head


def test_handler_error_is_500_json_with_request_id(web: Served) -> None:
    response = httpx.get(f"{web.site}/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    code = response.json()["code"]
    assert code.startswith("[Request ID: ")
    assert code.endswith("] Server Error: Uncaught RuntimeError: secret internals")
    request_id = code[len("[Request ID: ") : code.index("]")]
    errors = [line for line in web.backend.recent_logs if line.level == "ERROR"]
    assert errors and errors[-1].request_id == request_id
    assert "Traceback" in errors[-1].message and "secret internals" in errors[-1].message


def test_production_redacts_the_message(serve_app, web_app) -> None:  # type: ignore[no-untyped-def]
    served = serve_app(web_app, production=True)
    body = httpx.get(f"{served.site}/boom").json()
    assert body["code"].endswith("] Server Error")
    assert "secret" not in str(body)
    # the traceback still reaches the logs
    assert any("secret internals" in line.message for line in served.backend.recent_logs)
    refused = httpx.post(f"{served.site}/refuse").json()
    assert refused["data"] == {"code": "INSUFFICIENT_FUNDS", "balance": 3}


def test_convex_error_data_reaches_the_client(web: Served) -> None:
    response = httpx.post(f"{web.site}/refuse")
    assert response.status_code == 500
    body = response.json()
    assert body["data"] == {"code": "INSUFFICIENT_FUNDS", "balance": 3}
    assert "Uncaught ConvexError" in body["code"]


def test_returning_a_non_response_is_500(web: Served) -> None:
    response = httpx.get(f"{web.site}/not-a-response")
    assert response.status_code == 500
    assert "must return a pyconvex Response, not dict" in response.json()["code"]


def test_invalid_json_left_uncaught_is_400_not_500(web: Served) -> None:
    response = httpx.post(f"{web.site}/bad-json", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["code"] == "BadRequest"
    assert "Invalid JSON" in response.json()["message"]


def test_streamed_response(web: Served) -> None:
    with httpx.stream("GET", f"{web.site}/stream") as response:
        chunks = list(response.iter_text())
        assert response.headers.get("transfer-encoding") == "chunked"
    assert "".join(chunks) == "".join(f"part {i}\n" for i in range(5))


def test_redirect_and_empty_responses(web: Served) -> None:
    response = httpx.get(f"{web.site}/redirect")
    assert response.status_code == 307
    assert response.headers["location"] == "https://example.com/there"
    empty = httpx.delete(f"{web.site}/empty")
    assert empty.status_code == 204 and empty.content == b""
    assert "content-length" not in empty.headers


def test_path_params_prefix_and_raw_path(web: Served) -> None:
    assert httpx.get(f"{web.site}/users/u%201/posts/42").json() == {
        "user_id": "u 1",
        "post_id": "42",
    }
    assert httpx.get(f"{web.site}/files/a/b%20c.png").json() == {"rest": "a/b%20c.png"}
    # an empty segment is no match for a {param}
    assert httpx.get(f"{web.site}/users//posts/42").status_code == 404


def test_request_line_headers_query_client(web: Served) -> None:
    response = httpx.get(
        f"{web.site}/inspect?tag=a&tag=b&q=%C3%A9",
        headers=[("X-Multi", "1"), ("x-multi", "2"), ("User-Agent", "pytest")],
    )
    body = response.json()
    assert body["method"] == "GET"
    assert body["url"] == f"{web.site}/inspect?tag=a&tag=b&q=%C3%A9"
    assert body["path"] == "/inspect"
    assert body["tags"] == ["a", "b"]
    assert body["q"] == "é"
    assert body["x_multi"] == ["1", "2"]
    assert body["ua"] == "pytest"
    assert body["client"][0] == "127.0.0.1"


def test_forwarded_proto_from_a_trusted_proxy(web: Served) -> None:
    body = httpx.get(f"{web.site}/inspect", headers={"X-Forwarded-Proto": "https"}).json()
    assert body["url"].startswith("https://")


def test_json_reader_keeps_raw_bytes(web: Served) -> None:
    raw = b'{"b": 1,  "a": [true, null, "\\u00e9"]}'
    body = httpx.post(f"{web.site}/echo?as=json", content=raw).json()
    assert body["json"] == {"b": 1, "a": [True, None, "é"]}
    assert body["raw"].encode("latin-1") == raw


def test_text_reader(web: Served) -> None:
    assert httpx.post(f"{web.site}/echo?as=text", content="héllo".encode()).json() == {
        "text": "héllo"
    }
    # invalid UTF-8 is replaced, not an error
    assert httpx.post(f"{web.site}/echo?as=text", content=b"a\xffb").json() == {"text": "a\ufffdb"}


def test_bytes_reader(web: Served) -> None:
    assert httpx.post(f"{web.site}/echo?as=bytes", content=bytes(range(256)) * 4).json() == {
        "bytes": 1024
    }


def test_urlencoded_form(web: Served) -> None:
    body = httpx.post(
        f"{web.site}/echo?as=form", data={"name": "Ada Lovelace", "email": "ada@example.com"}
    ).json()
    assert body["form"] == {"name": ["Ada Lovelace"], "email": ["ada@example.com"]}
    assert body["raw_length"] == len("name=Ada+Lovelace&email=ada%40example.com")


def test_multipart_form_with_files(web: Served) -> None:
    big = b"\x00\x01" * (1024 * 1024)  # 2 MiB: spooled to disk by the parser
    response = httpx.post(
        f"{web.site}/echo?as=form",
        data={"name": "Ada", "tags": ["x", "y"]},
        files=[
            ("upload", ("notes.txt", b"hello notes", "text/plain")),
            ("upload", ("big.bin", big, "application/octet-stream")),
        ],
    )
    body = response.json()
    assert body["form"]["name"] == ["Ada"]
    assert body["form"]["tags"] == ["x", "y"]
    small, large = body["form"]["upload"]
    assert small == {
        "filename": "notes.txt",
        "content_type": "text/plain",
        "size": 11,
        "head": "hello notes",
    }
    assert large["filename"] == "big.bin" and large["size"] == len(big)
    assert body["raw_length"] > len(big)


def test_form_with_wrong_content_type_is_400(web: Served) -> None:
    response = httpx.post(f"{web.site}/echo?as=form", json={"a": 1})
    assert response.status_code == 400
    assert "form_data() needs a Content-Type" in response.json()["message"]


def test_stream_reader(web: Served) -> None:
    def chunks():
        for i in range(50):
            yield bytes([i]) * 1000

    assert httpx.post(f"{web.site}/echo?as=stream", content=chunks()).json() == {"total": 50_000}


def test_plain_def_http_action_runs_in_a_thread(web: Served) -> None:
    response = httpx.post(f"{web.site}/plain", content=b"12345")
    assert response.json() == {"len": 5, "count": 0}
    assert any(line.message == "plain handler" for line in web.backend.recent_logs)


def test_http_action_time_limit_is_504(serve_app, web_app) -> None:  # type: ignore[no-untyped-def]
    from pyconvex.functions import TimeLimits

    served = serve_app(web_app, limits=TimeLimits(http_action=0.3))
    response = httpx.get(f"{served.site}/slow", timeout=10)
    assert response.status_code == 504
    assert "HTTP action timed out (maximum duration: 0.3s)" in response.json()["code"]
    errors = [line for line in served.backend.recent_logs if line.level == "ERROR"]
    assert errors and "timed out" in errors[-1].message and errors[-1].function == "GET /slow"
    # the server is fine afterwards
    assert httpx.get(f"{served.site}/health").status_code == 200
