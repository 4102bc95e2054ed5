"""The baselines' save: one reading, one transaction, the ORM, priced with billing/pricing.py.

What a Django team writes first: lock the meter's row, skip a reading id seen before,
price the reading on the tariff in force at its timestamp against its period's running
total, and save the reading, its charge and the new total. Delta meters only.
"""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from billing.models import Charge, MeterPeriodUsage
from billing.periods import period_bounds
from billing.pricing import Rated, rate
from billing.selectors import meter_tariff_at
from billing.tariffs import pricing_model
from metering.models import Meter, Reading


def baseline_reading_save(
    *, meter_id: str, reading_id: str, ts: datetime, quantity: Decimal
) -> bool:
    """Save and charge one reading; False if the meter had it already (a duplicate)."""
    with transaction.atomic():
        meter = Meter.objects.select_for_update().select_related("account").get(id=meter_id)
        if Reading.objects.filter(meter=meter, reading_id=reading_id).exists():
            return False
        account = meter.account
        tariff = meter_tariff_at(meter=meter, at=ts)
        period = _period_of(meter, ts)
        rated = rate(
            pricing_model(tariff.model, tariff.params),
            usage_before=period.usage,
            exact_before=period.exact_amount,
            quantity=quantity,
            local_time=ts.astimezone(ZoneInfo(account.timezone)),
        )
        reading = Reading.objects.create(
            meter=meter, reading_id=reading_id, ts=ts, quantity=quantity, received_at=timezone.now()
        )
        Charge.objects.create(
            account=account,
            meter=meter,
            reading=reading,
            tariff=tariff,
            period_start=period.period_start,
            quantity=quantity,
            amount=rated.amount,
            currency=tariff.currency,
            rated_at=timezone.now(),
            lines=_lines(rated),
        )
        period.usage, period.exact_amount = rated.usage_after, rated.exact_after
        period.amount += rated.amount
        period.save(update_fields=["usage", "exact_amount", "amount"])
    return True


def _period_of(meter: Meter, ts: datetime) -> MeterPeriodUsage:
    """The meter's running totals in the billing period holding `ts` (made if new)."""
    account = meter.account
    start, end = period_bounds(
        ts,
        timezone=account.timezone,
        billing_period=account.billing_period,
        closed_until=account.closed_until,
    )
    period, _ = MeterPeriodUsage.objects.get_or_create(
        meter=meter, period_start=start, defaults={"account": account, "period_end": end}
    )
    return period


def _lines(rated: Rated) -> list[dict]:
    """The charge's lines as Meterline stores them: decimal strings."""
    return [
        {
            "description": line.description,
            "quantity": str(line.quantity),
            "unit_price": None if line.unit_price is None else str(line.unit_price),
            "amount": str(line.amount),
        }
        for line in rated.lines
    ]
