"""Closing billing periods into finalized invoices.

One transaction per period, under the account's row lock, the lock the
rating service takes before it charges anything: a frame being rated while
its period closes either committed first (its charges are on the invoice) or
waits and then finds the period closed (its charges go to the open period,
marked late). Never both, never neither. Closing twice is harmless: the
second closer finds `closed_until` past the period and the invoice made.

A stretch of periods with nothing to bill closes in one step, to the start of
the next period that may have something (`_empty_until`), however many periods
it spans; each account closes on its own, so one that fails to close holds up
no other (`periods_close_due`).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Min, Q
from django.utils import timezone

from billing.api.serializers import InvoiceOut
from billing.models import Account, Event, Invoice, InvoiceLine, MeterPeriodUsage
from billing.money import round_minor
from billing.outbox import event_record
from billing.periods import period_bounds
from billing.selectors import meter_tariff_at
from project.metrics import PERIOD_CLOSE_FAILURES

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
    """Close every period of every account that has ended by `now` (the beat task).

    An account whose close fails is logged and counted, and tried again next run (its
    periods closed before the failure stay closed, though not in the list returned);
    every other account closes all the same.
    """
    now = now or timezone.now()
    invoices: list[Invoice] = []
    # The earliest usage of each account never closed, in one query: without it, every run
    # read it account by account (two queries each; 0.8 s a run with 1,500 accounts).
    earliest = dict(
        MeterPeriodUsage.objects.filter(account__closed_until__isnull=True)
        .values("account")
        .annotate(first=Min("period_start"))
        .values_list("account", "first")
    )
    for account in Account.objects.filter(meters__isnull=False).distinct().iterator():
        try:
            if _due(account, now, earliest.get(account.id)):
                invoices += account_periods_close(account_id=account.id, until=now)
        except Exception:
            PERIOD_CLOSE_FAILURES.inc()
            logger.exception(
                "closing the periods of account %s failed; it is tried again next run",
                account.id,
                extra={"account": account.id},
            )
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
        invoice = _period_close(
            account_id, start=start, end=min(end, until), until=until, keep_empty=cut
        )
        if invoice is not None:
            invoices.append(invoice)
            if cut:
                return invoices
    logger.warning(
        "account %s still has periods to close after %d", account_id, MAX_PERIODS_PER_RUN
    )
    return invoices


def _due(account: Account, now: datetime, earliest_usage: datetime | None) -> bool:
    """Whether the account has a period that ended by `now` (as account_periods_close
    decides: never closed, its first period is the one of `_cursor`)."""
    if account.closed_until is None:
        _, end = period_bounds(
            min(account.created_at, earliest_usage or account.created_at),
            timezone=account.timezone,
            billing_period=account.billing_period,
            closed_until=None,
        )
        return end <= now
    start, _ = period_bounds(
        now,
        timezone=account.timezone,
        billing_period=account.billing_period,
        closed_until=account.closed_until,
    )
    return account.closed_until < start


def _cursor(account: Account) -> datetime:
    """Where the account's first unclosed period starts."""
    if account.closed_until is not None:
        return account.closed_until
    earliest_usage = MeterPeriodUsage.objects.filter(account=account).aggregate(
        first=Min("period_start")
    )["first"]
    return min(account.created_at, earliest_usage or account.created_at)


def _period_close(
    account_id: str, *, start: datetime, end: datetime, until: datetime, keep_empty: bool
) -> Invoice | None:
    """Close [start, end) into an invoice, or, with nothing to bill, close the empty
    stretch from `start` on; None when nothing was invoiced."""
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account_id)
        if account.closed_until is not None and account.closed_until > start:
            return None  # closed meanwhile by another closer: the caller looks again
        lines = _lines(account, start=start, end=end)
        empty = not lines and not keep_empty
        # Worked out under the lock: a reading rated before it is in the stretch's
        # figures, one rated after finds the stretch closed and is charged late.
        account.closed_until = _empty_until(account, after=end, until=until) if empty else end
        account.save(update_fields=["closed_until"])
        if empty:
            return None
        invoice = _invoice_create(account, start=start, end=end, lines=lines)
        event_record(
            type=Event.Type.INVOICE_FINALIZED,
            account_id=account.id,
            data=InvoiceOut(invoice).data,
            live=False,  # for webhooks: no dashboard or device listens to it
        )
    logger.info(
        "closed %s: %s to %s, total %s %s",
        account_id,
        start,
        end,
        invoice.total,
        account.currency,
        extra={"account": account_id},
    )
    return invoice


def _invoice_create(
    account: Account, *, start: datetime, end: datetime, lines: list[_Line]
) -> Invoice:
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
    return invoice


def _empty_until(account: Account, *, after: datetime, until: datetime) -> datetime:
    """Where an empty stretch of periods from `after` ends: the start of the first
    period that may have something to bill (usage, or an active meter on a tariff with
    a fixed fee or minimum, as `_lines` bills them), at most that of the period holding
    `until`. Never before `after`."""
    next_usage = MeterPeriodUsage.objects.filter(
        account=account, period_start__gte=after
    ).aggregate(first=Min("period_start"))["first"]
    fee = _first_fee_moment(account, after=after)
    target = min(moment for moment in (until, next_usage, fee) if moment is not None)
    start, _ = period_bounds(
        target, timezone=account.timezone, billing_period=account.billing_period
    )
    return max(start, after)


def _first_fee_moment(account: Account, *, after: datetime) -> datetime | None:
    """The earliest moment from `after` on at which an active meter of the account
    exists on a tariff with a fixed fee or a minimum, or None.

    A period bills a fee when such a meter exists at its last moment with such a tariff
    in force then (`_lines`), so no period ending by this moment does.
    """
    earliest = None
    for meter in account.meters.filter(active=True).prefetch_related("tariff_history__tariff"):
        history = sorted(meter.tariff_history.all(), key=lambda a: (a.effective_from, a.id))
        for index, assignment in enumerate(history):
            if not (assignment.tariff.fixed_fee or assignment.tariff.minimum):
                continue
            # In force from its start (the first: from any time) until the next begins,
            # by assignment_at's rule.
            begins = [after, meter.created_at] + ([assignment.effective_from] if index else [])
            moment = max(begins)
            ends = history[index + 1].effective_from if index + 1 < len(history) else None
            if (ends is None or moment < ends) and (earliest is None or moment < earliest):
                earliest = moment
    return earliest


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
