"""Every exception pyconvex raises, in one place.

PyConvexError
├── ConvexError                 raised by user code; its ``data`` reaches the caller
├── InvalidValueError           not a Convex value, or over a size/depth limit (ValueError)
├── ValidationError             a value does not match a validator (ValueError)
│   ├── ArgumentValidationError   bad function arguments
│   ├── ReturnsValidationError    bad function return value
│   └── SchemaValidationError     a document that does not match the schema
├── InvalidQueryError           a misused query or index range (ValueError)
├── FunctionNotFoundError       no function at that path, or not callable from there
├── FunctionTimeoutError        a handler ran past its time limit (TimeoutError)
├── AppLoadError                the functions folder could not be loaded (names file and line)
├── BadRequestError             the client sent something unusable (ValueError); answered 400
│   ├── PayloadTooLargeError      a request body over the limit; answered 413
│   └── InvalidTimestampError     a read at a timestamp in the future or out of retention
├── AuthenticationError         a bearer token that does not verify (``reason`` says why)
├── ConflictError               a transaction lost a race; retried automatically, never seen by users
└── StoreUnavailableError       the database cannot be reached right now; answered 503
"""

from __future__ import annotations

from typing import Any


class PyConvexError(Exception):
    """Base class of every pyconvex error."""


class ConvexError(PyConvexError):
    """An application error whose ``data`` reaches the caller intact.

        raise ConvexError({"code": "NOT_FOUND", "id": item_id})

    Over the function API the data arrives as ``errorData``; from an HTTP action
    it is the ``data`` field of the 500 body.
    """

    def __init__(self, data: Any = None) -> None:
        self.data = data
        super().__init__(data if isinstance(data, str) else _describe(data))


def _describe(data: Any) -> str:
    from .values import display_value  # values imports errors: keep the cycle lazy

    try:
        return display_value(data)
    except Exception:
        return repr(data)


class InvalidValueError(PyConvexError, ValueError):
    """A Python object that is not a Convex value, or is over a limit."""


class ValidationError(PyConvexError, ValueError):
    """A value does not match its validator. ``str()`` is Convex's message."""


class ArgumentValidationError(ValidationError):
    """A function was called with arguments its ``args`` validator rejects."""


class ReturnsValidationError(ValidationError):
    """A function returned a value its ``returns`` validator rejects."""


class SchemaValidationError(ValidationError):
    """A write would store a document that does not match the table's schema."""


class InvalidQueryError(PyConvexError, ValueError):
    """A query, index range or filter that cannot run as written."""


class FunctionNotFoundError(PyConvexError, LookupError):
    """No function at that path, or the caller may not call it (internal)."""


class FunctionTimeoutError(PyConvexError, TimeoutError):
    """A function ran past its time limit."""


class AppLoadError(PyConvexError):
    """The app's functions folder could not be loaded.

    ``file`` and ``line`` point at the cause when they are known.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where}{message}")


class ConflictError(PyConvexError):
    """A transaction could not commit because of a concurrent one (retryable)."""


class NonRetryableError(PyConvexError):
    """Raised by background work (a work pool's action, a webhook handler) to fail at once:
    no retry is attempted, whatever attempts are left.

        if response.status_code == 404:
            raise NonRetryableError("the customer is gone")
    """


class StoreUnavailableError(PyConvexError):
    """The database cannot be reached (restarting, network down): try again shortly.

    Servers answer it with a 503, never a 500: nothing is wrong with the request.
    """


class BadRequestError(PyConvexError, ValueError):
    """The client sent something unusable: invalid JSON, a malformed form, ...

    Raised by the ``Request`` readers. Left uncaught in an HTTP action, it is
    answered with ``status`` (400) and a JSON reason, never a 500.
    """

    status = 400
    code = "BadRequest"


class PayloadTooLargeError(BadRequestError):
    """A request body is over the server's limit (413)."""

    status = 413
    code = "PayloadTooLarge"


class InvalidTimestampError(BadRequestError):
    """A read asked for a timestamp newer than the newest commit, or older than the
    commit log keeps (``/api/query_at_ts``)."""

    code = "InvalidTimestamp"


class AuthenticationError(PyConvexError):
    """A bearer token that could not be verified.

    ``reason`` is one of a fixed set of codes, stable across versions, so code
    and logs can tell them apart: ``malformed``, ``no_provider``,
    ``wrong_issuer``, ``wrong_audience``, ``bad_algorithm``, ``unknown_key``,
    ``bad_signature``, ``expired``, ``not_yet_valid``, ``keys_unavailable``.

    ``ctx.auth.get_user_identity()`` raises it in an HTTP action; the function
    API answers it with a 401.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
