"""The webhook receiver: verify, deduplicate, record durably, answer 200, process in the background.

    http.webhook(path="/webhooks/stripe", provider="stripe",
                 secret_env="STRIPE_WEBHOOK_SECRET", handler=internal.billing.on_stripe_event)

Per delivery, in this order:

1. verify over the raw bytes (400 ``{"error": reason}`` if it does not);
2. answer the provider's handshakes (Slack ``url_verification``, Zoom
   ``endpoint.url_validation``, Discord PING) without recording them;
3. in one transaction: look the provider's event id up in ``_webhook_events``
   (a duplicate is answered 200 and dropped), record the event (headers with
   signatures and secrets redacted, the raw body, ``pending``), and schedule
   its processing; commit;
4. answer 200. A 2xx means the event is on disk.

Processing runs the handler (an internal mutation or action) with
``{"provider", "id", "type", "timestamp", "payload"}``. A mutation handler's
writes and the event's ``succeeded`` commit together (exactly once). A failure
is recorded (``attempts``, ``last_error``) and retried after an exponential
backoff with jitter, up to ``max_attempts``; then the event is ``failed``
(the dead letter). An action handler cut off by a crash is retried too (so
action handlers run at least once: make them idempotent on the event id).
``pyconvex webhooks replay ID`` processes an event again.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from typing import TYPE_CHECKING, Any

from .. import values
from ..database.system import WEBHOOK_EVENTS
from ..env import env
from ..errors import ConflictError
from ..functions.context import Auth
from ..functions.define import HttpAction
from ..functions.refs import function_path
from ..http.response import Response
from ..scheduler import describe_failure
from .core import WebhookVerificationError
from .providers import Scheme
from .verify import scheme_of, verify

if TYPE_CHECKING:
    from ..database import DatabaseWriter
    from ..deployment import Deployment

PROCESS_JOB = "_webhooks:process"
DEFAULT_MAX_ATTEMPTS = 8
BACKOFF_START = 1.0
BACKOFF_MAX = 3600.0
_ALWAYS_REDACTED = ("authorization", "cookie", "proxy-authorization")
REDACTED = "[redacted]"


def backoff(attempt: int) -> float:
    """Seconds before retry ``attempt`` (1-based): doubling from 1 s to an hour, with jitter
    between 50% and 100% so that many failing events do not retry in lockstep."""
    base = min(BACKOFF_START * 2.0 ** (attempt - 1), BACKOFF_MAX)
    return base * (0.5 + random.random() / 2)


def redact(headers: dict[str, str], scheme: Scheme) -> dict[str, str]:
    hidden = set(scheme.secret_headers) | set(_ALWAYS_REDACTED)
    return {name: (REDACTED if name in hidden else value) for name, value in headers.items()}


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
            digest = hmac.new(secrets[0].encode(), plain.encode(), hashlib.sha256).hexdigest()
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
    ) -> None:
        self.scheme = scheme_of(provider)
        self.secret_env = secret_env
        self.handler_path = function_path(handler)
        self.tolerance = tolerance
        self.url = url
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts

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
            return Response.json({"error": exc.reason}, status=400)
        handshake = _handshake(self.scheme, event.payload, secrets)
        if handshake is not None:
            return handshake
        executor = ctx._executor
        # Group commit: deliveries arriving together share one commit, each answered after it.
        recorded = await executor.database.transact_batched(
            lambda writer: self._record(executor, writer, event, request), system=True
        )
        return Response.json(
            {"received": True} if recorded else {"received": True, "duplicate": True}
        )

    async def _record(
        self, executor: Any, writer: DatabaseWriter, event: Any, request: Any
    ) -> bool:
        event_id = event.id or "sha256:" + hashlib.sha256(event.body).hexdigest()
        existing = (
            await writer.query(WEBHOOK_EVENTS)
            .with_index(
                "by_event", lambda q: q.eq("provider", event.provider).eq("event_id", event_id)
            )
            .first()
        )
        if existing is not None:
            return False
        headers = redact({k.lower(): v for k, v in request.headers.items()}, self.scheme)
        fields: dict[str, Any] = {
            "provider": event.provider,
            "event_id": event_id,
            "received_at": time.time(),
            "headers": headers,
            "body": event.body,
            "handler": self.handler_path,
            "status": "pending",
            "attempts": 0,
            "max_attempts": self.max_attempts,
        }
        if event.type is not None:
            fields["type"] = event.type
        if event.timestamp is not None:
            fields["timestamp"] = float(event.timestamp)
        row_id = await writer.insert(WEBHOOK_EVENTS, fields)
        await executor.scheduler.schedule_system_in(
            writer, executor.scheduler.clock(), PROCESS_JOB, {"event": row_id}
        )
        return True


def as_http_action(receiver: WebhookReceiver) -> HttpAction:
    action = HttpAction(receiver.__call__)
    action.__name__ = f"webhook_{receiver.scheme.name}"
    return action


# -- processing --------------------------------------------------------------------------------


def handler_args(row: dict[str, Any]) -> dict[str, Any]:
    """What the handler gets: the verified event, its payload re-read from the stored raw body."""
    return {
        "provider": row["provider"],
        "id": None if row["event_id"].startswith("sha256:") else row["event_id"],
        "type": row.get("type"),
        "timestamp": row.get("timestamp"),
        "payload": _payload(row["body"]),
    }


def _payload(body: bytes) -> Any:
    from .core import parse_payload

    payload = parse_payload(body)
    try:
        values.check_value(payload)
    except ValueError:
        return None  # not representable as a Convex value (e.g. a 2^70 integer): the raw body stays
    return payload


class WebhookProcessor:
    """The system job that runs an event's handler, retries, and ends it."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    async def run(self, job: dict[str, Any]) -> None:
        deployment = self.deployment
        executor = deployment.executor
        scheduler = deployment.scheduler
        event_id = job["args"]["event"]
        async with deployment.database.read(system=True) as reader:
            row = await reader.get(event_id)
        if row is None or row["status"] in ("succeeded", "failed"):
            await deployment.database.transact(
                lambda w: scheduler.set_state_in(w, job["_id"], "success", only_from="pending")
            )
            return
        try:
            fn = executor.resolve(row["handler"])
        except Exception as exc:
            error: BaseException = exc

            async def unresolved(writer: DatabaseWriter) -> None:
                described = describe_failure(error)
                await scheduler.set_state_in(
                    writer, job["_id"], "failed", described, only_from="pending"
                )
                await self._failed(writer, job, row, error, final=True)

            await deployment.database.transact(unresolved)
            return
        args = handler_args(row)
        if fn.kind == "mutation":

            async def attempt(writer: DatabaseWriter) -> None:
                current = await writer.system.get(job["_id"])
                if current is None or current["state"]["kind"] != "pending":
                    return
                try:
                    await executor.run_nested(
                        row["handler"], args, writer, Auth(), kinds=("mutation",)
                    )
                except ConflictError:
                    raise
                except Exception as exc:  # the handler's writes are undone (savepoint)
                    await scheduler.set_state_in(
                        writer, job["_id"], "failed", describe_failure(exc), only_from="pending"
                    )
                    await self._failed(writer, job, row, exc)
                    return
                await scheduler.set_state_in(writer, job["_id"], "success", only_from="pending")
                await self._succeeded(writer, row)

            await deployment.database.transact(attempt)
            return

        async def claim(writer: DatabaseWriter) -> bool:
            if not await scheduler.set_state_in(
                writer, job["_id"], "in_progress", only_from="pending"
            ):
                return False
            await writer.system_writer().patch(
                row["_id"], {"status": "processing", "attempts": row["attempts"] + 1}
            )
            return True

        if not await deployment.database.transact(claim):
            return
        claimed = {**row, "attempts": row["attempts"] + 1}
        try:
            await executor.run(row["handler"], args, kind="action")
        except Exception as exc:
            error = exc

            async def failed(writer: DatabaseWriter) -> None:
                await scheduler.set_state_in(
                    writer, job["_id"], "failed", describe_failure(error), only_from="in_progress"
                )
                await self._failed(writer, job, claimed, error, counted=True)

            await deployment.database.transact(failed)
            return

        async def succeeded(writer: DatabaseWriter) -> None:
            await scheduler.set_state_in(writer, job["_id"], "success", only_from="in_progress")
            await self._succeeded(writer, claimed, counted=True)

        await deployment.database.transact(succeeded)

    async def cut_off(self, writer: DatabaseWriter, job: dict[str, Any]) -> None:
        row = await writer.system.get(job["args"]["event"])
        if row is not None and row["status"] == "processing":
            error = RuntimeError("the server stopped while the handler was running")
            await self._failed(writer, job, row, error, counted=True)

    async def _succeeded(
        self, writer: DatabaseWriter, row: dict[str, Any], *, counted: bool = False
    ) -> None:
        attempts = row["attempts"] if counted else row["attempts"] + 1
        await writer.system_writer().patch(
            row["_id"], {"status": "succeeded", "attempts": attempts, "completed_at": time.time()}
        )

    async def _failed(
        self,
        writer: DatabaseWriter,
        job: dict[str, Any],
        row: dict[str, Any],
        exc: BaseException,
        *,
        counted: bool = False,
        final: bool = False,
    ) -> None:
        attempts = row["attempts"] if counted else row["attempts"] + 1
        message = describe_failure(exc)
        fields: dict[str, Any] = {"attempts": attempts, "last_error": message}
        if final or attempts >= row["max_attempts"]:
            fields.update(status="failed", completed_at=time.time())
        else:
            fields["status"] = "pending"
            scheduler = self.deployment.scheduler
            when = scheduler.clock() + backoff(attempts)
            await scheduler.schedule_system_in(writer, when, PROCESS_JOB, {"event": row["_id"]})
        await writer.system_writer().patch(row["_id"], fields)


async def replay(deployment: Deployment, event_id: str) -> None:
    """Process an event again now (whatever its status), with a fresh count of attempts."""

    async def again(writer: DatabaseWriter) -> None:
        system = writer.system_writer()
        row = await system.get(event_id)
        if row is None or not event_id or row.get("provider") is None:
            raise LookupError(f"No webhook event {event_id}")
        await system.patch(row["_id"], {"status": "pending", "attempts": 0, "last_error": None})
        scheduler = deployment.scheduler
        await scheduler.schedule_system_in(
            writer, scheduler.clock(), PROCESS_JOB, {"event": row["_id"]}
        )

    await deployment.database.transact(again, system=True)
