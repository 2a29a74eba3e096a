"""HTTP actions: the router (and, with the server, requests and responses)."""

from .router import ROUTABLE_METHODS, HttpRouter

__all__ = ["ROUTABLE_METHODS", "HttpRouter"]
