"""Who may sign the bearer tokens /api/user accepts.

Set AUTH_ISSUER_URL (your Clerk Frontend API URL, say https://clerk.your-app.com) before
starting the app; without it no token is accepted and /api/user answers 403 to every token.
"""

import os

_issuer = os.environ.get("AUTH_ISSUER_URL")
providers = (
    [{"domain": _issuer, "application_id": os.environ.get("AUTH_APPLICATION_ID", "convex")}]
    if _issuer
    else []
)
