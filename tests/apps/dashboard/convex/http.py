from pyconvex import HttpRouter, internal

http = HttpRouter()

http.webhook(
    path="/hooks/github",
    provider="github",
    secret_env="GITHUB_SECRET",
    handler=internal.hooks.on_push,
    max_attempts=1,
)
