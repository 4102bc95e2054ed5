"""Billing period arithmetic: pure functions on aware datetimes.

A billing period is a calendar month in the account's timezone unless the
tariff's `billing_period` says otherwise: "week" (from Monday), "day", or a
short fixed length "PT<n>S", "PT<n>M", "PT<n>H" (aligned to the Unix epoch,
meant for tests and demos). Calendar periods run from local midnight to local
midnight, so a day can be 23 or 25 hours long across a DST change.

An account whose period was closed early (POST close-period) has its next
period start at that moment: `closed_until` cuts the calendar period.
"""

import math
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

CALENDAR = ("month", "week", "day")
# Used with fullmatch only (`$` also matches before a final newline); ASCII digits.
FIXED = re.compile(r"PT([1-9][0-9]{0,6})([SMH])")
SECONDS = {"S": 1, "M": 60, "H": 3600}


def billing_period_problem(billing_period: str) -> str | None:
    """Why `billing_period` is not one Meterline knows, or None."""
    if billing_period in CALENDAR or FIXED.fullmatch(billing_period):
        return None
    return 'must be "month", "week", "day" or a fixed length such as "PT30S", "PT5M", "PT1H"'


def calendar_bounds(
    moment: datetime, *, timezone: str, billing_period: str
) -> tuple[datetime, datetime]:
    """The [start, end) of the calendar (or fixed-length) period holding `moment`, in UTC.

    UTC because Python compares and subtracts two datetimes of one zone by
    their wall clocks, which is wrong across a DST change.
    """
    fixed = FIXED.fullmatch(billing_period)
    if fixed:
        length = int(fixed[1]) * SECONDS[fixed[2]]
        start = math.floor(moment.timestamp() / length) * length
        return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start + length, UTC)
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    if billing_period == "month":
        start = datetime(local.year, local.month, 1, tzinfo=zone)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        return start.astimezone(UTC), datetime(year, month, 1, tzinfo=zone).astimezone(UTC)
    if billing_period not in ("week", "day"):
        raise ValueError(f"unknown billing period {billing_period!r}")
    week = billing_period == "week"
    day = local.date() - timedelta(days=local.weekday() if week else 0)
    days = 7 if week else 1
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end_day = day + timedelta(days=days)
    end = datetime(end_day.year, end_day.month, end_day.day, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def period_bounds(
    moment: datetime,
    *,
    timezone: str,
    billing_period: str = "month",
    closed_until: datetime | None = None,
) -> tuple[datetime, datetime]:
    """The [start, end) of the billing period holding `moment` (not before `closed_until`)."""
    start, end = calendar_bounds(moment, timezone=timezone, billing_period=billing_period)
    if closed_until is not None and start < closed_until <= moment:
        start = closed_until
    return start, end


def isoformat(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as the contract shows timestamps."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
