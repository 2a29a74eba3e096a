from pyconvex import HttpRouter, internal

http = HttpRouter()
http.webhook(
    path="/webhooks/stripe",
    provider="stripe",
    secret_env="STRIPE_WEBHOOK_SECRET",
    handler=internal.billing.on_event,
)
