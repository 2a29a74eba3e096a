"""The webhook receiver: verify, deduplicate, record durably, answer 200, process in the background.

    http.webhook(path="/webhooks/stripe", provider="stripe",
                 secret_env="STRIPE_WEBHOOK_SECRET", handler=internal.billing.on_stripe_event)

Per delivery, in this order:

1. verify over the raw bytes (400 ``{"error": reason}`` if it does not);
2. answer the provider's handshakes (Slack ``url_verification``, Zoom
   ``endpoint.url_validation``, Discord PING) without recording them;
3. in one transaction: look the provider's event id up in ``_webhook_events``
   (a duplicate is answered 200 and dropped) and record the event (headers
   with signatures and secrets redacted, the raw body, ``pending``); commit;
4. answer 200. A 2xx means the event is on disk.

The event row is its own queue entry (``status`` ``pending`` with a
``next_attempt_at``); :mod:`pyconvex.background.webhooks` runs the handlers.
Step 3 goes through the database's group commit, so deliveries arriving
together share one commit, each still answered only after it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from ..background.webhooks import RETENTION_DAYS
from ..database.system import WEBHOOK_EVENTS
from ..env import env
from ..functions.define import HttpAction
from ..functions.logs import current_execution
from ..functions.refs import function_path
from ..http.response import Response
from .core import WebhookVerificationError, mac
from .providers import Scheme
from .verify import scheme_of, verify

if TYPE_CHECKING:
    from ..database import DatabaseWriter

DEFAULT_MAX_ATTEMPTS = 8
# A body larger than this goes to file storage, not into the event's row (a document is at
# most 1 MiB, and every status change rewrites the row).
INLINE_BODY_BYTES = 64 * 1024
# A provider's event id or type longer than these is kept as a digest, or cut (a sender
# could otherwise push the row past the document limit, or an index key past the store's).
MAX_EVENT_ID = 256
MAX_TYPE = 1000
# Verification failures that are the deployment's fault, not the sender's.
_MISCONFIGURED = ("no_secret", "malformed_secret")
_ALWAYS_REDACTED = ("authorization", "cookie", "proxy-authorization")
REDACTED = "[redacted]"


def redact(headers: list[tuple[str, str]], scheme: Scheme) -> str:
    """The request's headers as stored: a JSON list of ``[name, value]`` pairs, in order,
    names lowercased, signatures and secrets replaced by ``[redacted]``."""
    hidden = set(scheme.secret_headers) | set(_ALWAYS_REDACTED)
    pairs = ((name.lower(), value) for name, value in headers)
    return json.dumps([[name, REDACTED if name in hidden else value] for name, value in pairs])


def _positive(number: Any) -> bool:
    return (
        not isinstance(number, bool)
        and isinstance(number, (int, float))
        and 0 < number < float("inf")
    )


def _rate(rate: Any) -> dict[str, float]:
    """``(count, seconds)``: at most ``count`` handler runs per ``seconds`` (a token bucket
    that holds ``count``)."""
    if (
        not isinstance(rate, (tuple, list))
        or len(rate) != 2
        or not all(map(_positive, rate))
        or rate[0] < 1
    ):
        raise ValueError(
            f"rate must be (count, seconds): a count of at least 1 and positive seconds, "
            f"not {rate!r}"
        )
    return {"count": float(rate[0]), "seconds": float(rate[1])}


def _secrets(value: str | None) -> list[str]:
    # Several secrets (a rotation) go in one variable, separated by spaces or commas.
    return [part for part in (value or "").replace(",", " ").split() if part]


def _handshake(scheme: Scheme, payload: Any, secrets: list[str]) -> Response | None:
    if not isinstance(payload, dict):
        return None
    if scheme.name == "slack" and payload.get("type") == "url_verification":
        return Response.json({"challenge": payload.get("challenge")})
    if scheme.name == "discord" and payload.get("type") == 1:
        return Response.json({"type": 1})
    if scheme.name == "zoom" and payload.get("event") == "endpoint.url_validation":
        plain = (payload.get("payload") or {}).get("plainToken")
        if isinstance(plain, str) and secrets:
            digest = mac(secrets[0].encode(), plain.encode()).hex()
            return Response.json({"plainToken": plain, "encryptedToken": digest})
    return None


class WebhookReceiver:
    """The HTTP action behind ``http.webhook(...)``."""

    def __init__(
        self,
        *,
        provider: str | Scheme,
        secret_env: str,
        handler: Any,
        tolerance: float | None = None,
        url: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_parallelism: int | None = None,
        rate: tuple[float, float] | None = None,
        retention_days: float = RETENTION_DAYS,
    ) -> None:
        self.scheme = scheme_of(provider)
        self.secret_env = secret_env
        self.handler_path = function_path(handler)
        self.tolerance = tolerance
        self.url = url
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        if max_parallelism is not None and (
            isinstance(max_parallelism, bool)
            or not isinstance(max_parallelism, int)
            or max_parallelism < 1
        ):
            raise ValueError(
                f"max_parallelism must be a whole number of at least 1, not {max_parallelism!r}"
            )
        self.max_parallelism = max_parallelism
        self.rate = None if rate is None else _rate(rate)
        if not _positive(retention_days):
            raise ValueError(f"retention_days must be a positive number, not {retention_days!r}")
        self.retention_days = float(retention_days)

    async def __call__(self, ctx: Any, request: Any) -> Response:
        body: bytes = await request.body()
        secrets = _secrets(env.get(self.secret_env))
        try:
            event = verify(
                self.scheme,
                body=body,
                headers=request.headers,
                secret=secrets,
                tolerance=self.tolerance,
                url=self.url or request.url,
            )
        except WebhookVerificationError as exc:
            if exc.reason in _MISCONFIGURED:
                self._log_misconfigured(exc, request)
            return Response.json({"error": exc.reason}, status=400)
        handshake = _handshake(self.scheme, event.payload, secrets)
        if handshake is not None:
            return handshake
        executor = ctx._executor
        event_id = _event_id(event)
        blob: tuple[str, Any] | None = None
        if len(body) > INLINE_BODY_BYTES:
            if await self._recorded(executor, event.provider, event_id, request.path):
                return Response.json({"received": True, "duplicate": True})  # nothing stored
            blob = await executor.files.put_bytes(body)  # durable before the row names it
        try:
            # Deliveries arriving together share one commit (the committer's batch), each
            # answered once it is durable.
            recorded = await executor.database.transact(
                lambda writer: self._record(executor, writer, event, event_id, request, blob),
                system=True,
            )
        except BaseException:
            if blob is not None:
                await executor.files.blobs.delete(blob[0])
            raise
        if not recorded and blob is not None:
            await executor.files.blobs.delete(blob[0])  # a duplicate that raced this one
        return Response.json(
            {"received": True} if recorded else {"received": True, "duplicate": True}
        )

    @staticmethod
    async def _recorded(executor: Any, provider: str, event_id: str, endpoint: str) -> bool:
        async with executor.database.read(system=True) as reader:
            return await _existing(reader, provider, event_id, endpoint) is not None

    def _log_misconfigured(self, exc: WebhookVerificationError, request: Any) -> None:
        """The sender did nothing wrong: this deployment cannot verify anything until its
        secret is set. The 400 tells the sender no more than the reason; the log says what
        to fix."""
        where = f"POST {request.path} ({self.scheme.name} webhooks)"
        if exc.reason == "no_secret":
            problem = f"the environment variable {self.secret_env} is not set"
        else:
            problem = (
                f"the secret in {self.secret_env} is not in {self.scheme.name}'s format ({exc})"
            )
        message = (
            f"Server misconfiguration: {where} refuses every delivery: {problem}. "
            f"Set it with `pyconvex env set {self.secret_env} <secret>`."
        )
        execution = current_execution.get()
        if execution is not None:
            execution.add("ERROR", message)
        else:
            logging.getLogger("pyconvex.webhooks").error(message)

    async def _record(
        self,
        executor: Any,
        writer: DatabaseWriter,
        event: Any,
        event_id: str,
        request: Any,
        blob: tuple[str, Any] | None,
    ) -> bool:
        if await _existing(writer, event.provider, event_id, request.path) is not None:
            return False
        raw = request.headers.raw
        headers = redact([(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw], self.scheme)
        fields: dict[str, Any] = {
            "provider": event.provider,
            "event_id": event_id,
            "received_at": executor.scheduler.clock(),
            "headers": headers,
            "body": event.body if blob is None else b"",
            "handler": self.handler_path,
            "status": "pending",
            "attempts": 0,
            "max_attempts": self.max_attempts,
            "endpoint": request.path,
            "retention_days": self.retention_days,
        }
        if self.max_parallelism is not None:
            fields["max_parallelism"] = self.max_parallelism
        if self.rate is not None:
            fields["rate"] = self.rate
        if blob is not None:
            key, written = blob
            fields["body_file"] = await executor.files.record_in(
                writer, key, written, "application/octet-stream"
            )
        if event.type is not None:
            fields["type"] = str(event.type)[:MAX_TYPE]
        if event.timestamp is not None:
            fields["timestamp"] = float(event.timestamp)
        scheduler = executor.scheduler
        fields["next_attempt_at"] = scheduler.clock()
        await writer.insert(WEBHOOK_EVENTS, fields)
        scheduler.work_added(writer)
        return True


def _event_id(event: Any) -> str:
    """The event's id for deduplication: the provider's, or a digest of the body when it has
    none, or of the id when it is absurdly long (an index key must stay small)."""
    if not event.id:
        return "sha256:" + hashlib.sha256(event.body).hexdigest()
    if len(event.id) > MAX_EVENT_ID:
        return "sha256:" + hashlib.sha256(event.id.encode("utf-8", "surrogatepass")).hexdigest()
    return str(event.id)


async def _existing(
    reader: Any, provider: str, event_id: str, endpoint: str
) -> dict[str, Any] | None:
    """The event already recorded for this delivery: the same provider's event id at the
    same endpoint (a provider may send one event to two endpoints, each with its own
    handler; rows from before endpoints were recorded match any)."""
    rows = await (
        reader.query(WEBHOOK_EVENTS)
        .with_index("by_event", lambda q: q.eq("provider", provider).eq("event_id", event_id))
        .take(100)
    )
    for row in rows:
        if row.get("endpoint") in (None, endpoint):
            return dict(row)
    return None


def as_http_action(receiver: WebhookReceiver) -> HttpAction:
    action = HttpAction(receiver.__call__)
    action.__name__ = f"webhook_{receiver.scheme.name}"
    return action
