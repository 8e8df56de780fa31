"""EventBridge Scheduler's schedule expressions: ``at(...)``, ``rate(...)`` and ``cron(...)``.

``parse`` checks an expression and returns a ``Schedule`` whose ``next_after(t)`` gives the first
occurrence strictly after ``t`` (UTC datetimes), evaluated in the schedule's time zone. Cron has
AWS's six fields (minutes hours day-of-month month day-of-week year) and rules: exactly one of the
day fields is ``?``; ``L`` (last day of month / last weekday N of month as ``NL``), ``W`` (nearest
weekday, ``LW``), ``#`` (Nth weekday, ``6#3``); day-of-week 1-7 is SUN-SAT.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from lambdad.http.errors import ValidationException

_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\(([^()]*)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {d: i + 1 for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
#: How far ahead a cron search looks before deciding the expression never fires again.
_HORIZON_DAYS = 366 * 5


class Schedule(Protocol):
    @property
    def one_time(self) -> bool: ...

    def next_after(self, moment: datetime) -> datetime | None: ...


def invalid(expression: str) -> ValidationException:
    return ValidationException(f"Invalid Schedule Expression {expression}.")


def parse(expression: str, timezone: str = "UTC", anchor: datetime | None = None) -> Schedule:
    """Parse ``expression``; ``anchor`` (UTC) is where a rate schedule's intervals start."""
    zone = zone_info(timezone)
    text = expression.strip()
    if found := _AT.match(text):
        try:
            local = datetime.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise invalid(expression) from None
        return At(local.replace(tzinfo=zone).astimezone(UTC))
    if found := _RATE.match(text):
        value = int(found.group(1))
        if value < 1:
            raise invalid(expression)
        unit = found.group(2).rstrip("s")
        return Rate(timedelta(seconds=value * _UNITS[unit]), anchor or datetime.now(UTC))
    if found := _CRON.match(text):
        return Cron.parse(found.group(1), zone, expression)
    raise invalid(expression)


def zone_info(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        raise ValidationException(f"Invalid timezone {name}.") from None


@dataclass(frozen=True)
class At:
    when: datetime
    one_time: bool = True

    def next_after(self, moment: datetime) -> datetime | None:
        return self.when if self.when > moment else None


@dataclass(frozen=True)
class Rate:
    period: timedelta
    anchor: datetime
    one_time: bool = False

    def next_after(self, moment: datetime) -> datetime | None:
        if moment < self.anchor:
            return self.anchor + self.period
        steps = (moment - self.anchor) // self.period + 1
        return self.anchor + steps * self.period


@dataclass(frozen=True)
class DaySpec:
    """A day-of-month or day-of-week field: plain values plus AWS's L, W and # forms."""

    values: frozenset[int]
    last: bool = False  # L (day of month)
    last_weekday: bool = False  # LW
    nearest_weekday: int | None = None  # 15W
    last_of_week: int | None = None  # 6L: last Friday
    nth: tuple[int, int] | None = None  # 6#3: (weekday, n)
    any: bool = False  # ?

    def matches_dom(self, day: date) -> bool:
        last = calendar.monthrange(day.year, day.month)[1]
        if self.any or day.day in self.values or (self.last and day.day == last):
            return True
        if self.last_weekday:
            return day == _nearest_weekday(date(day.year, day.month, last))
        if self.nearest_weekday is not None and self.nearest_weekday <= last:
            return day == _nearest_weekday(date(day.year, day.month, self.nearest_weekday))
        return False

    def matches_dow(self, day: date) -> bool:
        weekday = (day.isoweekday() % 7) + 1  # SUN=1 .. SAT=7
        if self.any or weekday in self.values:
            return True
        if self.last_of_week is not None and weekday == self.last_of_week:
            return day.day + 7 > calendar.monthrange(day.year, day.month)[1]
        if self.nth is not None and weekday == self.nth[0]:
            return (day.day - 1) // 7 + 1 == self.nth[1]
        return False


def _nearest_weekday(day: date) -> date:
    """AWS's W: the weekday nearest ``day`` without leaving its month."""
    if day.weekday() == 5:
        return day - timedelta(days=1) if day.day > 1 else day + timedelta(days=2)
    if day.weekday() == 6:
        last = calendar.monthrange(day.year, day.month)[1]
        return day + timedelta(days=1) if day.day < last else day - timedelta(days=2)
    return day


@dataclass(frozen=True)
class Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    dom: DaySpec
    months: frozenset[int]
    dow: DaySpec
    years: frozenset[int]
    zone: ZoneInfo
    one_time: bool = False

    @classmethod
    def parse(cls, body: str, zone: ZoneInfo, expression: str) -> Cron:
        fields = body.split()
        if len(fields) != 6:
            raise invalid(expression)
        try:
            minutes = _field(fields[0], 0, 59, {})
            hours = _field(fields[1], 0, 23, {})
            dom = _dom(fields[2])
            months = _field(fields[3], 1, 12, _MONTHS)
            dow = _dow(fields[4])
            years = _field(fields[5], 1970, 2199, {})
        except ValueError:
            raise invalid(expression) from None
        if (fields[2] == "?") == (fields[4] == "?"):  # exactly one of the day fields must be '?'
            raise invalid(expression)
        return cls(tuple(sorted(minutes)), tuple(sorted(hours)), dom, frozenset(months), dow,
                   frozenset(years), zone)  # fmt: skip

    def next_after(self, moment: datetime) -> datetime | None:
        local = moment.astimezone(self.zone)
        day = local.date()
        for _ in range(_HORIZON_DAYS):
            if day.year > 2199:
                return None
            if self._day_matches(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.zone)
                        utc = candidate.astimezone(UTC)
                        if utc > moment and _exists(candidate):
                            return utc
            day += timedelta(days=1)
        return None

    def _day_matches(self, day: date) -> bool:
        if day.year not in self.years or day.month not in self.months:
            return False
        return self.dom.matches_dom(day) and self.dow.matches_dow(day)


def _exists(local: datetime) -> bool:
    """False for wall-clock times skipped by a DST change (they never happen)."""
    round_trip = local.astimezone(UTC).astimezone(local.tzinfo)
    return round_trip.replace(tzinfo=None) == local.replace(tzinfo=None)


def _value(token: str, names: dict[str, int]) -> int:
    upper = token.upper()
    if upper in names:
        return names[upper]
    if not token.isdigit():
        raise ValueError(token)
    return int(token)


def _field(text: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1 or (step_text and not step_text.isdigit()):
            raise ValueError(part)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, names), _value(last, names)
        else:
            start = _value(base, names)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ValueError(part)
        out.update(range(start, end + 1, step))
    return out


def _dom(text: str) -> DaySpec:
    if text == "?":
        return DaySpec(frozenset(), any=True)
    if text == "L":
        return DaySpec(frozenset(), last=True)
    if text == "LW":
        return DaySpec(frozenset(), last_weekday=True)
    if text.endswith("W") and text[:-1].isdigit() and 1 <= int(text[:-1]) <= 31:
        return DaySpec(frozenset(), nearest_weekday=int(text[:-1]))
    values = _field(text, 1, 31, {})
    return DaySpec(frozenset(values), any=text == "*")


def _dow(text: str) -> DaySpec:
    if text == "?":
        return DaySpec(frozenset(), any=True)
    if text.endswith("L") and len(text) > 1:
        return DaySpec(frozenset(), last_of_week=_day_value(text[:-1]))
    if "#" in text:
        day, _, nth = text.partition("#")
        if not nth.isdigit() or not 1 <= int(nth) <= 5:
            raise ValueError(text)
        return DaySpec(frozenset(), nth=(_day_value(day), int(nth)))
    values = _field(text, 1, 7, _DAYS)
    return DaySpec(frozenset(values), any=text == "*")


def _day_value(token: str) -> int:
    value = _value(token, _DAYS)
    if not 1 <= value <= 7:
        raise ValueError(token)
    return value
