"""Background work: what runs without a request (cron schedules so far; the scheduler,
crons, work pools and webhook processing move here, given what they need by the
deployment that assembles them, which nothing here imports)."""
