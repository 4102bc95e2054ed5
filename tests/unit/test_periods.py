"""Billing period arithmetic: month ends, leap years, far timezones, DST, short periods."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from billing.periods import billing_period_problem, calendar_bounds, period_bounds


def bounds(moment, zone="UTC", billing_period="month", **kwargs):
    return period_bounds(moment, timezone=zone, billing_period=billing_period, **kwargs)


@pytest.mark.parametrize(
    ("moment", "start", "end"),
    [
        (
            datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC),
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2026, 2, 1, tzinfo=UTC),
        ),
        (
            datetime(2026, 12, 31, 12, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
        (
            datetime(2028, 2, 29, 12, tzinfo=UTC),
            datetime(2028, 2, 1, tzinfo=UTC),
            datetime(2028, 3, 1, tzinfo=UTC),
        ),
        (
            datetime(2026, 3, 1, tzinfo=UTC),
            datetime(2026, 3, 1, tzinfo=UTC),
            datetime(2026, 4, 1, tzinfo=UTC),
        ),
    ],
)
def test_calendar_months_in_utc(moment, start, end):
    assert bounds(moment) == (start, end)


@pytest.mark.parametrize(
    ("zone", "moment_utc", "local_month"),
    [
        # Kiritimati is UTC+14: 10:00 UTC on 31 January is already 1 February there.
        ("Pacific/Kiritimati", datetime(2026, 1, 31, 10, tzinfo=UTC), (2026, 2)),
        # Pago Pago is UTC-11: 05:00 UTC on 1 March is still 28 February there.
        ("Pacific/Pago_Pago", datetime(2026, 3, 1, 5, tzinfo=UTC), (2026, 2)),
        ("Europe/Berlin", datetime(2026, 10, 31, 23, 30, tzinfo=UTC), (2026, 11)),
    ],
)
def test_months_are_in_the_accounts_timezone(zone, moment_utc, local_month):
    start, end = bounds(moment_utc, zone)
    local = start.astimezone(ZoneInfo(zone))
    assert (local.year, local.month, local.day, local.hour) == (*local_month, 1, 0)
    assert start <= moment_utc < end


def test_a_month_with_a_dst_change_is_an_hour_short_or_long():
    start, end = bounds(datetime(2026, 3, 15, tzinfo=UTC), "Europe/Berlin")
    assert end - start == timedelta(days=31, hours=-1)
    start, end = bounds(datetime(2026, 10, 15, tzinfo=UTC), "Europe/Berlin")
    assert end - start == timedelta(days=31, hours=1)


def test_days_and_weeks_follow_local_midnight_across_dst():
    start, end = bounds(datetime(2026, 3, 29, 12, tzinfo=UTC), "Europe/Berlin", "day")
    assert end - start == timedelta(hours=23)
    start, end = bounds(datetime(2026, 11, 25, 12, tzinfo=UTC), "Europe/Berlin", "week")
    assert start.astimezone(ZoneInfo("Europe/Berlin")).weekday() == 0
    assert end - start == timedelta(days=7)


def test_fixed_length_periods_align_to_the_epoch():
    start, end = bounds(datetime(2026, 11, 23, 10, 0, 7, tzinfo=UTC), billing_period="PT5S")
    assert (start, end) == (
        datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC),
        datetime(2026, 11, 23, 10, 0, 10, tzinfo=UTC),
    )
    start, end = bounds(datetime(2026, 11, 23, 10, 7, tzinfo=UTC), billing_period="PT5M")
    assert end - start == timedelta(minutes=5) and start.minute == 5


def test_an_early_close_cuts_the_period_it_falls_in():
    cut = datetime(2026, 11, 10, 12, tzinfo=UTC)
    assert bounds(datetime(2026, 11, 20, tzinfo=UTC), closed_until=cut) == (
        cut,
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    # Later periods are whole again.
    assert bounds(datetime(2026, 12, 20, tzinfo=UTC), closed_until=cut)[0] == datetime(
        2026, 12, 1, tzinfo=UTC
    )


@pytest.mark.parametrize("value", ["month", "week", "day", "PT1S", "PT30S", "PT5M", "PT1H"])
def test_known_billing_periods(value):
    assert billing_period_problem(value) is None
    calendar_bounds(datetime.now(UTC), timezone="UTC", billing_period=value)


@pytest.mark.parametrize("value", ["year", "PT0S", "P1M", "PT5", "pt5s", "", "PT99999999S"])
def test_unknown_billing_periods(value):
    assert billing_period_problem(value)
