"""What every dashboard page shares: who is signed in, CSRF checks, templates, headers.

A page handler is written as ``async def page(d: Dashboard, request) -> Response``
and wrapped by :meth:`Dashboard.page`, which sends a visitor without a valid
session to the sign-in page and refuses (403, nothing changed) a POST whose
CSRF token or origin is wrong.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .. import values
from .signin import COOKIE_NAME, Guesses, Signer

if TYPE_CHECKING:
    from ..deployment import Deployment
    from ..server.backend import Backend

HERE = Path(__file__).parent
PREFIX = "/dashboard"
#: The pages, in the order of the navigation.
NAV = ("Health", "Data", "Functions", "Logs", "Schedules", "Webhooks", "Files", "Environment")

# Scripts and styles come only from the package's own files: a value from the data that
# slipped into a page could not run even if autoescaping missed it.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

Handler = Callable[["Dashboard", Request], Awaitable[Response]]


def pretty_json(value: Any) -> str:
    """A stored value as the JSON text the Data page shows and edits."""
    return json.dumps(values.to_convex_json(value, wire=False), indent=2, ensure_ascii=False)


def short_json(value: Any, limit: int = 120) -> str:
    text = json.dumps(values.to_convex_json(value, wire=False), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Dashboard:
    """The dashboard of one :class:`Backend`: its templates, signer and guess counter."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.guesses = Guesses()
        self._signer: Signer | None = None
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["short_json"] = short_json

    @property
    def deployment(self) -> Deployment:
        return self.backend.deployment

    @property
    def signer(self) -> Signer | None:
        """None when the deployment has no admin key: then nobody can sign in."""
        key = self.backend.admin_key
        if key is None:
            return None
        if self._signer is None:
            self._signer = Signer(key)
        return self._signer

    def nonce(self, request: Request) -> str | None:
        signer = self.signer
        if signer is None:
            return None
        return signer.session_nonce(request.cookies.get(COOKIE_NAME))

    # -- responses ---------------------------------------------------------------------------

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any] | None = None,
        *,
        status: int = 200,
    ) -> Response:
        nonce = self.nonce(request)
        signer = self.signer
        page = {
            "request": request,
            "prefix": PREFIX,
            "nav": NAV,
            "signed_in": nonce is not None,
            "csrf": signer.csrf_token(nonce) if signer and nonce else "",
            **(context or {}),
        }
        html = self.templates.get_template(template).render(page)
        return secure(HTMLResponse(html, status_code=status))

    def redirect(self, path: str) -> Response:
        return secure(RedirectResponse(PREFIX + path, status_code=303))

    # -- guards ------------------------------------------------------------------------------

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` for signed-in users only; a POST needs the session's CSRF token."""

        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            nonce = self.nonce(request)
            if nonce is None:
                if request.method != "GET":
                    return forbidden("Sign in first: your session is missing or has expired")
                return self.redirect("/login")
            if request.method == "POST":
                refusal = await self.refuse_change(request, nonce)
                if refusal is not None:
                    return refusal
            return await handler(self, request)

        return guarded

    async def refuse_change(self, request: Request, nonce: str) -> Response | None:
        """A 403 for a change that did not come from one of our own pages."""
        if not same_origin(request):
            return forbidden("This change came from another site and was refused")
        token = request.headers.get("x-csrf-token")
        if token is None:
            form = await request.form()
            field = form.get("csrf")
            token = field if isinstance(field, str) else None
        signer = self.signer
        if signer is None or not signer.csrf_ok(nonce, token):
            return forbidden("The form's CSRF token is missing or wrong: reload the page")
        return None


async def page_of(
    query: Any, request: Request, size: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``query`` from the request's ``?cursor=`` (the first page without one):
    the documents and the cursor of the next page (None at the end). A cursor that is not
    one of this query's raises :class:`PyConvexError`, with Convex's message."""
    cursor = request.query_params.get("cursor") or None
    found = await query.paginate({"num_items": size, "cursor": cursor})
    return found["page"], None if found["is_done"] else found["continue_cursor"]


def same_origin(request: Request) -> bool:
    """Whether a request's ``Origin`` (or ``Referer``) is this server itself.

    Browsers send ``Origin`` with every POST; a request without either header
    is not from a browser page, and the CSRF token still has to match.
    """
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True
    try:
        parts = urlsplit(source)
    except ValueError:  # "http://[::1" and the like: not our origin, whatever it is
        return False
    host = request.headers.get("host", "")
    return parts.netloc == host and parts.scheme == request.url.scheme


def forbidden(message: str) -> Response:
    return secure(Response(message, status_code=403, media_type="text/plain"))


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
