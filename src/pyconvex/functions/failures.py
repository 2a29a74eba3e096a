"""How a failed execution is described: to the client (maybe redacted) and to the logs
(always whole). Used by every way in: HTTP actions, the function API, the sync protocol."""

from __future__ import annotations

import time
import traceback
from typing import TYPE_CHECKING, Any

from ..errors import ConvexError, FunctionNotFoundError, FunctionTimeoutError, ValidationError
from ..values import to_convex_json
from .logs import LogLine, current_execution, current_function

if TYPE_CHECKING:
    from ..deployment import Deployment


def uncaught_message(exc: BaseException) -> str:
    """Convex's wording, with the Python class: ``Uncaught ValueError: boom``."""
    text = str(exc)
    name = type(exc).__name__
    return f"Uncaught {name}: {text}" if text else f"Uncaught {name}"


def error_data(exc: BaseException) -> Any:
    """A ``ConvexError``'s data as Convex JSON, or None."""
    if not isinstance(exc, ConvexError) or exc.data is None:
        return None
    try:
        return to_convex_json(exc.data)
    except Exception:
        # The data is not a Convex value: send what it says rather than fail the error path.
        return str(exc.data)


def log_failure(
    deployment: Deployment, exc: BaseException, request_id: str, name: str | None = None
) -> None:
    """The error and its traceback, to the deployment's logs (never to the client)."""
    trace = "".join(traceback.format_exception(exc)).rstrip()
    execution = current_execution.get()
    where = name or current_function.get() or (execution.name if execution is not None else None)
    line = LogLine(time.time(), "ERROR", trace, where, request_id)
    deployment.emit_logs([line])


def client_message(
    exc: BaseException, request_id: str, deployment: Deployment, *, production: bool
) -> str:
    """What a caller of a function is told of its failure, as Convex words it (the
    function API's ``errorMessage``). Anything but the caller's own mistakes and
    ``ConvexError`` is logged whole and, in production, told as ``Server Error`` only."""
    if isinstance(exc, FunctionNotFoundError | FunctionTimeoutError):
        return str(exc)
    if isinstance(exc, ValidationError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ConvexError):
        return uncaught_message(exc)
    log_failure(deployment, exc, request_id)
    code = f"[Request ID: {request_id}] Server Error"
    return code if production else f"{code}\n{uncaught_message(exc)}"
