"""Closing billing periods into finalized invoices.

One transaction per period, under the account's row lock, the lock the
rating service takes before it charges anything: a frame being rated while
its period closes either committed first (its charges are on the invoice) or
waits and then finds the period closed (its charges go to the open period,
marked late). Never both, never neither. Closing twice is harmless: the
second closer finds `closed_until` past the period and the invoice made.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Min, Q
from django.utils import timezone

from billing.models import Account, Invoice, InvoiceLine, MeterPeriodUsage
from billing.money import round_minor
from billing.periods import period_bounds
from billing.selectors import meter_tariff_at

logger = logging.getLogger(__name__)

# The last moment of a period [start, end).
LAST_MOMENT = timedelta(microseconds=1)
# A runaway guard: an account never closes more periods than this in one run.
MAX_PERIODS_PER_RUN = 1000


@dataclass(frozen=True)
class _Line:
    kind: str
    meter: Any  # a metering.models.Meter (billing does not import metering)
    description: str
    quantity: Decimal
    amount: Decimal


def periods_close_due(*, now: datetime | None = None) -> list[Invoice]:
    """Close every period of every account that has ended by `now` (the beat task)."""
    now = now or timezone.now()
    invoices: list[Invoice] = []
    for account in Account.objects.filter(meters__isnull=False).distinct().iterator():
        if _due(account, now):
            invoices += account_periods_close(account_id=account.id, until=now)
    return invoices


def account_periods_close(
    *, account_id: str, until: datetime, close_open: bool = False
) -> list[Invoice]:
    """Close the account's periods that ended by `until`, oldest first.

    With `close_open`, the period holding `until` closes too, cut short at
    `until` (the next one starts there), and is invoiced even when empty.
    """
    invoices: list[Invoice] = []
    for _ in range(MAX_PERIODS_PER_RUN):
        account = Account.objects.get(pk=account_id)
        start, end = period_bounds(
            _cursor(account),
            timezone=account.timezone,
            billing_period=account.billing_period,
            closed_until=account.closed_until,
        )
        cut = end > until
        if cut and not (close_open and start < until):
            return invoices
        invoice = _period_close(account_id, start=start, end=min(end, until), keep_empty=cut)
        if invoice is not None:
            invoices.append(invoice)
            if cut:
                return invoices
    logger.warning(
        "account %s still has periods to close after %d", account_id, MAX_PERIODS_PER_RUN
    )
    return invoices


def _due(account: Account, now: datetime) -> bool:
    start, _ = period_bounds(
        now,
        timezone=account.timezone,
        billing_period=account.billing_period,
        closed_until=account.closed_until,
    )
    return account.closed_until is None or account.closed_until < start


def _cursor(account: Account) -> datetime:
    """Where the account's first unclosed period starts."""
    if account.closed_until is not None:
        return account.closed_until
    earliest_usage = MeterPeriodUsage.objects.filter(account=account).aggregate(
        first=Min("period_start")
    )["first"]
    return min(account.created_at, earliest_usage or account.created_at)


def _period_close(
    account_id: str, *, start: datetime, end: datetime, keep_empty: bool
) -> Invoice | None:
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account_id)
        if account.closed_until is not None and account.closed_until > start:
            return None  # closed meanwhile by another closer: the caller looks again
        lines = _lines(account, start=start, end=end)
        account.closed_until = end
        account.save(update_fields=["closed_until"])
        if not lines and not keep_empty:
            return None
        subtotal = sum((line.amount for line in lines), Decimal(0))
        invoice = Invoice.objects.create(
            account=account,
            period_start=start,
            period_end=end,
            currency=account.currency,
            subtotal=subtotal,
            total=subtotal,
        )
        InvoiceLine.objects.bulk_create(
            InvoiceLine(
                invoice=invoice,
                position=position,
                kind=line.kind,
                meter=line.meter,
                description=line.description,
                quantity=line.quantity,
                amount=line.amount,
            )
            for position, line in enumerate(lines, start=1)
        )
    logger.info(
        "closed %s: %s to %s, total %s %s", account_id, start, end, subtotal, account.currency
    )
    return invoice


def _lines(account: Account, *, start: datetime, end: datetime) -> list[_Line]:
    """Per meter: its usage, its tariff's fixed fee, and the top-up to its minimum.

    Each line is rounded to the currency's minor unit, half up; the minimum's
    top-up is taken between rounded figures so that usage and top-up make
    exactly the minimum.
    """
    usages = {
        row.meter_id: row
        for row in MeterPeriodUsage.objects.filter(account=account, period_start=start)
    }
    # Meters with usage in the period (a device may send readings dated before
    # its meter was made), and the active ones that existed in it.
    meters = account.meters.filter(Q(id__in=usages) | Q(created_at__lt=end)).order_by(
        "created_at", "id"
    )
    lines: list[_Line] = []
    for meter in meters:
        usage = usages.get(meter.id)
        if usage is None and not meter.active:
            continue
        # The tariff in force at the period's last moment sets its fee and minimum.
        tariff = meter_tariff_at(meter=meter, at=end - LAST_MOMENT)
        amount = round_minor(usage.amount, account.currency) if usage else Decimal(0)
        if usage is not None:
            description = f"{meter.name}: {usage.usage.normalize():f} {tariff.unit} ({tariff.name})"
            lines.append(_Line(InvoiceLine.Kind.USAGE, meter, description, usage.usage, amount))
        if tariff.fixed_fee:
            description = f"{meter.name}: fixed fee ({tariff.name})"
            fee = round_minor(tariff.fixed_fee, account.currency)
            lines.append(_Line(InvoiceLine.Kind.FIXED_FEE, meter, description, Decimal(1), fee))
        minimum = round_minor(tariff.minimum, account.currency)
        if minimum > amount:
            description = f"{meter.name}: top-up to the minimum of {minimum} ({tariff.name})"
            lines.append(
                _Line(InvoiceLine.Kind.MINIMUM, meter, description, Decimal(1), minimum - amount)
            )
    return lines
