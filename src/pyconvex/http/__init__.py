"""HTTP actions: the router, requests and responses."""

from .cors import cors_headers, cors_router
from .request import Request
from .response import Response
from .router import ROUTABLE_METHODS, HttpRouter

__all__ = ["ROUTABLE_METHODS", "HttpRouter", "Request", "Response", "cors_headers", "cors_router"]
