"""Rating: a frame of checked readings becomes committed charges, exactly once.

One transaction per batch of frames (one frame, or many frames of many
meters coalesced by the web process): lock the accounts and the meters,
drop readings already recorded (the `(meter, reading id)` idempotency key),
rate the rest against the tariff in force at their timestamps, save
readings, charges and running totals. Dashboards hear of it only after the
commit.
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

from billing.bulk import rows_insert, rows_update
from billing.events import dashboard_publish
from billing.models import Account, Charge, MeterPeriodUsage, Tariff
from billing.money import format_amount, format_quantity
from billing.periods import isoformat, period_bounds
from billing.pricing import EXACT, PricingModel, RatedLine, rate, round6
from billing.tariffs import pricing_model
from metering.models import Meter, MeterTariff, Reading
from metering.parsing import ReadingError, ReadingIn
from project.metrics import readings_rated

# A money column has 24 digits before the point; a period stays well inside.
MAX_PERIOD_AMOUNT = Decimal(10) ** 23


@dataclass
class RatingResult:
    """What became of one frame's readings."""

    ids: list[str] = field(default_factory=list)  # charged by this call
    duplicates: list[str] = field(default_factory=list)  # recorded before
    errors: list[ReadingError] = field(default_factory=list)  # refused, nothing charged


@dataclass(frozen=True)
class FrameIn:
    """One device frame: a meter's checked readings."""

    meter_id: str
    readings: Sequence[ReadingIn]


@dataclass
class BatchResult:
    frames: list[RatingResult]  # one per frame, in order
    events: dict[str, list[dict[str, Any]]]  # account id -> dashboard events, sent on commit


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
    return frames_rate([FrameIn(meter_id, readings)]).frames[0]


def frames_rate(frames: Sequence[FrameIn], *, publish: bool = True) -> BatchResult:
    """Rate frames of any meters and accounts in one transaction. Safe to call twice.

    A batch costs a fixed number of queries whatever its size: the per-reading
    work is arithmetic in Python and one COPY row each for readings and charges.
    Dashboards hear of the batch once it commits; a caller passing `publish=False`
    sends `events` itself (the worker answers its devices first).
    """
    results = [RatingResult() for _ in frames]
    with transaction.atomic():
        meters = _lock_meters_and_accounts({frame.meter_id for frame in frames})
        batch = _Batch(meters, frames, recorded=_recorded(frames))
        with localcontext(EXACT):  # 30-digit usage never rounds in the default 28 digits
            for frame, result in zip(frames, results, strict=True):
                meter = meters.get(frame.meter_id)
                if meter is None or not meter.active:
                    reason = "meter_unknown" if meter is None else "meter_disabled"
                    detail = f"meter {frame.meter_id} is not accepting readings"
                    result.errors = [ReadingError(r.id, reason, detail) for r in frame.readings]
                    continue
                batch.rate(meter, frame.readings, result)
        events = batch.save()
        # Counted at commit: a batch rolled back counts nothing, a resend counts as duplicate.
        transaction.on_commit(
            partial(
                readings_rated,
                charged=sum(len(result.ids) for result in results),
                duplicates=sum(len(result.duplicates) for result in results),
                refused=sum(len(result.errors) for result in results),
            ),
            robust=True,
        )
        for account_id, account_events in events.items() if publish else ():
            transaction.on_commit(
                partial(dashboard_publish, account_id=account_id, events=account_events),
                robust=True,
            )
    return BatchResult(frames=results, events=events)


def _lock_meters_and_accounts(meter_ids: set[str]) -> dict[str, Meter]:
    """Lock the accounts, then the meters, each in id order: the order every writer of
    billing state keeps, so two batches never wait on each other in a circle.

    The account lock orders the batches of all its meters, so each dashboard
    event's period_total counts every charge committed before it, and a
    period that closes (billing/invoicing.py, same lock) either has a
    batch's charges on its invoice or the batch sees it closed.
    """
    of_meters = Meter.objects.filter(pk__in=meter_ids).values("account_id")
    accounts = Account.objects.select_for_update().filter(pk__in=of_meters).order_by("pk")
    by_id = {account.pk: account for account in accounts}
    meters = {}
    for meter in Meter.objects.select_for_update().filter(pk__in=meter_ids).order_by("pk"):
        meter.account = by_id[meter.account_id]
        meters[meter.pk] = meter
    return meters


def _recorded(frames: Sequence[FrameIn]) -> set[tuple[str, str]]:
    """The (meter, reading id) pairs of the batch already recorded: the idempotency key."""
    wanted = {(frame.meter_id, r.id) for frame in frames for r in frame.readings}
    found = Reading.objects.filter(
        meter_id__in={meter for meter, _ in wanted},
        reading_id__in={reading for _, reading in wanted},
    ).values_list("meter_id", "reading_id")
    return {pair for pair in found if pair in wanted}


class _Batch:
    """The rows a batch writes, built in memory and saved with a fixed number of queries."""

    def __init__(
        self, meters: dict[str, Meter], frames: Sequence[FrameIn], *, recorded: set[tuple[str, str]]
    ):
        self.meters = meters
        self.recorded = recorded  # grows as the batch records readings
        self.now = timezone.now()
        self.tariffs = _tariff_histories(list(meters.values()))
        self.readings: list[tuple] = []
        self.charges: list[tuple] = []
        # (account, meter, period start) -> the charges for one dashboard event
        self.charged: dict[tuple[str, str, datetime], list[_Charged]] = defaultdict(list)
        self.registers_moved: set[str] = set()
        self._placed: dict[tuple[str, datetime], tuple[datetime, datetime, bool]] = {}
        self.periods = _PeriodUsages()
        self.periods.load(
            {
                (meter.id, *self._period_of(meter.account, reading)[:2])
                for frame in frames
                if (meter := meters.get(frame.meter_id)) is not None
                for reading in frame.readings
            }
        )

    def rate(self, meter: Meter, readings: Sequence[ReadingIn], result: RatingResult) -> None:
        account = meter.account
        zone = ZoneInfo(account.timezone)
        for reading in readings:
            if (meter.id, reading.id) in self.recorded:
                result.duplicates.append(reading.id)
                continue
            try:
                usage = _usage_of(meter, reading)
            except ReadingError as error:
                result.errors.append(error)
                continue
            tariff, model = self.tariffs[meter.id].at(reading.ts)
            start, end, late = self._period_of(account, reading)
            period = self.periods.get(meter, start, end)
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
            if _advance_register(meter, reading):
                self.registers_moved.add(meter.id)
            self.recorded.add((meter.id, reading.id))
            period.usage, period.exact_amount = rated.usage_after, rated.exact_after
            period.amount = round6(rated.exact_after)  # = the sum of the period's charges
            self.readings.append((meter.id, reading.id, reading.ts, usage, reading.value, self.now))
            self.charges.append(
                (
                    account.id,
                    meter.id,
                    tariff.id,
                    start,
                    usage,
                    rated.amount,
                    account.currency,
                    self.now,
                    late,
                    [_line_out(line) for line in rated.lines],
                )
            )
            self.charged[account.id, meter.id, start].append(
                _Charged(reading.id, usage, rated.amount)
            )
            result.ids.append(reading.id)

    def _period_of(self, account: Account, reading: ReadingIn) -> tuple[datetime, datetime, bool]:
        """The period a reading is charged in (one dated in an invoiced period: the open one).

        Worked out once per account and timestamp: for loading the batch's
        period rows, and again when the reading is rated.
        """
        key = (account.id, reading.ts)
        if key not in self._placed:
            late = account.closed_until is not None and reading.ts < account.closed_until
            start, end = period_bounds(
                self.now if late else reading.ts,
                timezone=account.timezone,
                billing_period=account.billing_period,
                closed_until=account.closed_until,
            )
            self._placed[key] = (start, end, late)
        return self._placed[key]

    def save(self) -> dict[str, list[dict[str, Any]]]:
        """Write the batch; return each account's dashboard events."""
        reading_pks = rows_insert(Reading, READING_FIELDS, self.readings, ids=True)
        rows_insert(
            Charge,
            CHARGE_FIELDS,
            [(pk, *charge) for pk, charge in zip(reading_pks, self.charges, strict=True)],
        )
        self.periods.save()
        moved = [self.meters[meter_id] for meter_id in self.registers_moved]
        rows_update(moved, ["last_value", "last_ts"])
        return self._events()

    def _events(self) -> dict[str, list[dict[str, Any]]]:
        """One event per meter and period, numbered in the account's commit order."""
        if not self.charged:
            return {}
        totals = self.periods.account_totals({(a, start) for a, _, start in self.charged})
        accounts = {meter.account_id: meter.account for meter in self.meters.values()}
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (account_id, meter_id, start), charges in self.charged.items():
            account = accounts[account_id]
            period = self.periods.rows[meter_id, start]
            events[account_id].append(
                {
                    "type": "charge",
                    "account": account_id,
                    "meter": meter_id,
                    "reading_ids": [charge.reading_id for charge in charges],
                    "quantity": format_quantity(sum((c.quantity for c in charges), Decimal(0))),
                    "amount": format_amount(sum((c.amount for c in charges), Decimal(0))),
                    "meter_usage": format_quantity(period.usage),
                    "period_total": format_amount(totals[account_id, start]),
                    "period": {"start": isoformat(start), "end": isoformat(period.period_end)},
                    "rated_at": isoformat(self.now),
                    # The account's event sequence, in commit order (the account lock
                    # orders the commits); dashboards deliver events in this order.
                    "seq": account.event_seq + len(events[account_id]) + 1,
                }
            )
        for account_id, account_events in events.items():
            accounts[account_id].event_seq += len(account_events)
        rows_update([accounts[account_id] for account_id in events], ["event_seq"])
        return dict(events)


@dataclass(frozen=True)
class _Charged:
    reading_id: str
    quantity: Decimal
    amount: Decimal


READING_FIELDS = ("meter_id", "reading_id", "ts", "quantity", "value", "received_at")
CHARGE_FIELDS = (
    "reading_id",  # the new reading's primary key, known once readings are inserted
    "account_id",
    "meter_id",
    "tariff_id",
    "period_start",
    "quantity",
    "amount",
    "currency",
    "rated_at",
    "late",
    "lines",
)


def _tariff_histories(meters: Sequence[Meter]) -> dict[str, _TariffHistory]:
    assignments: dict[str, list[MeterTariff]] = defaultdict(list)
    history = MeterTariff.objects.filter(meter__in=meters).select_related("tariff")
    for assignment in history.order_by("meter_id", "effective_from", "id"):
        assignments[assignment.meter_id].append(assignment)
    return {meter.id: _TariffHistory(assignments[meter.id]) for meter in meters}


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


def _advance_register(meter: Meter, reading: ReadingIn) -> bool:
    """A recorded cumulative reading newer than the register becomes the next baseline."""
    if meter.kind == Meter.Kind.CUMULATIVE and (
        meter.last_ts is None or reading.ts >= meter.last_ts
    ):
        meter.last_value, meter.last_ts = reading.value, reading.ts
        return True
    return False


class _PeriodUsages:
    """The running totals of the meter periods a batch touches, loaded and saved in bulk."""

    def __init__(self):
        self.rows: dict[tuple[str, datetime], MeterPeriodUsage] = {}

    def load(self, periods: set[tuple[str, datetime, datetime]]) -> None:
        """Fetch the rows of these (meter, start, end) periods that exist, in one query."""
        if not periods:
            return
        rows = MeterPeriodUsage.objects.filter(
            meter_id__in={meter for meter, _, _ in periods},
            period_start__in={start for _, start, _ in periods},
        )
        self.rows = {(row.meter_id, row.period_start): row for row in rows}

    def get(self, meter: Meter, start: datetime, end: datetime) -> MeterPeriodUsage:
        """The meter's row for the period, a new one (saved with the batch) on its first charge."""
        key = (meter.id, start)
        if key not in self.rows:
            self.rows[key] = MeterPeriodUsage(
                meter=meter, account_id=meter.account_id, period_start=start, period_end=end
            )
        return self.rows[key]

    def save(self) -> None:
        saved = [row for row in self.rows.values() if row.pk is not None]
        MeterPeriodUsage.objects.bulk_create([row for row in self.rows.values() if row.pk is None])
        rows_update(saved, ["usage", "exact_amount", "amount"])

    def account_totals(
        self, periods: set[tuple[str, datetime]]
    ) -> dict[tuple[str, datetime], Decimal]:
        """Each account's amount over all its meters in each period, as now written."""
        totals = {key: Decimal(0) for key in periods}
        rows = MeterPeriodUsage.objects.filter(
            account_id__in={account for account, _ in periods},
            period_start__in={start for _, start in periods},
        ).values_list("account_id", "period_start", "amount")
        # Summed here, not in SQL: SQLite would sum the text of exact decimals as floats.
        for account_id, start, amount in rows:
            if (account_id, start) in totals:
                totals[account_id, start] += amount
        return totals
