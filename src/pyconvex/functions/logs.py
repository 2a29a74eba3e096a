"""Function logs: ``print()`` and ``logging`` inside a function, captured per execution.

Every top-level call (an HTTP request, a function API call, ``pyconvex run``)
is one :class:`Execution`, held in a context variable, so concurrent requests
never mix their lines: asyncio tasks and the worker threads of plain ``def``
handlers each see their own. Nested calls (``ctx.run_query`` from an action)
add to their caller's execution under their own function name.

    @query
    async def list(ctx, args):
        print("listing")                      # [LOG] listing
        logging.getLogger(__name__).warning("slow")   # [WARN] slow

Like Convex, an execution keeps at most 256 lines, then one overflow notice.
When it ends, its lines go to the deployment's sinks (the dev console, the log
file that ``pyconvex logs`` reads) and, over the function API, to ``logLines``.
"""

from __future__ import annotations

import builtins
import io
import logging
import os
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

MAX_LOG_LINES = 256
OVERFLOW_MESSAGE = f"Log overflow (maximum {MAX_LOG_LINES}). Remaining log lines omitted."

# Convex's console levels; Python's WARNING and CRITICAL map onto WARN and ERROR.
_LEVELS = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "ERROR",
}


def new_request_id() -> str:
    """16 hex digits, as Convex's request ids look."""
    return os.urandom(8).hex()


@dataclass(frozen=True, slots=True)
class LogLine:
    """One captured line: when, how severe, what, from which function and request."""

    timestamp: float
    level: str
    message: str
    function: str | None
    request_id: str

    def __str__(self) -> str:
        """The ``logLines`` form of the function API: ``[LOG] message``."""
        return f"[{self.level}] {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "level": self.level,
            "message": self.message,
            "function": self.function,
            "requestId": self.request_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogLine:
        return cls(
            float(data["timestamp"]),
            str(data["level"]),
            str(data["message"]),
            data.get("function"),
            str(data["requestId"]),
        )


Sink = Callable[[list[LogLine]], None]
_NO_LINES: list[LogLine] = []  # never appended to: Execution.add replaces it first


class Execution:
    """The log lines (and identity) of one top-level call."""

    __slots__ = ("_request_id", "env", "lines", "name", "overflowed", "sink")

    def __init__(
        self,
        name: str | None,
        sink: Sink | None = None,
        env: Any = None,
        request_id: str | None = None,
    ) -> None:
        self.name = name
        self.sink = sink
        self.env = env
        # Shared and empty until the first line: most executions never log.
        self.lines: list[LogLine] = _NO_LINES
        self.overflowed = False
        self._request_id = request_id

    @property
    def request_id(self) -> str:
        # Made on first use: most requests never log nor fail, and need no id.
        if self._request_id is None:
            self._request_id = new_request_id()
        return self._request_id

    def add(self, level: str, message: str) -> None:
        if self.overflowed:
            return
        function = current_function.get() or self.name
        if self.lines is _NO_LINES:
            self.lines = []
        elif len(self.lines) >= MAX_LOG_LINES:
            self.overflowed = True
            level, message = "WARN", OVERFLOW_MESSAGE
        self.lines.append(LogLine(time.time(), level, message, function, self.request_id))

    def rewind(self, mark: int) -> None:
        """Forget the lines after the first ``mark`` (an attempt that will be retried)."""
        if self.lines is not _NO_LINES:
            del self.lines[mark:]
        self.overflowed = False

    def finish(self) -> None:
        """Hand the lines to the sink (once)."""
        if self.lines and self.sink is not None:
            sink, self.sink = self.sink, None
            try:
                sink(self.lines)
            except Exception:  # a broken sink must never fail the request
                logging.getLogger("pyconvex").exception("A log sink failed")


current_execution: ContextVar[Execution | None] = ContextVar("pyconvex_execution", default=None)
current_function: ContextVar[str | None] = ContextVar("pyconvex_function", default=None)


# -- capture ---------------------------------------------------------------------------

_original_print = builtins.print


def _print(
    *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
) -> None:
    execution = current_execution.get()
    if execution is None or (file is not None and file not in (sys.stdout, sys.stderr)):
        _original_print(*args, sep=sep, end=end, file=file, flush=flush)
        return
    buffer = io.StringIO()
    _original_print(*args, sep=sep, end="", file=buffer)
    execution.add("ERROR" if file is sys.stderr else "LOG", buffer.getvalue())


class _CaptureHandler(logging.Handler):
    """Sends records emitted inside an execution to it; ignores all others."""

    def emit(self, record: logging.LogRecord) -> None:
        execution = current_execution.get()
        if execution is not None and record.name == "asyncio":
            # The event loop's own reports (a task the garbage collector found pending, for
            # one) land in whatever execution is current: they are not the function's.
            execution = None
        if execution is None:
            # Our handler on the root logger switches off Python's last-resort
            # handler; keep its job for warnings logged outside any function.
            root = logging.getLogger()
            if record.levelno >= logging.WARNING and root.handlers == [self]:
                last = logging.lastResort
                if last is not None:
                    last.handle(record)
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:
            self.handleError(record)
            return
        level = _LEVELS.get(record.levelno) or (
            "ERROR" if record.levelno > logging.ERROR else "DEBUG"
        )
        execution.add(level, message)


_handler = _CaptureHandler()


def install_capture() -> None:
    """Route ``print`` and ``logging`` inside executions to them (idempotent).

    ``print`` is wrapped rather than ``sys.stdout`` replaced, so test runners
    that swap ``sys.stdout`` keep working; outside an execution both behave
    exactly as before. The root logger is lowered to INFO if it is still at
    Python's default (WARNING), so ``logger.info`` inside functions is kept,
    as Convex keeps ``console.info``.
    """
    builtins.print = _print
    root = logging.getLogger()
    if _handler not in root.handlers:
        root.addHandler(_handler)
    if root.level == logging.WARNING:
        root.setLevel(logging.INFO)
