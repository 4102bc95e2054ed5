"""Writes of credit control (CONTRACT.md section 6): credits, the cut-off line, alerts.

Each takes the account's row lock, the lock every rating batch takes first, so a
credit and a charge never interleave: the balance a batch sees is the balance the
last credit left, and a credit sees every charge committed before it. What a write
decides (a restore, a cut-off, a re-armed alert) is written in its transaction and
told after the commit (billing/credit_events.py).
"""

from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from billing.credit import BALANCE_BELOW, AlertRule, credit_rearms, cut_off_state
from billing.credit_events import balance_event, outbox_publish
from billing.events import dashboard_publish
from billing.models import Account, Alert, Credit, Event
from billing.money import format_amount


@dataclass(frozen=True)
class CreditOutcome:
    credit: Credit
    created: bool  # False: the idempotency key's entry, made before


def credit_add(
    *, account_id: str, amount: Decimal, description: str, idempotency_key: str
) -> CreditOutcome:
    """Credit the account once per idempotency key (racing requests: one entry, both get it)."""
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account_id)
        earlier = Credit.objects.filter(account=account, idempotency_key=idempotency_key).first()
        if earlier is not None:
            return CreditOutcome(earlier, created=False)
        now = timezone.now()
        account.credit_since = account.credit_since or now
        account.credited += amount
        credit = Credit.objects.create(
            account=account,
            amount=amount,
            description=description,
            idempotency_key=idempotency_key,
            balance_after=account.balance,
            created_at=now,
        )
        _balance_alerts_rearm(account)
        events = _cut_off_update(account, at=now)
        account.save(update_fields=["credited", "credit_since", "cut_off"])
        transaction.on_commit(partial(_told, account, events), robust=True)
    return CreditOutcome(credit, created=True)


def account_cutoff_set(*, account_id: str, cutoff_at: Decimal | None) -> Account:
    """Move the account's cut-off line (None: never cut off); the account is cut off or
    restored at once if its balance is now on the other side of it."""
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account_id)
        account.cutoff_at = cutoff_at
        events = _cut_off_update(account, at=timezone.now())
        account.save(update_fields=["cutoff_at", "cut_off"])
        transaction.on_commit(partial(_told, account, events), robust=True)
    return account


def alert_create(*, account: Account, kind: str, threshold: Decimal, meter_id: str | None) -> Alert:
    if meter_id is not None:
        if kind == BALANCE_BELOW:
            raise ValidationError({"meter": ["a balance alert is on the whole account"]})
        if not account.meters.filter(pk=meter_id).exists():
            raise ValidationError({"meter": [f"no meter {meter_id} on this account"]})
    with transaction.atomic():
        alert = Alert.objects.create(
            account=account, kind=kind, threshold=threshold, meter_id=meter_id
        )
        Account.objects.filter(pk=account.pk, has_alerts=False).update(has_alerts=True)
    return alert


def _balance_alerts_rearm(account: Account) -> None:
    """A credit that lifts the balance above a fired balance alert's threshold re-arms it."""
    fired = Alert.objects.filter(account=account, kind=BALANCE_BELOW, armed=False)
    rearmed = [
        alert.pk
        for alert in fired
        if credit_rearms(
            AlertRule(alert.id, alert.kind, alert.threshold, armed=False), balance=account.balance
        )
    ]
    Alert.objects.filter(pk__in=rearmed).update(armed=True)


def _cut_off_update(account: Account, *, at) -> list[Event]:
    """Cut the account off or restore it to match its balance; the event of the change."""
    balance = account.balance if account.credit_since else None
    state = cut_off_state(balance=balance, cutoff_at=account.cutoff_at)
    if state == account.cut_off:
        return []
    account.cut_off = state
    event = balance_event(account_id=account.id, depleted=state, balance=account.balance, at=at)
    event.save()
    return [event]


def _told(account: Account, events: list[Event]) -> None:
    """After the commit: the cut-off or restore to the devices and dashboards, or else the
    new balance to the dashboards."""
    outbox_publish(events)
    if account.credit_since and not events:
        balance = {"type": "balance", "balance": format_amount(account.balance)}
        dashboard_publish(account_id=account.id, events=[balance | {"cut_off": account.cut_off}])
