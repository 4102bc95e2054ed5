"""A rated batch written with a fixed number of queries: COPY for new rows, one
`UPDATE ... FROM unnest()` per kind of changed row (billing/bulk.py)."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.bulk import rows_insert, rows_update
from billing.models import Charge, MeterPeriodUsage
from billing.money import format_amount
from billing.pricing import Rated, RatedLine
from metering.dashboard import Charged, charge_event
from metering.models import Meter, Reading
from metering.rating.loading import Loaded
from protocol import ReadingIn

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


@dataclass
class Rows:
    """The rows a batch writes, built in memory as its readings are rated."""

    readings: list[tuple] = field(default_factory=list)
    charges: list[tuple] = field(default_factory=list)
    # (account, meter, period start) -> the charges of one dashboard event
    charged: dict[tuple[str, str, datetime], list[Charged]] = field(
        default_factory=lambda: defaultdict(list)
    )
    registers_moved: set[str] = field(default_factory=set)

    def add(
        self, meter: Meter, reading: ReadingIn, *, usage: Decimal, rated: Rated, placed, now
    ) -> None:
        """One rated reading: its reading row, its charge row, its part of an event.
        `placed` is (tariff, period start, late)."""
        tariff, start, late = placed
        account = meter.account
        self.readings.append((meter.id, reading.id, reading.ts, usage, reading.value, now))
        lines = [_line_out(line) for line in rated.lines]
        charge = (account.id, meter.id, tariff.id, start, usage, rated.amount, account.currency)
        self.charges.append((*charge, now, late, lines))
        self.charged[account.id, meter.id, start].append(Charged(reading.id, usage, rated.amount))


def rows_write(loaded: Loaded, rows: Rows) -> None:
    """Insert the readings and charges, save the period totals and moved registers."""
    reading_pks = rows_insert(Reading, READING_FIELDS, rows.readings, ids=True)
    rows_insert(
        Charge,
        CHARGE_FIELDS,
        [(pk, *charge) for pk, charge in zip(reading_pks, rows.charges, strict=True)],
    )
    periods = loaded.periods.rows.values()
    MeterPeriodUsage.objects.bulk_create([row for row in periods if row.pk is None])
    rows_update([row for row in periods if row.pk is not None], ["usage", "exact_amount", "amount"])
    rows_update([loaded.meters[m] for m in rows.registers_moved], ["last_value", "last_ts"])


def events_number(loaded: Loaded, rows: Rows) -> dict[str, list[dict[str, Any]]]:
    """One dashboard event per meter and period, numbered in the account's commit order
    (the account lock orders the commits); saves each account's new event number."""
    if not rows.charged:
        return {}
    totals = _account_totals({(a, start) for a, _, start in rows.charged})
    accounts = {meter.account_id: meter.account for meter in loaded.meters.values()}
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (account_id, meter_id, start), charges in rows.charged.items():
        account = accounts[account_id]
        account.event_seq += 1
        events[account_id].append(
            charge_event(
                account_id=account_id,
                meter_id=meter_id,
                charges=charges,
                period=loaded.periods.rows[meter_id, start],
                period_total=totals[account_id, start],
                rated_at=loaded.now,
                seq=account.event_seq,
            )
        )
    rows_update([accounts[account_id] for account_id in events], ["event_seq"])
    return dict(events)


def _account_totals(periods: set[tuple[str, datetime]]) -> dict[tuple[str, datetime], Decimal]:
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


def _line_out(line: RatedLine) -> dict[str, str | None]:
    return {
        "description": line.description,
        "quantity": f"{line.quantity:f}",
        "unit_price": None if line.unit_price is None else f"{line.unit_price:f}",
        "amount": format_amount(line.amount),
    }
