from __future__ import annotations

import asyncio
import functools
import shutil
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pyconvex.database import Database
from pyconvex.persistence import open_persistence
from pyconvex.schema import define_schema, define_table
from pyconvex.testing import ConvexTest
from pyconvex.validators import v

APPS = Path(__file__).parent / "apps"

# Test apps are loaded by pyconvex, and the clients' scripts run by node or by PyPI
# convex's own interpreter: pytest imports neither.
collect_ignore = ["apps", "clients"]


def api_call(
    api: str, kind: str, path: str, args: Any = None, *, headers: Any = None, encoded: bool = False
) -> Any:
    """Call a function over the function API (``/api/query`` and so on), assert that it
    succeeded, and return its value (``encoded``: in Convex's encoded JSON)."""
    body: dict[str, Any] = {"path": path, "args": args or {}}
    if encoded:
        body["format"] = "convex_encoded_json"
    result = httpx.post(f"{api}/api/{kind}", json=body, headers=headers, timeout=30).json()
    assert result["status"] == "success", result
    return result["value"]


def wait_until(condition: Any, timeout: float = 30) -> Any:
    """Poll ``condition()`` until it is truthy (a condition wait, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


async def eventually(
    condition: Callable[[], Awaitable[Any]], what: str, timeout: float = 20.0
) -> Any:
    """Poll ``await condition()`` until it is truthy, and return it: a wait for a condition,
    not a fixed sleep. Fails with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := await condition()):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)
    return value


@pytest.fixture
def basic_app() -> Path:
    return APPS / "basic"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: the database and function tests run on both."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'db.sqlite3'}"


@pytest.fixture
async def t(basic_app: Path, database_url: str) -> AsyncIterator[ConvexTest]:
    async with ConvexTest(basic_app, database_url=database_url) as harness:
        yield harness


ITEMS_SCHEMA = define_schema(
    {
        "items": define_table(
            {
                "name": v.string(),
                "status": v.optional(v.string()),
                "n": v.optional(v.number()),
            }
        )
        .index("by_status", ["status"])
        .index("by_status_n", ["status", "n"]),
        "loose": define_table(v.any()),
    },
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(open_persistence(database_url), ITEMS_SCHEMA)
    await database.setup()
    yield database
    await database.close()


class Served:
    """A real uvicorn server for one app, on free loopback ports, in a thread of its own."""

    def __init__(
        self,
        app_dir: Path,
        tmp: Path,
        limits: Any = None,
        max_upload: Any = None,
        storage_url: str | None = None,
        database_url: str | None = None,
        ports: tuple[int, int] = (0, 0),
        **options: Any,
    ) -> None:
        from pyconvex.deployment import Deployment
        from pyconvex.server import Backend, BackendServer, bind

        self.listeners = bind("127.0.0.1", *ports)  # (0, 0): free ports
        self.deployment = Deployment(
            app_dir,
            database_url=database_url or f"sqlite:///{tmp / 'data.sqlite3'}",
            site_url=self.listeners.site_url,
            cloud_url=self.listeners.api_url,
            limits=limits,
            storage_url=storage_url or (tmp / "storage").as_uri(),
            max_upload=max_upload,
        )
        self.admin_key = "test-admin-key"
        self.backend = Backend(
            self.deployment, key=self.admin_key, site_port=self.listeners.site_port, **options
        )
        self.server = BackendServer(self.backend, self.listeners)
        self.site = self.listeners.site_url
        self.api = self.listeners.api_url
        self.loop = asyncio.new_event_loop()  # the server's; tests may submit coroutines to it
        self._thread = threading.Thread(
            target=lambda: self.loop.run_until_complete(self.server.serve()),
            daemon=True,
        )

    def __enter__(self) -> Served:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self._thread.join(timeout=30)
        self.loop.close()
        self.listeners.close()

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Convex {self.admin_key}"}

    def call(
        self, kind: str, path: str, args: Any = None, *, headers: Any = None
    ) -> httpx.Response:
        """A function call over the function API (``/api/query`` and so on)."""
        body = {"path": path, "args": {} if args is None else args}
        return httpx.post(f"{self.api}/api/{kind}", json=body, headers=headers)


@pytest.fixture
def serve_app(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(app_dir: Path, **options: Any) -> Served:
        scratch = tmp_path / f"server{len(started)}"
        scratch.mkdir()
        served = Served(app_dir, scratch, **options)
        started.append(served)
        return served.__enter__()

    yield start
    for served in started:
        served.__exit__()


@pytest.fixture
def web_app() -> Path:
    return APPS / "web"


@pytest.fixture
def web(serve_app: Callable[..., Served], web_app: Path) -> Served:
    return serve_app(web_app)


@functools.cache
def _issuer_keys() -> dict[str, Any]:
    """Made once per run: RSA key generation is slow, and the tests never change keys."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    return {
        "k1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "k2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "e1": ec.generate_private_key(ec.SECP256R1()),
    }


class Issuer:
    """A token issuer on loopback: OIDC discovery and JWKS over real HTTP, keys made here.

    ``published`` says which of its keys the JWKS lists (rotate by changing it);
    ``hits`` counts the requests per path.
    """

    audience = "pyconvex-test"

    def __init__(self) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.private = _issuer_keys()
        self.published = ["k1", "e1"]
        self.hits: dict[str, int] = {}
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.hits[self.path] = issuer.hits.get(self.path, 0) + 1
                if self.path == "/.well-known/openid-configuration":
                    body: Any = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                elif self.path == "/jwks":
                    body = issuer.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def algorithm(self, kid: str) -> str:
        return "ES256" if kid.startswith("e") else "RS256"

    def jwk(self, kid: str) -> dict[str, Any]:
        import json

        from jwt.algorithms import ECAlgorithm, RSAAlgorithm

        public = self.private[kid].public_key()
        tool = ECAlgorithm if kid.startswith("e") else RSAAlgorithm
        jwk = json.loads(tool.to_jwk(public))  # type: ignore[attr-defined]
        return {**jwk, "kid": kid, "use": "sig", "alg": self.algorithm(kid)}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk(kid) for kid in self.published]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        import time

        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": "user_1",
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "email_verified": True,
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def token(self, kid: str = "k1", **overrides: Any) -> str:
        import jwt

        return jwt.encode(
            self.claims(**overrides),
            self.private[kid],
            algorithm=self.algorithm(kid),
            headers={"kid": kid},
        )


def static_server(files: dict[str, tuple[bytes, str]]) -> Any:
    """A ThreadingHTTPServer on a free loopback port (an origin of its own) serving
    ``files``: path -> (body, content type); 404 for anything else."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in files:
                self.send_error(404)
                return
            body, kind = files[self.path]
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def serve_issued(
    serve_app: Callable[..., Served], issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Served]:
    """``serve_app`` for apps whose auth_config.py trusts the test issuer (it reads where
    the issuer is from PYCONVEX_TEST_ISSUER)."""
    monkeypatch.setenv("PYCONVEX_TEST_ISSUER", issuer.url)
    return serve_app


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    server = Issuer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3-compatible server (moto's, in this process, on a free port); its endpoint URL.

    boto3 finds it through ``S3_ENDPOINT_URL``; the credentials are moto's test ones.
    """
    import os
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    settings = {
        "S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    yield endpoint
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A new, empty bucket on the test S3 server."""
    import uuid

    import boto3

    name = f"test-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return name


class PostgresServer:
    """A throwaway PostgreSQL for the test run: initdb in a temporary folder, on a free port.

    Started once per run as the ``postgres`` user (initdb and the server refuse root), with
    fsync and full page writes off: the tests check semantics, not disks. Commits stay
    synchronous: a killed server must keep every commit it acknowledged, and the crash tests
    check exactly that.
    """

    def __init__(self, *, durable: bool = False) -> None:
        import glob
        import os
        import shutil
        import socket
        import tempfile

        self.durable = durable  # fsync on, as in production (the benchmarks)
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not found:
            raise RuntimeError(
                "PostgreSQL is not installed (apt install postgresql): .ci/run installs it"
            )
        self.bin = found[-1]
        self.dir = tempfile.mkdtemp(prefix="pyconvex-pg-")
        shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._run(
            "initdb", "-D", f"{self.dir}/data", "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        import subprocess

        subprocess.run(
            ["runuser", "-u", "postgres", "--", f"{self.bin}/{tool}", *args],
            check=check,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def new_database(self) -> str:
        """A fresh, empty database on this server; its URL."""
        import uuid

        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(f"{self.url}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{self.url}/{name}"

    def stop(self, mode: str = "fast", *, check: bool = True) -> None:
        self._run("pg_ctl", "-D", f"{self.dir}/data", "-w", "-m", mode, "stop", check=check)

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c max_connections=200"
        )
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        data, log = f"{self.dir}/data", f"{self.dir}/log"
        self._run("pg_ctl", "-D", data, "-w", "-l", log, "-o", options, "start")

    def remove(self) -> None:
        import shutil

        self.stop("immediate", check=False)  # it may be stopped already
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.remove()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty PostgreSQL database."""
    return postgres_server.new_database()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright, one per test module (.ci/run installs it)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Chromium is not installed: .ci/run installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield chromium
        chromium.close()
