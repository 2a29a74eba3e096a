"""Cron specs checked against an independent cron library (croniter, test-only) over a year."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from croniter import croniter

from pyconvex.background.cronspec import CronSpec, CronSpecError

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2027, 1, 1, tzinfo=UTC)

# Every field form: ranges, steps, lists, names, Sunday as 0 and 7, and both day fields set.
SPECS = [
    "0 * * * *",
    "15 9 * * *",
    "0 12 * * mon",
    "30 6 1 * *",
    "0 0 31 * *",  # only the months that have a 31st
    "0 0 29 2 *",  # only in leap years: none in 2026
    "*/7 */5 * * *",
    "5-20/5 8-17 * * 1-5",
    "0 22 * * SUN,sat",
    "0 0 * * 7",
    "45 23 1,15 jan-mar,oct *",
    "0 8 13 * fri",  # the 13th, or any Friday
    "10/20 3 * * *",
    "0 0 1 1 *",
]


def fire_times(spec: CronSpec, start: datetime, end: datetime) -> list[datetime]:
    found, when = [], start - timedelta(minutes=1)
    while (when := spec.next_after(when)) < end:
        found.append(when)
    return found


def croniter_times(text: str, start: datetime, end: datetime) -> list[datetime]:
    found, it = [], croniter(text, start - timedelta(minutes=1))
    while (when := it.get_next(datetime)) < end:
        found.append(when.astimezone(UTC))
    return found


@pytest.mark.parametrize("text", SPECS)
def test_a_year_of_fire_times_agrees_with_croniter(text: str) -> None:
    spec = CronSpec.parse(text)
    expected = croniter_times(text, YEAR_START, YEAR_END)
    assert fire_times(spec, YEAR_START, YEAR_END) == expected
    assert all(spec.matches(when) for when in expected[:200])


def test_every_minute_of_a_year_matches_as_croniter_says() -> None:
    # Minute by minute for the whole year, on a spec with every kind of field.
    text = "*/15 6-18/3 1,10-12 * mon,wed"
    spec = CronSpec.parse(text)
    fires = set(croniter_times(text, YEAR_START, YEAR_END))
    when = YEAR_START
    while when < YEAR_END:
        assert spec.matches(when) == (when in fires), when
        when += timedelta(minutes=1)


def test_the_next_run_is_strictly_later_and_seconds_do_not_count() -> None:
    spec = CronSpec.parse("30 9 * * *")
    at = datetime(2026, 3, 1, 9, 30, 0, tzinfo=UTC)
    assert spec.next_after(at) == at + timedelta(days=1)
    assert spec.next_after(at - timedelta(seconds=1)) == at
    assert spec.next_after(at + timedelta(seconds=59)) == at + timedelta(days=1)


def test_feb_29_waits_for_a_leap_year() -> None:
    spec = CronSpec.parse("0 0 29 2 *")
    assert spec.next_after(YEAR_START) == datetime(2028, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0 30 2 *", "will never match any time"),
        ("0 0 31 4,6,9,11 *", "will never match any time"),
        ("0 0 * *", "needs 5 fields"),
        ("60 * * * *", "minute '60' is not 0-59"),
        ("* 24 * * *", "hour '24' is not 0-23"),
        ("* * 0 * *", "day of month '0' is not 1-31"),
        ("* * * 13 *", "month '13' is not 1-12 or jan-dec"),
        ("* * * * 8", "day of week '8' is not 0-7 or sun-sat"),
        ("*/0 * * * *", "step '0' is not a positive number"),
        ("5-1 * * * *", "range '5-1' runs backwards"),
        ("0 0 L * *", "day of month 'L' is not 1-31"),
    ],
)
def test_a_bad_spec_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(CronSpecError) as refused:
        CronSpec.parse(text)
    assert message in str(refused.value)
