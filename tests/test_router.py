"""Router rules and messages, modelled on Convex's own router tests."""

import pytest

from pyconvex.functions.define import HttpAction, http_action
from pyconvex.http import HttpRouter


@http_action
async def a(ctx, request): ...


@http_action
async def b(ctx, request): ...


@http_action
async def c(ctx, request): ...


def match3(http: HttpRouter, path: str, method: str) -> object:
    """``match`` as (handler, method, route) and params, like ``lookup`` plus params."""
    found = http.match(path, method)
    return None if found is None else (found[0][:3], found[1])


def test_exact_then_longest_prefix():
    http = HttpRouter()
    http.route(path="/profile", method="GET", handler=a)
    http.route(path_prefix="/profile/", method="GET", handler=b)
    http.route(path_prefix="/profile/photos/", method="GET", handler=c)
    assert http.lookup("/profile", "GET") == (a, "GET", "/profile")
    assert http.lookup("/profile/", "GET") == (b, "GET", "/profile/*")
    assert http.lookup("/profile/abc", "GET") == (b, "GET", "/profile/*")
    assert http.lookup("/profile/photos/1/2", "GET") == (c, "GET", "/profile/photos/*")
    assert http.lookup("/profiles", "GET") is None
    assert http.lookup("/profile/", "POST") is None  # method mismatch is no match
    assert http.lookup("/Profile", "GET") is None  # case-sensitive, raw path


def test_no_trailing_slash_normalisation():
    http = HttpRouter()
    http.route(path="/a", method="GET", handler=a)
    assert http.lookup("/a/", "GET") is None
    assert http.lookup("/a", "GET") is not None


def test_head_looks_up_get():
    http = HttpRouter()
    http.route(path="/x", method="GET", handler=a)
    assert http.lookup("/x", "HEAD") == (a, "GET", "/x")
    assert http.allowed_methods("/x") == ["GET", "HEAD"]


def test_param_paths():
    http = HttpRouter()
    http.route(path="/api/users/{user_id}", method="GET", handler=a)
    http.route(path="/api/users/me", method="GET", handler=b)
    http.route(path="/api/users/{user_id}/posts/{post_id}", method="GET", handler=c)
    http.route(path_prefix="/api/", method="GET", handler=c)
    assert match3(http, "/api/users/42", "GET") == (
        (a, "GET", "/api/users/{user_id}"),
        {"user_id": "42"},
    )
    assert match3(http, "/api/users/me", "GET") == ((b, "GET", "/api/users/me"), {})
    assert match3(http, "/api/users/1/posts/2", "GET") == (
        (c, "GET", "/api/users/{user_id}/posts/{post_id}"),
        {"user_id": "1", "post_id": "2"},
    )
    # a parameter is one non-empty segment; anything else falls through to the prefix
    assert http.lookup("/api/users/", "GET") == (c, "GET", "/api/*")
    assert http.lookup("/api/users/1/2", "GET") == (c, "GET", "/api/*")


def test_param_backtracks_to_other_branches():
    http = HttpRouter()
    http.route(path="/a/{x}/c", method="GET", handler=a)
    http.route(path="/a/b/d", method="GET", handler=b)
    assert match3(http, "/a/b/c", "GET") == ((a, "GET", "/a/{x}/c"), {"x": "b"})
    assert match3(http, "/a/b/d", "GET") == ((b, "GET", "/a/b/d"), {})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"path": "/a", "method": "HEAD"},
            "'HEAD' is not an allowed HTTP method (like GET, POST, PUT etc.)",
        ),
        ({"path": "/a", "method": "get"}, "'get' is not an allowed HTTP method"),
        ({"path": "a", "method": "GET"}, "path 'a' does not start with a /"),
        ({"path_prefix": "a/", "method": "GET"}, "path 'a/' does not start with a /"),
        ({"path_prefix": "/a", "method": "GET"}, "path_prefix /a must end with a /"),
        ({"method": "GET"}, "route requires either path or path_prefix"),
        ({"path": "/.files", "method": "GET"}, "reserved"),
        ({"path_prefix": "/.files/", "method": "GET"}, "reserved"),
        ({"path": "/.files/x", "method": "POST"}, "reserved"),
        ({"path": "/u/{id", "method": "GET"}, "must be a whole segment"),
        ({"path": "/u/x{id}", "method": "GET"}, "must be a whole segment"),
        ({"path": "/u/{id}/{id}", "method": "GET"}, "twice"),
    ],
)
def test_bad_routes(kwargs, message):
    with pytest.raises(ValueError) as info:
        HttpRouter().route(handler=a, **kwargs)
    assert message in str(info.value)


def test_duplicates_are_errors():
    http = HttpRouter()
    http.route(path="/a", method="GET", handler=a)
    with pytest.raises(ValueError, match=r"^Path '/a' for method GET already in use$"):
        http.route(path="/a", method="GET", handler=b)
    http.route(path="/a", method="POST", handler=b)  # another method is fine
    http.route(path_prefix="/p/", method="GET", handler=a)
    with pytest.raises(ValueError, match=r"path_prefix '/p/' for method GET already in use"):
        http.route(path_prefix="/p/", method="GET", handler=b)
    http.route(path="/u/{id}", method="GET", handler=a)
    with pytest.raises(ValueError, match="already in use"):
        http.route(path="/u/{id}", method="GET", handler=b)
    with pytest.raises(ValueError, match="conflicts with"):
        http.route(path="/u/{other}", method="POST", handler=b)


def test_a_refused_param_route_leaves_nothing_behind():
    http = HttpRouter()
    with pytest.raises(ValueError, match="whole segment"):
        http.route(path="/u/{a}/x{bad}", method="GET", handler=a)
    with pytest.raises(ValueError, match="twice"):
        http.route(path="/v/{a}/{a}", method="GET", handler=a)
    # had the refused routes left {a} in the trie, these would conflict with it
    http.route(path="/u/{b}", method="GET", handler=b)
    http.route(path="/v/{c}", method="GET", handler=c)
    assert match3(http, "/u/1", "GET") == ((b, "GET", "/u/{b}"), {"b": "1"})
    assert match3(http, "/v/2", "GET") == ((c, "GET", "/v/{c}"), {"c": "2"})
    assert [r for r, _, _ in http.get_routes()] == ["/u/{b}", "/v/{c}"]


def test_decorator_form_wraps_in_http_action():
    http = HttpRouter()

    @http.route(path="/d", method="GET")
    async def handler(ctx, request):
        return "hi"

    assert isinstance(handler, HttpAction)
    assert http.lookup("/d", "GET") == (handler, "GET", "/d")
    with pytest.raises(ValueError, match="already in use"):
        http.route(path="/d", method="GET")(lambda ctx, r: None)
    with pytest.raises(ValueError, match="does not start with a /"):
        http.route(path="d", method="GET")  # the decorator form checks before decorating


def test_get_routes_order():
    http = HttpRouter()
    http.route(path_prefix="/z/", method="POST", handler=a)
    http.route(path_prefix="/b/", method="GET", handler=a)
    http.route(path_prefix="/a/", method="GET", handler=a)
    http.route(path="/y", method="POST", handler=b)
    http.route(path="/y", method="GET", handler=b)
    http.route(path="/x/{id}", method="PUT", handler=c)
    assert [(r, m) for r, m, _ in http.get_routes()] == [
        ("/x/{id}", "PUT"),
        ("/y", "GET"),
        ("/y", "POST"),
        ("/a/*", "GET"),
        ("/b/*", "GET"),
        ("/z/*", "POST"),
    ]


def test_allowed_methods_for_405():
    http = HttpRouter()
    http.route(path="/r", method="POST", handler=a)
    http.route(path="/r", method="DELETE", handler=a)
    http.route(path_prefix="/", method="OPTIONS", handler=a)
    assert http.allowed_methods("/r") == ["POST", "DELETE", "OPTIONS"]
    assert http.allowed_methods("/nothing") == ["OPTIONS"]


def _lookup_cost(n_routes: int) -> int:
    """Routes a lookup touches, counted structurally: dict probes do not depend on n."""
    http = HttpRouter()
    for i in range(n_routes):
        http.route(path=f"/static/{i}", method="GET", handler=a)
        http.route(path=f"/items/{i}/{{id}}", method="GET", handler=a)
        http.route(path_prefix=f"/prefix/{i}/", method="GET", handler=a)
    found = [
        http.lookup(f"/static/{n_routes - 1}", "GET"),
        http.lookup(f"/items/{n_routes - 1}/x", "GET"),
        http.lookup(f"/prefix/{n_routes - 1}/deep/path", "GET"),
    ]
    assert all(found)
    return len(http)


def test_lookup_does_not_scan_routes():
    # Correctness at size; speed itself is measured in bench/, never asserted here.
    assert _lookup_cost(10) == 30
    assert _lookup_cost(2000) == 6000
