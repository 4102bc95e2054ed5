"""One reading, rated: the usage it stands for and its price. Pure: no database.

The meter and period rows are read and advanced in memory; the batch
writes them (metering/rating/writing.py).
"""

from datetime import datetime
from decimal import Decimal

from billing.periods import isoformat
from billing.pricing import PricingModel, Rated, rate
from metering.models import Meter
from protocol import ReadingError, ReadingIn

# A money column has 24 digits before the point; a period stays well inside.
MAX_PERIOD_AMOUNT = Decimal(10) ** 23
# A period's usage column (numeric(30, 9)) holds less than 10^21. A reading is below
# 10^15, so only a million of them could reach it; the one that would is refused here,
# where it costs nothing, not by the database, which would roll back its whole batch.
MAX_PERIOD_USAGE = Decimal(10) ** 21


def reading_usage(meter: Meter, reading: ReadingIn) -> Decimal:
    """The usage a reading stands for (a cumulative meter's increase over its register)."""
    if meter.kind == Meter.Kind.DELTA:
        return reading.quantity
    value = reading.value
    if meter.rollover_at is not None and value >= meter.rollover_at:
        detail = f"value must be below the meter's rollover_at {meter.rollover_at}"
        raise ReadingError(reading.id, "invalid_reading", detail)
    if meter.last_value is None or reading.baseline:
        return Decimal(0)  # the first reading (or an OCPP meterStart) only sets the baseline
    if reading.ts < meter.last_ts:
        # Older than the latest register: its interval is already counted
        # in the increase up to that register, so it adds no usage.
        return Decimal(0)
    if value >= meter.last_value:
        return value - meter.last_value
    if meter.rollover_at is not None:
        return meter.rollover_at - meter.last_value + value
    raise ReadingError(
        reading.id,
        "register_decreased",
        f"value {value} is below the previous register {meter.last_value}"
        " and the meter has no rollover_at",
    )


def reading_price(
    model: PricingModel, period, *, reading_id: str, usage: Decimal, local_time: datetime
) -> Rated:
    """The price of `usage` on top of the period's running usage and exact amount."""
    rated = rate(
        model,
        usage_before=period.usage,
        exact_before=period.exact_amount,
        quantity=usage,
        local_time=local_time,
    )
    if rated.usage_after >= MAX_PERIOD_USAGE:
        detail = f"this usage would take the meter's period usage to {MAX_PERIOD_USAGE} or more"
        raise ReadingError(reading_id, "usage_limit", detail)
    if abs(rated.exact_after) >= MAX_PERIOD_AMOUNT:
        detail = "this usage would take the period's amount beyond what can be billed"
        raise ReadingError(reading_id, "invalid_reading", detail)
    return rated


def reading_age_check(reading: ReadingIn, *, oldest: datetime) -> None:
    """Refuse a reading dated before `oldest`: its account's creation less the buffer
    devices may hold (METERLINE_READING_MAX_AGE_DAYS). Before an account's first close,
    an older one would move its invoicing start back that far."""
    if reading.ts < oldest:
        detail = f"readings dated before {isoformat(oldest)} are not accepted for this account"
        raise ReadingError(reading.id, "too_old", detail)


def register_advance(meter: Meter, reading: ReadingIn) -> bool:
    """A recorded register reading (cumulative and OCPP meters) newer than the register
    becomes the next baseline."""
    newer = meter.last_ts is None or reading.ts >= meter.last_ts
    if meter.kind != Meter.Kind.DELTA and newer:
        meter.last_value, meter.last_ts = reading.value, reading.ts
        return True
    return False
