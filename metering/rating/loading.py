"""What a batch needs, read under its locks with a fixed number of queries.

The accounts are locked, then the meters, each in id order: the order every
writer of billing state keeps, so two batches never wait on each other in a
circle. The account lock orders the batches of all its meters, so each
dashboard event's period_total counts every charge committed before it, and
a period that closes (billing/invoicing.py, same lock) either has a batch's
charges on its invoice or the batch sees it closed.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from billing.credit import AlertRule, Totals, Watch
from billing.models import Account, Alert, MeterPeriodUsage, Tariff
from billing.periods import period_bounds
from billing.pricing import PricingModel
from billing.tariffs import assignment_at, pricing_model
from metering.models import Meter, MeterTariff, Reading
from protocol import ReadingIn


@dataclass(frozen=True)
class FrameIn:
    """One device frame: a meter's checked readings."""

    meter_id: str
    readings: Sequence[ReadingIn]


class TariffHistory:
    """A meter's tariffs over time, each turned into its pricing model once."""

    def __init__(self, assignments: Sequence[MeterTariff]):
        self._assignments = list(assignments)
        self._models: dict[str, PricingModel] = {}

    def at(self, moment: datetime) -> tuple[Tariff, PricingModel]:
        tariff = assignment_at(self._assignments, moment).tariff
        if tariff.id not in self._models:
            self._models[tariff.id] = pricing_model(tariff.model, tariff.params)
        return tariff, self._models[tariff.id]


class PeriodUsages:
    """The running totals of the meter periods a batch touches, by (meter, period start)."""

    def __init__(self, rows: dict[tuple[str, datetime], MeterPeriodUsage]):
        self.rows = rows

    def get(self, meter: Meter, start: datetime, end: datetime) -> MeterPeriodUsage:
        """The meter's row for the period, a new one (saved with the batch) on its first charge."""
        key = (meter.id, start)
        if key not in self.rows:
            self.rows[key] = MeterPeriodUsage(
                meter=meter, account_id=meter.account_id, period_start=start, period_end=end
            )
        return self.rows[key]


@dataclass
class Loaded:
    """A batch's state: locked meters (with their accounts), recorded keys, tariffs, periods."""

    now: datetime
    meters: dict[str, Meter]
    recorded: set[tuple[str, str]]  # grows as the batch records readings
    tariffs: dict[str, TariffHistory]
    periods: PeriodUsages = field(default_factory=lambda: PeriodUsages({}))
    # Each account's totals over all its meters before the batch, by (account, period start).
    totals: dict[tuple[str, datetime], Totals] = field(default_factory=dict)
    # Credit control: a watch per account with a balance or alerts, and their alert rows.
    watches: dict[str, Watch] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    _placed: dict[tuple[str, datetime], tuple[datetime, datetime, bool]] = field(
        default_factory=dict
    )

    def accounts(self) -> dict[str, Account]:
        """The batch's locked accounts, by id."""
        return {meter.account_id: meter.account for meter in self.meters.values()}

    def period_of(self, account: Account, reading: ReadingIn) -> tuple[datetime, datetime, bool]:
        """The period a reading is charged in (one dated in an invoiced period: the open
        one, and late), worked out once per account and timestamp."""
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


def batch_load(frames: Sequence[FrameIn]) -> Loaded:
    """Lock and read everything the batch's frames need (inside its transaction)."""
    meters = meters_lock({frame.meter_id for frame in frames})
    loaded = Loaded(
        now=timezone.now(),
        meters=meters,
        recorded=readings_recorded(frames),
        tariffs=tariff_histories(list(meters.values())),
    )
    placed = {
        (meter.id, *loaded.period_of(meter.account, reading)[:2])
        for frame in frames
        if (meter := meters.get(frame.meter_id)) is not None
        for reading in frame.readings
    }
    loaded.periods = PeriodUsages(period_rows(placed))
    loaded.totals = account_totals({(meters[m].account_id, start) for m, start, _ in placed})
    accounts = loaded.accounts()
    loaded.alerts = alerts_of([a for a in accounts.values() if a.has_alerts])
    loaded.watches = credit_watches(accounts.values(), loaded.totals, loaded.alerts.values())
    return loaded


def meters_lock(meter_ids: set[str]) -> dict[str, Meter]:
    """Lock the meters' accounts, then the meters, each in id order (module docstring)."""
    of_meters = Meter.objects.filter(pk__in=meter_ids).values("account_id")
    accounts = Account.objects.select_for_update().filter(pk__in=of_meters).order_by("pk")
    by_id = {account.pk: account for account in accounts}
    meters = {}
    for meter in Meter.objects.select_for_update().filter(pk__in=meter_ids).order_by("pk"):
        meter.account = by_id[meter.account_id]
        meters[meter.pk] = meter
    return meters


def readings_recorded(frames: Sequence[FrameIn]) -> set[tuple[str, str]]:
    """The (meter, reading id) pairs of the batch already recorded: the idempotency key."""
    wanted = {(frame.meter_id, r.id) for frame in frames for r in frame.readings}
    found = Reading.objects.filter(
        meter_id__in={meter for meter, _ in wanted},
        reading_id__in={reading for _, reading in wanted},
    ).values_list("meter_id", "reading_id")
    return {pair for pair in found if pair in wanted}


def tariff_histories(meters: Sequence[Meter]) -> dict[str, TariffHistory]:
    assignments: dict[str, list[MeterTariff]] = defaultdict(list)
    history = MeterTariff.objects.filter(meter__in=meters).select_related("tariff")
    for assignment in history.order_by("meter_id", "effective_from", "id"):
        assignments[assignment.meter_id].append(assignment)
    return {meter.id: TariffHistory(assignments[meter.id]) for meter in meters}


def period_rows(
    periods: set[tuple[str, datetime, datetime]],
) -> dict[tuple[str, datetime], MeterPeriodUsage]:
    """The existing rows of these (meter, start, end) periods, in one query."""
    if not periods:
        return {}
    rows = MeterPeriodUsage.objects.filter(
        meter_id__in={meter for meter, _, _ in periods},
        period_start__in={start for _, start, _ in periods},
    )
    return {(row.meter_id, row.period_start): row for row in rows}


def account_totals(periods: set[tuple[str, datetime]]) -> dict[tuple[str, datetime], Totals]:
    """Each account's amount and usage over all its meters in each period, as committed."""
    totals = {key: Totals() for key in periods}
    rows = MeterPeriodUsage.objects.filter(
        account_id__in={account for account, _ in periods},
        period_start__in={start for _, start in periods},
    ).values_list("account_id", "period_start", "amount", "usage")
    # Summed here, not in SQL: SQLite would sum the text of exact decimals as floats.
    for account_id, start, amount, usage in rows:
        if (account_id, start) in totals:
            totals[account_id, start].amount += amount
            totals[account_id, start].usage += usage
    return totals


def alerts_of(accounts: Sequence[Account]) -> dict[str, Alert]:
    if not accounts:
        return {}
    return {alert.id: alert for alert in Alert.objects.filter(account__in=accounts)}


def credit_watches(
    accounts, totals: dict[tuple[str, datetime], Totals], alerts
) -> dict[str, Watch]:
    """A credit-control watch (billing/credit.py) for each account with a balance or alerts."""
    watches = {
        account.id: Watch(
            balance=account.balance if account.credit_since else None,
            cutoff_at=account.cutoff_at,
            cut_off=account.cut_off,
        )
        for account in accounts
        if account.credit_since or account.has_alerts
    }
    for (account_id, start), total in totals.items():
        if account_id in watches:
            watches[account_id].account_totals[start] = Totals(total.amount, total.usage)
    for alert in alerts:
        watches[alert.account_id].alerts.append(
            AlertRule(
                id=alert.id,
                kind=alert.kind,
                threshold=alert.threshold,
                meter_id=alert.meter_id,
                fired_period_start=alert.fired_period_start,
                armed=alert.armed,
            )
        )
    return watches
