"""pyconvex: Convex's backend model in Python.

>>> from pyconvex import query, mutation, v
>>> @mutation(args={"name": v.string()})
... async def create(ctx, args):
...     return await ctx.db.insert("items", {"name": args["name"]})
"""

from .crons import cron_jobs
from .env import env
from .errors import (
    ArgumentValidationError,
    ConvexError,
    ReturnsValidationError,
    SchemaValidationError,
)
from .functions import (
    action,
    api,
    internal,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
)
from .functions.define import http_action
from .http import HttpRouter, Request, Response
from .http.cors import cors_router
from .schema import define_schema, define_table
from .validators import v
from .values import Int64

__all__ = [
    "ArgumentValidationError",
    "ConvexError",
    "HttpRouter",
    "Int64",
    "Request",
    "Response",
    "ReturnsValidationError",
    "SchemaValidationError",
    "action",
    "api",
    "cors_router",
    "cron_jobs",
    "define_schema",
    "define_table",
    "env",
    "http_action",
    "internal",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "mutation",
    "query",
    "v",
]

__version__ = "0.1.0"
