"""PyPI ``convex`` against a pyconvex server: run by tests/test_sync_clients_python.py in a
virtualenv of its own (``python python_client.py URL [JWT]``).

Each step prints one JSON line: ``{"step": name, "ok": true, "value": <Convex JSON>}`` or
``{"step": name, "ok": false, "kind": <exception class>, "error": str, "data"?: ...}``.
The client's calls block while it cannot reach the server, so each is bounded by an alarm.
"""

import json
import os
import signal
import sys

from convex import ConvexClient, ConvexError, ConvexInt64, convex_to_json
from convex.http_client import ConvexHttpClient

URL = sys.argv[1]
TOKEN = sys.argv[2] if len(sys.argv) > 2 else None


class TimedOut(Exception):
    pass


def on_alarm(signum, frame):
    raise TimedOut("no answer within 30 s")


signal.signal(signal.SIGALRM, on_alarm)


def data_json(data):
    try:
        return convex_to_json(data)
    except ValueError:  # the HTTP client hands the error data over as JSON, undecoded
        return data


def step(name, call):
    signal.alarm(30)
    try:
        line = {"step": name, "ok": True, "value": convex_to_json(call())}
    except ConvexError as exc:
        line = {
            "step": name,
            "ok": False,
            "kind": "ConvexError",
            "error": str(exc),
            "data": data_json(exc.data),
        }
    except Exception as exc:
        line = {"step": name, "ok": False, "kind": type(exc).__name__, "error": str(exc)}
    finally:
        signal.alarm(0)
    print(json.dumps(line), flush=True)


client = ConvexClient(URL)
other = ConvexClient(URL)
if TOKEN:
    client.set_auth(TOKEN)
    step("whoami", lambda: client.query("values:whoami"))
step("query", lambda: client.query("messages:list", {"channel": "py"}))
step("mutation", lambda: client.mutation("messages:send", {"channel": "py", "body": "one"}))
step("after mutation", lambda: client.query("messages:list", {"channel": "py"}))
step("int64 mutation", lambda: client.mutation("counters:increment", {"name": "py"}))
step("int64 query", lambda: client.query("counters:get", {"name": "py"}))
step("int64 argument", lambda: client.query("values:numbers", {"n": ConvexInt64(2**60), "x": 2}))
step("float for int64", lambda: client.query("values:numbers", {"n": 2.0, "x": 2}))
step("action", lambda: client.action("values:shout", {"text": "py"}))
step("convex error", lambda: client.mutation("values:refuses"))
step("plain error", lambda: client.query("values:breaks"))
step("samples", lambda: client.query("values:samples"))

subscription = client.subscribe("messages:list", {"channel": "py-live"})
step("subscribe", lambda: next(subscription))
step(
    "other client writes",
    lambda: other.mutation("messages:send", {"channel": "py-live", "body": "hi"}),
)
step("next value", lambda: next(subscription))
subscription.unsubscribe()

legacy = ConvexHttpClient(URL)
step("http query", lambda: legacy.query("messages:list", {"channel": "py"}))
step("http mutation", lambda: legacy.mutation("counters:increment", {"name": "py"}))
step("http action", lambda: legacy.action("values:shout", {"text": "http"}))
step("http count", lambda: legacy.query("messages:count", {"channel": "py"}))
step("http convex error", lambda: legacy.query("values:fails"))
os._exit(0)  # the client's runtime can keep the process alive
