"""Billing period arithmetic: pure functions on aware datetimes."""

from datetime import datetime
from zoneinfo import ZoneInfo


def period_bounds(
    moment: datetime, *, timezone: str, billing_period: str = "month"
) -> tuple[datetime, datetime]:
    """The [start, end) of the billing period holding `moment`, in the account's timezone."""
    if billing_period != "month":
        raise ValueError(f"unknown billing period {billing_period!r}")
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    start = datetime(local.year, local.month, 1, tzinfo=zone)
    if local.month == 12:
        end = datetime(local.year + 1, 1, 1, tzinfo=zone)
    else:
        end = datetime(local.year, local.month + 1, 1, tzinfo=zone)
    return start, end


def isoformat(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as the contract shows timestamps."""
    utc = moment.astimezone(ZoneInfo("UTC"))
    text = utc.isoformat()
    return text.replace("+00:00", "Z")
