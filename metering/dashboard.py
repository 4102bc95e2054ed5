"""The dashboard protocol's messages (CONTRACT.md section 4), built in one place.

A dashboard's first message is a snapshot of the open period at the
account's event number `seq`; then come charge events numbered after it, in
commit order, and meter status changes. The rating batch builds its charge
events here, the dashboard consumer its snapshots.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.models import Account, MeterPeriodUsage
from billing.money import format_amount, format_quantity
from billing.periods import isoformat
from billing.selectors import account_usage
from metering.models import Meter


@dataclass(frozen=True)
class Charged:
    """One reading's charge, as a charge event sums it."""

    reading_id: str
    quantity: Decimal
    amount: Decimal


def charge_event(
    *,
    account_id: str,
    meter_id: str,
    charges: list[Charged],
    period: MeterPeriodUsage,
    period_total: Decimal,
    rated_at: datetime,
    seq: int,
) -> dict[str, Any]:
    """A meter's charges of one batch in one period, with the totals after them."""
    return {
        "type": "charge",
        "account": account_id,
        "meter": meter_id,
        "reading_ids": [charge.reading_id for charge in charges],
        "quantity": format_quantity(sum((c.quantity for c in charges), Decimal(0))),
        "amount": format_amount(sum((c.amount for c in charges), Decimal(0))),
        "meter_usage": format_quantity(period.usage),
        "period_total": format_amount(period_total),
        "period": {"start": isoformat(period.period_start), "end": isoformat(period.period_end)},
        "rated_at": isoformat(rated_at),
        "seq": seq,
    }


def meter_status_event(*, meter_id: str, online: bool) -> dict[str, Any]:
    return {"type": "meter_status", "meter": meter_id, "online": online}


def account_snapshot(*, account_id: str) -> dict[str, Any]:
    """The dashboard's first message: the open period as it stands, at event number `seq`.

    Read in one snapshot of the database (`_one_snapshot`), so the totals count exactly the
    events up to `seq`, and the ones after it are exactly those the dashboard is sent next;
    without the account's lock, which rating holds while it charges: a dashboard
    connecting never waits for rating, nor rating for it.
    """
    with _one_snapshot():
        account = Account.objects.get(pk=account_id)
        usage = account_usage(account=account, at=timezone.now())
        online = set(
            Meter.objects.filter(account=account)
            .exclude(connection="")
            .values_list("id", flat=True)
        )
    snapshot = {
        "type": "snapshot",
        "account": account.id,
        "seq": account.event_seq,
        "currency": account.currency,
        "period": {"start": isoformat(usage.period_start), "end": isoformat(usage.period_end)},
        "total": format_amount(usage.total),
        "meters": [
            {
                "id": meter.meter_id,
                "usage": format_quantity(meter.usage),
                "amount": format_amount(meter.amount),
                "online": meter.meter_id in online,
            }
            for meter in usage.meters
        ],
    }
    if account.credit_since is not None:  # prepaid (CONTRACT.md section 6): its balance
        snapshot |= {"balance": format_amount(account.balance), "cut_off": account.cut_off}
    return snapshot


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """A read-only transaction whose every query sees the database as of its first one.

    PostgreSQL: REPEATABLE READ (its read committed default takes a fresh view at each
    query, so a charge committing between two reads would be half in). SQLite runs one
    writer at a time and Django's transactions there begin IMMEDIATE: the snapshot is
    already whole. Inside a caller's transaction, the caller's isolation stands.
    """
    connection = transaction.get_connection()
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield
