from pyconvex import cron_jobs, internal

crons = cron_jobs()
crons.interval("every minute", internal.ticks.tick, {"job": "interval"}, minutes=1)
crons.hourly("hourly action", internal.ticks.remote, {"job": "hourly"}, minute_utc=15)
crons.cron("broken", "*/30 * * * *", internal.ticks.broken)
