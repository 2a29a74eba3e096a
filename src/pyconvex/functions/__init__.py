"""Functions: definitions, references, loading, contexts and execution."""

from .context import ActionCtx, Auth, MutationCtx, QueryCtx
from .define import (
    FunctionDefinition,
    action,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
)
from .executor import Executor, TimeLimits
from .refs import FunctionReference, api, function_path, internal
from .registry import App, load_app

__all__ = [
    "ActionCtx",
    "App",
    "Auth",
    "Executor",
    "FunctionDefinition",
    "FunctionReference",
    "MutationCtx",
    "QueryCtx",
    "TimeLimits",
    "action",
    "api",
    "function_path",
    "internal",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "load_app",
    "mutation",
    "query",
]
