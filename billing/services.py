"""Rating: a frame of checked readings becomes committed charges, exactly once.

One transaction per frame: lock the account and the meter, drop readings already recorded
(the `(meter, reading id)` idempotency key), rate the rest against the tariff
in force at their timestamps, save readings, charges and running totals.
Dashboards hear of it only after the commit.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from billing.events import dashboard_publish
from billing.models import Account, Charge, MeterPeriodUsage, Tariff
from billing.money import format_amount, format_quantity
from billing.periods import isoformat, period_bounds
from billing.pricing import EXACT, PricingModel, RatedLine, rate, round6
from billing.tariffs import pricing_model
from metering.models import Meter, MeterTariff, Reading
from metering.parsing import ReadingError, ReadingIn

# A money column has 24 digits before the point; a period stays well inside.
MAX_PERIOD_AMOUNT = Decimal(10) ** 23


@dataclass
class RatingResult:
    ids: list[str] = field(default_factory=list)  # charged by this call
    duplicates: list[str] = field(default_factory=list)  # recorded before
    errors: list[ReadingError] = field(default_factory=list)  # refused, nothing charged
    events: list[dict[str, Any]] = field(default_factory=list)  # for dashboards, on commit


class _TariffHistory:
    """The meter's tariffs over time; readings before the first assignment use the first."""

    def __init__(self, assignments: Sequence[MeterTariff]):
        self._assignments = list(assignments)
        self._models: dict[str, PricingModel] = {}

    def at(self, moment: datetime) -> tuple[Tariff, PricingModel]:
        chosen = self._assignments[0]
        for assignment in self._assignments[1:]:
            if assignment.effective_from > moment:
                break
            chosen = assignment
        tariff = chosen.tariff
        if tariff.id not in self._models:
            self._models[tariff.id] = pricing_model(tariff.model, tariff.params)
        return tariff, self._models[tariff.id]


def readings_rate(*, meter_id: str, readings: Sequence[ReadingIn]) -> RatingResult:
    """Rate one frame of a meter's readings in one transaction. Safe to call twice."""
    result = RatingResult()
    with transaction.atomic():
        meter = _lock_meter_and_account(meter_id)
        if meter is None or not meter.active:
            reason = "meter_unknown" if meter is None else "meter_disabled"
            detail = f"meter {meter_id} is not accepting readings"
            result.errors = [ReadingError(r.id, reason, detail) for r in readings]
            return result
        fresh = _drop_duplicates(meter, readings, result)
        if not fresh:
            return result
        with localcontext(EXACT):  # 30-digit usage never rounds in the default 28 digits
            _rate(meter, fresh, result)
        transaction.on_commit(
            partial(dashboard_publish, account_id=meter.account_id, events=result.events),
            robust=True,
        )
    return result


def _lock_meter_and_account(meter_id: str) -> Meter | None:
    """Lock the account, then the meter: the order every writer of billing state keeps.

    The account lock orders the frames of all its meters, so each dashboard
    event's period_total counts every charge committed before it, and a
    period that closes (billing/invoicing.py, same lock) either has a
    frame's charges on its invoice or the frame sees it closed.
    """
    account_id = Meter.objects.filter(pk=meter_id).values_list("account_id", flat=True).first()
    if account_id is None:
        return None
    account = Account.objects.select_for_update().get(pk=account_id)
    meter = Meter.objects.select_for_update().get(pk=meter_id)
    meter.account = account
    return meter


def _drop_duplicates(
    meter: Meter, readings: Sequence[ReadingIn], result: RatingResult
) -> list[ReadingIn]:
    """The readings not recorded before (repeats inside the frame are left to `_rate`)."""
    seen = set(
        Reading.objects.filter(meter=meter, reading_id__in={r.id for r in readings}).values_list(
            "reading_id", flat=True
        )
    )
    result.duplicates = [reading.id for reading in readings if reading.id in seen]
    return [reading for reading in readings if reading.id not in seen]


def _rate(meter: Meter, readings: list[ReadingIn], result: RatingResult) -> None:
    account = meter.account
    zone = ZoneInfo(account.timezone)
    now = timezone.now()
    tariffs = _TariffHistory(meter.tariff_history.select_related("tariff"))
    periods = _PeriodUsages(meter)
    new_readings: list[Reading] = []
    new_charges: list[Charge] = []
    frames: dict[datetime, list[Charge]] = defaultdict(list)

    recorded: set[str] = set()
    for reading in readings:
        if reading.id in recorded:  # twice in one frame: the first one counts
            result.duplicates.append(reading.id)
            continue
        try:
            usage = _usage_of(meter, reading)
        except ReadingError as error:
            result.errors.append(error)
            continue
        tariff, model = tariffs.at(reading.ts)
        # A reading dated in an invoiced period is charged in the open one.
        late = account.closed_until is not None and reading.ts < account.closed_until
        start, end = period_bounds(
            now if late else reading.ts,
            timezone=account.timezone,
            billing_period=account.billing_period,
            closed_until=account.closed_until,
        )
        period = periods.get(start, end)
        rated = rate(
            model,
            usage_before=period.usage,
            exact_before=period.exact_amount,
            quantity=usage,
            local_time=reading.ts.astimezone(zone),
        )
        if abs(rated.exact_after) >= MAX_PERIOD_AMOUNT:
            detail = "this usage would take the period's amount beyond what can be billed"
            result.errors.append(ReadingError(reading.id, "invalid_reading", detail))
            continue
        _advance_register(meter, reading)
        recorded.add(reading.id)
        period.usage, period.exact_amount = rated.usage_after, rated.exact_after
        period.amount = round6(rated.exact_after)  # = the sum of the period's charges
        row = Reading(
            meter=meter,
            reading_id=reading.id,
            ts=reading.ts,
            quantity=usage,
            value=reading.value,
            received_at=now,
        )
        charge = Charge(
            account=account,
            meter=meter,
            reading=row,
            tariff=tariff,
            period_start=start,
            quantity=usage,
            amount=rated.amount,
            currency=account.currency,
            rated_at=now,
            late=late,
            lines=[_line_out(line) for line in rated.lines],
        )
        new_readings.append(row)
        new_charges.append(charge)
        frames[start].append(charge)
        result.ids.append(reading.id)

    Reading.objects.bulk_create(new_readings)
    Charge.objects.bulk_create(new_charges)  # each charge's reading now has its primary key
    periods.save()
    if meter.kind == Meter.Kind.CUMULATIVE:
        meter.save(update_fields=["last_value", "last_ts"])

    for start, charges in frames.items():
        period = periods.rows[start]
        # Summed here, not in SQL: SQLite would sum the text of exact decimals as floats.
        total = sum(
            MeterPeriodUsage.objects.filter(account=account, period_start=start).values_list(
                "amount", flat=True
            ),
            Decimal(0),
        )
        result.events.append(
            {
                "type": "charge",
                "account": account.id,
                "meter": meter.id,
                "reading_ids": [c.reading.reading_id for c in charges],
                "quantity": format_quantity(sum((c.quantity for c in charges), Decimal(0))),
                "amount": format_amount(sum((c.amount for c in charges), Decimal(0))),
                "meter_usage": format_quantity(period.usage),
                "period_total": format_amount(total or Decimal(0)),
                "period": {"start": isoformat(start), "end": isoformat(period.period_end)},
                "rated_at": isoformat(now),
                # The account's event sequence, in commit order (the account lock
                # orders the commits); dashboards deliver events in this order.
                "seq": account.event_seq + len(result.events) + 1,
            }
        )
    account.event_seq += len(result.events)
    Account.objects.filter(pk=account.pk).update(event_seq=account.event_seq)


def _line_out(line: RatedLine) -> dict[str, str | None]:
    return {
        "description": line.description,
        "quantity": f"{line.quantity:f}",
        "unit_price": None if line.unit_price is None else f"{line.unit_price:f}",
        "amount": format_amount(line.amount),
    }


def _usage_of(meter: Meter, reading: ReadingIn) -> Decimal:
    """The usage a reading stands for (a cumulative meter's increase over its register)."""
    if meter.kind == Meter.Kind.DELTA:
        return reading.quantity
    value = reading.value
    if meter.rollover_at is not None and value >= meter.rollover_at:
        detail = f"value must be below the meter's rollover_at {meter.rollover_at}"
        raise ReadingError(reading.id, "invalid_reading", detail)
    if meter.last_value is None:
        return Decimal(0)  # the first reading only sets the baseline
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


def _advance_register(meter: Meter, reading: ReadingIn) -> None:
    """A recorded cumulative reading newer than the register becomes the next baseline."""
    if meter.kind == Meter.Kind.CUMULATIVE and (
        meter.last_ts is None or reading.ts >= meter.last_ts
    ):
        meter.last_value, meter.last_ts = reading.value, reading.ts


class _PeriodUsages:
    """The meter's running totals for the periods a frame touches, loaded and saved once."""

    def __init__(self, meter: Meter):
        self._meter = meter
        self.rows: dict[datetime, MeterPeriodUsage] = {}

    def get(self, start: datetime, end: datetime) -> MeterPeriodUsage:
        if start not in self.rows:
            row, _ = MeterPeriodUsage.objects.get_or_create(
                meter=self._meter,
                period_start=start,
                defaults={"account_id": self._meter.account_id, "period_end": end},
            )
            self.rows[start] = row
        return self.rows[start]

    def save(self) -> None:
        MeterPeriodUsage.objects.bulk_update(
            list(self.rows.values()), ["usage", "exact_amount", "amount"]
        )
