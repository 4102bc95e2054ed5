"""A rated batch written with a fixed number of queries: COPY for new rows (readings,
charges, the dashboards' event log), one `UPDATE ... FROM unnest()` per kind of changed
row (billing/bulk.py)."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.bulk import rows_insert, rows_update
from billing.credit_events import alert_event, balance_event
from billing.models import Charge, Event, MeterPeriodUsage
from billing.money import format_amount
from billing.pricing import Rated, RatedLine
from metering.dashboard import Charged, charge_event
from metering.event_log import events_keep
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
    (the account lock orders the commits), with the account's totals after the batch;
    saves each account's new event number and credit state (credit_write), and keeps the
    events for dashboards that miss some (metering/event_log.py)."""
    accounts = loaded.accounts()
    totals = {key: total.amount for key, total in loaded.totals.items()}
    for (account_id, _, start), charges in rows.charged.items():
        totals[account_id, start] += sum((charge.amount for charge in charges), Decimal(0))
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (account_id, meter_id, start), charges in rows.charged.items():
        account = accounts[account_id]
        account.event_seq += 1
        event = charge_event(
            account_id=account_id,
            meter_id=meter_id,
            charges=charges,
            period=loaded.periods.rows[meter_id, start],
            period_total=totals[account_id, start],
            rated_at=loaded.now,
            seq=account.event_seq,
        )
        if (watch := loaded.watches.get(account_id)) and watch.balance is not None:
            event["balance"] = format_amount(watch.balance)
        events[account_id].append(event)
    changed = set(events) | set(loaded.watches)
    rows_update([accounts[a] for a in sorted(changed)], ["event_seq", "consumed", "cut_off"])
    events_keep(events=events, at=loaded.now)
    return dict(events)


def credit_write(loaded: Loaded) -> list[Event]:
    """What the batch's credit watches decided (billing/credit.py), written: each
    account's consumed and cut-off (saved by events_number), the alerts that fired,
    and the outbox events."""
    accounts = loaded.accounts()
    events: list[Event] = []
    fired_alerts = []
    for account_id, watch in loaded.watches.items():
        account = accounts[account_id]
        account.consumed += watch.consumed
        account.cut_off = watch.cut_off
        for fired in watch.fired:
            alert = loaded.alerts[fired.alert.id]
            alert.fired_period_start, alert.armed = (
                fired.alert.fired_period_start,
                fired.alert.armed,
            )
            alert.last_fired_at = loaded.now
            fired_alerts.append(alert)
            events.append(alert_event(account_id=account_id, fired=fired, at=loaded.now))
        if watch.cut_off_now:
            depleted = balance_event(
                account_id=account_id, depleted=True, balance=watch.cut_off_balance, at=loaded.now
            )
            events.append(depleted)
    rows_update(fired_alerts, ["fired_period_start", "armed", "last_fired_at"])
    return Event.objects.bulk_create(events) if events else []


def _line_out(line: RatedLine) -> dict[str, str | None]:
    return {
        "description": line.description,
        "quantity": f"{line.quantity:f}",
        "unit_price": None if line.unit_price is None else f"{line.unit_price:f}",
        "amount": format_amount(line.amount),
    }
