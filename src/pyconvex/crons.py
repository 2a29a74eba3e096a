"""Cron jobs: ``convex/crons.py`` defines ``crons = cron_jobs()`` and registers its jobs.

    from pyconvex import cron_jobs, internal

    crons = cron_jobs()
    crons.interval("sync stripe", internal.stripe.sync, minutes=10)
    crons.daily("digest", internal.mail.digest, {"kind": "daily"}, hour_utc=7, minute_utc=30)
    crons.cron("weekday report", "0 9 * * mon-fri", internal.reports.send)

Every time is UTC. A job runs a mutation (exactly once per run) or an action (at most once);
one run of a job at a time; runs missed while the deployment was down are skipped (and the
skip is logged), not caught up. See docs/crons.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import values
from .background.cronspec import CronSpec, CronSpecError

_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


@dataclass(frozen=True)
class Interval:
    """Every ``seconds``, from the previous *scheduled* time (the first run at deploy)."""

    seconds: int

    def __str__(self) -> str:
        return f"every {self.seconds} s"

    # Epoch seconds, not datetimes: a datetime keeps microseconds, and a run due at "now"
    # rounded up by half of one would not be due at now.
    def first(self, now: float) -> float:
        return now

    def following(self, scheduled: float) -> float:
        return scheduled + self.seconds


@dataclass(frozen=True)
class Calendar:
    """The minutes a cron spec names (hourly, daily, weekly, monthly and ``cron`` jobs)."""

    spec: CronSpec

    def __str__(self) -> str:
        return f"cron {self.spec.text}"

    def first(self, now: float) -> float:
        """The first minute of the spec at or after ``now``."""
        at = datetime.fromtimestamp(now, UTC)
        if at.second == 0 and at.microsecond == 0 and self.spec.matches(at):
            return now
        return self.spec.next_after(at).timestamp()

    def following(self, scheduled: float) -> float:
        return self.spec.next_after(datetime.fromtimestamp(scheduled, UTC)).timestamp()


Schedule = Interval | Calendar


@dataclass(frozen=True)
class CronJob:
    name: str
    target: Any = field(compare=False)  # as registered: a reference, a path or a function
    args: dict[str, Any]
    schedule: Schedule
    defined_at: str = field(compare=False)  # "convex/crons.py:12", for errors
    #: ``"module:function"``, filled in once the whole functions folder is loaded (a function
    #: object imported into crons.py has no path before its own module is collected).
    function: str = ""


class CronDefinitionError(ValueError):
    """A cron job that cannot be registered (named with its file and line)."""


def _whole(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CronDefinitionError(
            f"{what} must be a whole number from {low} to {high}, not {value!r}"
        )
    return value


class CronJobs:
    """The jobs of ``convex/crons.py``, by name (see :func:`cron_jobs`)."""

    def __init__(self) -> None:
        self.jobs: dict[str, CronJob] = {}

    def _add(self, name: Any, ref: Any, args: Any, schedule: Schedule, where: str) -> None:
        try:
            if not isinstance(name, str) or not name or not all(" " <= c <= "~" for c in name):
                raise CronDefinitionError(
                    f"A cron job's name must be printable ASCII text, not {name!r}"
                )
            if name in self.jobs:
                raise CronDefinitionError(
                    f"Cron identifier registered twice: {name!r} (first at "
                    f"{self.jobs[name].defined_at})"
                )
            args = {} if args is None else args
            if not isinstance(args, dict):
                raise CronDefinitionError(
                    f"A cron job's args must be a dict, not {type(args).__name__}"
                )
            try:
                values.check_value(args, what=f"The args of cron job {name!r}")
            except ValueError as exc:
                raise CronDefinitionError(str(exc)) from None
        except CronDefinitionError as exc:
            raise CronDefinitionError(f"{where}: {exc}") from None
        self.jobs[name] = CronJob(name, ref, args, schedule, where)

    def interval(
        self,
        name: str,
        ref: Any,
        args: dict[str, Any] | None = None,
        *,
        seconds: int | None = None,
        minutes: int | None = None,
        hours: int | None = None,
    ) -> None:
        """Run ``ref`` at deploy, then every interval after the previous scheduled run."""
        where = _caller()
        given = {"seconds": seconds, "minutes": minutes, "hours": hours}
        chosen = [(unit, n) for unit, n in given.items() if n is not None]
        if len(chosen) != 1:
            raise CronDefinitionError(
                f"{where}: crons.interval({name!r}) takes exactly one of seconds=, "
                "minutes= or hours="
            )
        unit, n = chosen[0]
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise CronDefinitionError(
                f"{where}: crons.interval({name!r}): {unit} must be a positive whole "
                f"number, not {n!r}"
            )
        seconds = n * {"seconds": 1, "minutes": 60, "hours": 3600}[unit]
        self._add(name, ref, args, Interval(seconds), where)

    def hourly(
        self, name: str, ref: Any, args: dict[str, Any] | None = None, *, minute_utc: int = 0
    ) -> None:
        """Every hour at ``minute_utc``."""
        where = _caller()
        self._calendar(name, ref, args, f"{minute_utc} * * * *", where, minute_utc=minute_utc)

    def daily(
        self,
        name: str,
        ref: Any,
        args: dict[str, Any] | None = None,
        *,
        hour_utc: int,
        minute_utc: int = 0,
    ) -> None:
        """Every day at ``hour_utc:minute_utc``."""
        where = _caller()
        spec = f"{minute_utc} {hour_utc} * * *"
        self._calendar(name, ref, args, spec, where, minute_utc=minute_utc, hour_utc=hour_utc)

    def weekly(
        self,
        name: str,
        ref: Any,
        args: dict[str, Any] | None = None,
        *,
        day_of_week: str = "monday",
        hour_utc: int,
        minute_utc: int = 0,
    ) -> None:
        """Every week on ``day_of_week`` (``"sunday"`` .. ``"saturday"``) at the time given."""
        where = _caller()
        if day_of_week not in _DAYS:
            raise CronDefinitionError(
                f"{where}: crons.weekly({name!r}): day_of_week must be one of "
                f"{', '.join(_DAYS)}, not {day_of_week!r}"
            )
        self._calendar(
            name,
            ref,
            args,
            f"{minute_utc} {hour_utc} * * {_DAYS.index(day_of_week)}",
            where,
            minute_utc=minute_utc,
            hour_utc=hour_utc,
        )

    def monthly(
        self,
        name: str,
        ref: Any,
        args: dict[str, Any] | None = None,
        *,
        day: int,
        hour_utc: int,
        minute_utc: int = 0,
    ) -> None:
        """Every month on ``day`` (29-31 skip the months without it) at the time given."""
        self._calendar(
            name,
            ref,
            args,
            f"{minute_utc} {hour_utc} {day} * *",
            _caller(),
            minute_utc=minute_utc,
            hour_utc=hour_utc,
            day=day,
        )

    def cron(self, name: str, spec: str, ref: Any, args: dict[str, Any] | None = None) -> None:
        """At the minutes of a Unix cron spec, ``"m h dom mon dow"`` (UTC; Sunday is 0)."""
        where = _caller()
        try:
            parsed = CronSpec.parse(spec)
        except CronSpecError as exc:
            raise CronDefinitionError(f"{where}: {exc}") from None
        self._add(name, ref, args, Calendar(parsed), where)

    def _calendar(
        self, name: str, ref: Any, args: Any, spec: str, where: str, **fields: Any
    ) -> None:
        limits = {"minute_utc": (0, 59), "hour_utc": (0, 23), "day": (1, 31)}
        try:
            for what, value in fields.items():
                _whole(value, what, *limits[what])
        except CronDefinitionError as exc:
            raise CronDefinitionError(f"{where}: cron job {name!r}: {exc}") from None
        self._add(name, ref, args, Calendar(CronSpec.parse(spec)), where)


def _caller() -> str:
    """Where the job was registered: the line of ``convex/crons.py`` that called us."""
    frame = sys._getframe(2)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def cron_jobs() -> CronJobs:
    """A new set of cron jobs, for ``crons = cron_jobs()`` in ``convex/crons.py``."""
    return CronJobs()
