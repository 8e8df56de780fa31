"""Schedule expressions and the firing arithmetic, with explicit clocks (no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lambdad.events.scheduler.expressions import parse
from lambdad.events.scheduler.firing import advance, first_due, occurrences
from lambdad.http.errors import ValidationException


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_at_fires_once_in_its_time_zone() -> None:
    schedule = parse("at(2030-01-02T03:04:05)", "Europe/Berlin")
    assert schedule.one_time
    assert schedule.next_after(utc(2030, 1, 1)) == utc(2030, 1, 2, 2, 4, 5)
    assert schedule.next_after(utc(2030, 1, 2, 2, 4, 5)) is None


def test_rate_counts_from_its_anchor() -> None:
    schedule = parse("rate(5 minutes)", anchor=utc(2030, 1, 1))
    assert occurrences(schedule, utc(2030, 1, 1), 2) == [utc(2030, 1, 1, 0, 5), utc(2030, 1, 1, 0, 10)]
    assert parse("rate(1 day)", anchor=utc(2030, 1, 1)).next_after(utc(2030, 1, 1, 1)) == utc(2030, 1, 2)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 10 * * ? *)", utc(2030, 1, 1, 11), utc(2030, 1, 2, 10)),
        ("cron(15 12 ? * MON-FRI *)", utc(2030, 1, 5), utc(2030, 1, 7, 12, 15)),  # Sat -> Mon
        ("cron(0/20 * * * ? *)", utc(2030, 1, 1, 0, 1), utc(2030, 1, 1, 0, 20)),
        ("cron(0 0 L * ? *)", utc(2030, 2, 1), utc(2030, 2, 28)),
        ("cron(0 0 LW * ? *)", utc(2030, 8, 1), utc(2030, 8, 30)),  # Aug 31 2030 is a Saturday
        ("cron(0 0 15W * ? *)", utc(2030, 6, 1), utc(2030, 6, 14)),  # Jun 15 2030 is a Saturday
        ("cron(0 0 ? * 6#3 *)", utc(2030, 1, 1), utc(2030, 1, 18)),  # third Friday
        ("cron(0 0 ? * 6L *)", utc(2030, 1, 1), utc(2030, 1, 25)),  # last Friday
        ("cron(30 8 1 JAN,JUL ? 2031)", utc(2030, 3, 1), utc(2031, 1, 1, 8, 30)),
    ],
)
def test_cron(expression: str, after: datetime, expected: datetime) -> None:
    assert parse(expression).next_after(after) == expected


def test_cron_in_a_time_zone_skips_the_missing_dst_hour() -> None:
    schedule = parse("cron(30 2 * * ? *)", "America/New_York")
    # 2030-03-10 02:30 does not exist in New York; the next run is the day after.
    assert schedule.next_after(utc(2030, 3, 9, 12)) == utc(2030, 3, 11, 6, 30)


def test_cron_ends_with_its_years() -> None:
    assert parse("cron(0 0 1 1 ? 2030)").next_after(utc(2030, 6, 1)) is None


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 10 * * * *)",  # both day fields given
        "cron(0 10 ? * ? *)",  # neither
        "cron(0 10 * *)",
        "cron(60 10 * * ? *)",
        "cron(0 10 ? * 8 *)",
        "rate(0 minutes)",
        "rate(5 weeks)",
        "at(2030-13-01T00:00:00)",
        "every 5 minutes",
    ],
)
def test_malformed_expressions(expression: str) -> None:
    with pytest.raises(ValidationException, match="Invalid Schedule Expression"):
        parse(expression)


def test_unknown_time_zone() -> None:
    with pytest.raises(ValidationException):
        parse("rate(1 hour)", "Mars/Olympus")


def test_advance_fires_each_occurrence_once() -> None:
    schedule = parse("rate(1 minute)", anchor=utc(2030, 1, 1))
    due = utc(2030, 1, 1, 0, 1).timestamp()
    fires, following = advance(schedule, due, due, due + 0.5, 900, None)
    assert fires == [due] and following == due + 60
    again, _ = advance(schedule, following, following, due + 0.6, 900, None)
    assert again == []


def test_advance_after_downtime_fires_within_grace_only() -> None:
    schedule = parse("rate(1 minute)", anchor=utc(2030, 1, 1))
    due = utc(2030, 1, 1, 0, 1).timestamp()
    now = due + 3600 * 24 + 30  # a day later
    fires, following = advance(schedule, due, due, now, 300, None)
    assert len(fires) == 5 and all(now - f <= 300 for f in fires)
    assert following is not None and following > now


def test_advance_completes_a_one_time_schedule_and_respects_end_date() -> None:
    at = parse("at(2030-01-01T00:00:00)")
    due = utc(2030, 1, 1).timestamp()
    assert advance(at, due, due, due + 1, 900, None) == ([due], None)
    rate = parse("rate(1 hour)", anchor=utc(2030, 1, 1))
    fires, following = advance(rate, due + 3600, due + 3600, due + 3601, 900, end=due + 7200)
    assert fires == [due + 3600] and following is None


def test_first_due_honours_start_date_and_state() -> None:
    doc = {"ScheduleExpression": "cron(0 12 * * ? *)", "StartDate": utc(2030, 5, 1).timestamp()}
    assert first_due(doc, utc(2030, 1, 1).timestamp()) == utc(2030, 5, 1, 12).timestamp()
    past = {"ScheduleExpression": "at(2020-01-01T00:00:00)"}
    assert first_due(past, utc(2030, 1, 1).timestamp()) is None
