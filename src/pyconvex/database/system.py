"""System tables: the deployment's own state, kept as ordinary documents.

Names start with ``_``. User code reads them through ``ctx.db.system`` and
never writes them; pyconvex writes them with ``system=True`` transactions.
Their indexes are declared here, once, and kept in line by ``Database.setup``
exactly like the indexes of the user's schema.
"""

from __future__ import annotations

from ..schema import TableDefinition, define_table
from ..validators import v

ENV_VARS = "_env_vars"
STORAGE = "_storage"
UPLOAD_TOKENS = "_upload_tokens"
SCHEDULED_FUNCTIONS = "_scheduled_functions"
WEBHOOK_EVENTS = "_webhook_events"
# Providers whose webhook handlers are paused (pyconvex webhooks pause PROVIDER).
WEBHOOK_PAUSES = "_webhook_pauses"
API_KEYS = "_api_keys"
# A sync session's mutations that ran, so that one sent again after a reconnect runs once.
SESSION_REQUESTS = "_session_requests"
# convex/crons.py's jobs (spec, next run, whether one is running) and their last runs.
CRON_JOBS = "_cron_jobs"
CRON_JOB_LOGS = "_cron_job_logs"
# pyconvex.rate_limit's state: one row per (limit, key, shard).
RATE_LIMITS = "_rate_limits"
# pyconvex.workpool's items: one row per enqueued function, kept a day after it finished.
WORKPOOL_WORK = "_workpool_work"
# The Health page's counters: one document per process and 10-second bucket (metrics.py).
METRICS = "_metrics"

_STATE = v.object(
    {
        "kind": v.union(
            v.literal("pending"),
            v.literal("in_progress"),
            v.literal("success"),
            v.literal("failed"),
            v.literal("canceled"),
        ),
        "error": v.optional(v.string()),
    }
)

SYSTEM_TABLES: dict[str, TableDefinition] = {
    ENV_VARS: define_table({"name": v.string(), "value": v.string()}).index("by_name", ["name"]),
    STORAGE: define_table(
        {
            "blob": v.string(),
            "sha256": v.string(),
            "size": v.int64(),
            "content_type": v.optional(v.string()),
        }
    ),
    UPLOAD_TOKENS: define_table({"expires_at": v.float64()}),
    SCHEDULED_FUNCTIONS: define_table(
        {
            "name": v.string(),
            "args": v.any(),
            "scheduled_time": v.float64(),
            "completed_time": v.optional(v.float64()),
            "state": _STATE,
            # the worker (its lease) running an in-progress action: a dead one's are recovered
            "claimed_by": v.optional(v.string()),
        }
    ).index("by_state", ["state.kind", "scheduled_time"]),
    WEBHOOK_EVENTS: define_table(
        {
            "provider": v.string(),
            "event_id": v.string(),
            "type": v.optional(v.string()),
            "timestamp": v.optional(v.float64()),
            "received_at": v.float64(),
            # a JSON list of [name, value] pairs (a header name is any HTTP token, and "$x"
            # is no field name; one string is also far cheaper to check on every write);
            # rows recorded by pyconvex 0.1.0 hold a record
            "headers": v.union(v.string(), v.record(v.string(), v.string())),
            "body": v.bytes(),  # empty when the body is in file storage (body_file)
            "body_file": v.optional(v.string()),  # the _storage id of a large body
            "handler": v.string(),
            "status": v.union(
                v.literal("pending"),
                v.literal("processing"),
                v.literal("succeeded"),
                v.literal("failed"),
            ),
            "attempts": v.int64(),
            "max_attempts": v.int64(),
            # while pending: when to (re)try (the row is its own queue entry); once
            # succeeded: when it is purged (retention_days after)
            "next_attempt_at": v.optional(v.float64()),
            "claimed_by": v.optional(v.string()),  # the worker running its action handler
            "last_error": v.optional(v.string()),
            "completed_at": v.optional(v.float64()),
            # the receiver's path, and its throttles: handlers of the endpoint at once, and
            # handler runs per period ({"count", "seconds"})
            "endpoint": v.optional(v.string()),
            "max_parallelism": v.optional(v.int64()),
            "rate": v.optional(v.object({"count": v.float64(), "seconds": v.float64()})),
            "retention_days": v.optional(v.float64()),
        }
    )
    .index("by_event", ["provider", "event_id"])
    # each endpoint's events in their due order, per status: the queue's lanes (one index
    # for all that the queue, its purge and the listings ask, as each costs every write)
    .index("by_endpoint", ["status", "endpoint", "next_attempt_at"]),
    WEBHOOK_PAUSES: define_table({"provider": v.string(), "paused_at": v.float64()}).index(
        "by_provider", ["provider"]
    ),
    API_KEYS: define_table(
        {
            "owner": v.string(),
            "name": v.string(),
            "scopes": v.array(v.string()),
            "hash": v.string(),  # sha256 of the key; the key itself is never stored
            "prefix": v.string(),  # its first characters, to tell keys apart in a list
            "last_used_at": v.optional(v.float64()),
            "revoked_at": v.optional(v.float64()),
        }
    )
    .index("by_hash", ["hash"])
    .index("by_owner", ["owner"]),
    SESSION_REQUESTS: define_table(
        {
            "session_id": v.string(),
            "request_id": v.float64(),
            # the result and log lines as sent (JSON); None if too large to keep
            "outcome": v.union(v.bytes(), v.null()),
        }
    ).index("by_request", ["session_id", "request_id"]),
    METRICS: define_table(
        {
            "process": v.string(),
            "start": v.float64(),
            "requests": v.object({"api": v.float64(), "site": v.float64()}),
            "functions": v.array(
                v.object(
                    {
                        "name": v.string(),
                        "kind": v.string(),
                        "calls": v.float64(),
                        "errors": v.float64(),
                        # (bucket, count) pairs of metrics.py's latency buckets, packed
                        "histogram": v.bytes(),
                    }
                )
            ),
            # every call of the bucket, all functions together (the latency chart)
            "latency": v.optional(v.bytes()),
            "scheduler_lag": v.float64(),
            "scheduler_backlog": v.float64(),
            "webhook_backlog": v.float64(),
        }
    )
    .index("by_start", ["start"])
    .index("by_process", ["process", "start"]),
    CRON_JOBS: define_table(
        {
            "name": v.string(),
            "function": v.string(),
            "args": v.any(),
            "schedule": v.string(),  # "every 600 s" or "cron 0 9 * * *"
            "next_ts": v.float64(),  # when the next run is due (while running: this one's)
            "state": v.union(v.literal("idle"), v.literal("running")),
            "claimed_by": v.optional(v.string()),  # the worker running its action
        }
    )
    .index("by_name", ["name"])
    .index("by_due", ["state", "next_ts"]),
    CRON_JOB_LOGS: define_table(
        {
            "name": v.string(),
            "scheduled": v.float64(),
            "finished": v.float64(),
            "status": v.union(v.literal("success"), v.literal("failed"), v.literal("skipped")),
            "result": v.optional(v.string()),  # JSON, cut at 1,000 characters
            "error": v.optional(v.string()),
            "log_lines": v.array(v.string()),  # at most 1,000 bytes in all
            "skipped": v.optional(v.float64()),  # how many runs a "skipped" row stands for
        }
    ).index("by_name", ["name", "scheduled"]),
    WORKPOOL_WORK: define_table(
        {
            "pool": v.string(),
            "function": v.string(),
            "args": v.any(),
            # "completing": its result is in, its on_complete still to run
            "status": v.union(
                v.literal("pending"),
                v.literal("running"),
                v.literal("completing"),
                v.literal("finished"),
            ),
            # pending: when to (re)try; completing and finished: when it finished
            "next_attempt_at": v.float64(),
            "attempts": v.int64(),
            "max_parallelism": v.int64(),
            "retry": v.optional(v.any()),  # the RetryPolicy of an action, as a dict
            "on_complete": v.optional(v.string()),
            "context": v.optional(v.any()),
            "result": v.optional(v.any()),
            "last_error": v.optional(v.string()),
            "canceled": v.optional(v.boolean()),
            "claimed_by": v.optional(v.string()),  # the worker running its action
        }
    )
    .index("by_due", ["status", "next_attempt_at"])
    .index("by_lane", ["status", "pool", "next_attempt_at"]),
    RATE_LIMITS: define_table(
        {
            "name": v.string(),
            "key": v.union(v.string(), v.null()),
            "shard": v.float64(),
            "value": v.float64(),
            "ts": v.float64(),
        }
    ).index("by_key", ["name", "key", "shard"]),
}
