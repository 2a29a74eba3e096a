from pyconvex import HttpRouter, internal

http = HttpRouter()
http.webhook(
    path="/hooks/stripe",
    provider="stripe",
    secret_env="STRIPE_SECRET",
    handler=internal.hooks.record,
    retention_days=1,
)
http.webhook(
    path="/hooks/slow",
    provider="github",
    secret_env="GITHUB_SECRET",
    handler=internal.hooks.slow,
    max_parallelism=2,
)
http.webhook(
    path="/hooks/rated",
    provider="github",
    secret_env="GITHUB_SECRET",
    handler=internal.hooks.record,
    rate=(3, 60),
)
http.webhook(
    path="/hooks/refuse",
    provider="github",
    secret_env="GITHUB_SECRET",
    handler=internal.hooks.refuse,
)
http.webhook(
    path="/hooks/broken",
    provider="github",
    secret_env="GITHUB_SECRET",
    handler=internal.hooks.broken,
    max_attempts=2,
)
http.webhook(
    path="/hooks/stripe-connect",
    provider="stripe",
    secret_env="STRIPE_SECRET",
    handler=internal.hooks.record,
)
