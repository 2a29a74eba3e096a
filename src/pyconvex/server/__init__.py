"""Serving a deployment over HTTP: the site app (HTTP actions) and the API app (function API).

from pyconvex.deployment import Deployment
from pyconvex.server import Backend

backend = Backend(Deployment("myapp"))
# backend.site and backend.api are ASGI apps for any ASGI server.
"""

from .backend import Backend
from .run import BackendServer, Listeners, bind

__all__ = ["Backend", "BackendServer", "Listeners", "bind"]
