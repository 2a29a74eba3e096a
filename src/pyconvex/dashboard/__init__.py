"""The dashboard: Health, Data, Functions, Logs, Schedules, Webhooks, Files, Environment.

Served on the API port under ``/dashboard/`` by ``pyconvex dev`` and ``serve``
(``serve --no-dashboard`` turns it off), signed in with the admin key. Pages
are rendered on the server (Jinja); htmx and uPlot, vendored in ``static/vendor``
with their licences, make them live. See docs/dashboard.md.
"""

from .app import dashboard_app

__all__ = ["dashboard_app"]
