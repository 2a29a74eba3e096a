"""Cron schedules: Unix cron specs (``"m h dom mon dow"``, UTC) and when they fire next.

Every calendar form of ``convex/crons.py`` (hourly, daily, weekly, monthly) is a spec too;
only ``interval`` is not.

>>> from datetime import datetime, UTC
>>> spec = CronSpec.parse("30 9 * * mon-fri")
>>> spec.next_after(datetime(2026, 12, 4, 9, 30, tzinfo=UTC))   # a Friday
datetime.datetime(2026, 12, 7, 9, 30, tzinfo=datetime.timezone.utc)

Fields take ``*``, numbers, ranges ``a-b``, steps ``*/n``, ``a-b/n`` and ``a/n``, lists
``a,b``, and names (``jan``-``dec``, ``sun``-``sat``); Sunday is 0 (7 also). When both
day of month and day of week are restricted, a day matching either fires (Unix cron's rule).
A spec that can never fire (``"0 0 30 2 *"``) is refused when it is parsed.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names for the values from lowest on)
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
# The longest a valid spec waits: Feb 29 on a Monday recurs within 28 years (no 2100 in reach).
_HORIZON_DAYS = 366 * 29


class CronSpecError(ValueError):
    """A cron spec that cannot be parsed, or that never fires."""


@dataclass(frozen=True)
class CronSpec:
    """A parsed spec: the values each field allows."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # the day-of-month field is "*"
    any_weekday: bool  # the day-of-week field is "*"

    @classmethod
    def parse(cls, text: str) -> CronSpec:
        if not isinstance(text, str):
            raise CronSpecError(f"A cron spec is a string like '0 9 * * mon', not {text!r}")
        fields = text.split()
        if len(fields) != 5:
            raise CronSpecError(
                f"The cron spec {text!r} needs 5 fields (minute hour day-of-month month "
                f"day-of-week), not {len(fields)}"
            )
        values = [_field(text, raw, *spec) for raw, spec in zip(fields, _FIELDS, strict=True)]
        weekdays = frozenset(day % 7 for day in values[4])
        spec = cls(
            text=text,
            minutes=values[0],
            hours=values[1],
            days=values[2],
            months=values[3],
            weekdays=weekdays,
            any_day=fields[2] == "*",
            any_weekday=fields[4] == "*",
        )
        if not spec._some_day_fires():
            raise CronSpecError(f"The cron spec {text!r} will never match any time")
        return spec

    def _some_day_fires(self) -> bool:
        if not self.any_weekday:
            return True  # a weekday comes round in every month
        # Only days of the month count: one of them must exist in one of the months.
        return any(day <= _LONGEST[month] for month in self.months for day in self.days)

    def day_fires(self, year: int, month: int, day: int) -> bool:
        if month not in self.months:
            return False
        weekday = (calendar.weekday(year, month, day) + 1) % 7  # Monday 0 -> Sunday 0
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return weekday in self.weekdays
        if self.any_weekday:
            return day in self.days
        return day in self.days or weekday in self.weekdays

    def matches(self, when: datetime) -> bool:
        """Whether the spec fires in the minute of ``when`` (UTC)."""
        when = when.astimezone(UTC)
        return (
            when.minute in self.minutes
            and when.hour in self.hours
            and self.day_fires(when.year, when.month, when.day)
        )

    def next_after(self, when: datetime) -> datetime:
        """The first minute the spec fires strictly after ``when`` (aware, UTC)."""
        start = when.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        minutes, hours = sorted(self.minutes), sorted(self.hours)
        day = start.date()
        for offset in range(_HORIZON_DAYS):
            current = day + timedelta(days=offset)
            if not self.day_fires(current.year, current.month, current.day):
                continue
            for hour in hours:
                if offset == 0 and hour < start.hour:
                    continue
                for minute in minutes:
                    if offset == 0 and hour == start.hour and minute < start.minute:
                        continue
                    return datetime(
                        current.year, current.month, current.day, hour, minute, tzinfo=UTC
                    )
        raise CronSpecError(f"The cron spec {self.text!r} will never match any time")


_LONGEST = {month: calendar.monthrange(2024, month)[1] for month in range(1, 13)}  # leap year


def _field(
    text: str, raw: str, name: str, low: int, high: int, names: tuple[str, ...]
) -> frozenset[int]:
    found: set[int] = set()
    for part in raw.split(","):
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronSpecError(
                    f"The cron spec {text!r}: {name} step {step_text!r} is not a positive number"
                )
            step = int(step_text)
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = (
                _value(text, a, name, low, high, names),
                _value(text, b, name, low, high, names),
            )
            if first > last:
                raise CronSpecError(f"The cron spec {text!r}: {name} range {body!r} runs backwards")
        else:
            first = _value(text, body, name, low, high, names)
            last = high if step_text else first  # "5/15": from 5 to the end, every 15
        found.update(range(first, last + 1, step))
    return frozenset(found)


def _value(text: str, raw: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    lower = raw.lower()
    if names and lower in names:
        return names.index(lower) + low
    if raw.isascii() and raw.isdigit() and low <= int(raw) <= high:
        return int(raw)
    allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
    raise CronSpecError(f"The cron spec {text!r}: {name} {raw!r} is not {allowed}")
