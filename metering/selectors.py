"""Reads of meter state: who is connecting, what a dashboard shows first, a meter's tariff."""

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.keys import secret_hash
from billing.models import Account, DashboardKey, OperatorKey, Tariff
from billing.money import format_amount, format_quantity
from billing.periods import isoformat
from billing.selectors import account_usage, account_user_allowed
from metering.models import Meter


@dataclass(frozen=True)
class MeterIdentity:
    id: str
    account_id: str
    kind: str
    active: bool


def meter_for_token(*, token: str) -> MeterIdentity | None:
    meter = (
        Meter.objects.filter(token_hash=secret_hash(token))
        .values("id", "account_id", "kind", "active")
        .first()
    )
    return MeterIdentity(**meter) if meter else None


class Access(Enum):
    ALLOWED = 0
    NO_CREDENTIALS = 4401
    NOT_ALLOWED = 4403
    NO_ACCOUNT = 4404


def dashboard_access(*, account_id: str, token: str | None) -> Access:
    """Whether `token` (an operator key or the account's dashboard key) may watch the account."""
    if not token:
        return Access.NO_CREDENTIALS
    digest = secret_hash(token)
    operator = OperatorKey.objects.filter(key_hash=digest, revoked_at__isnull=True).exists()
    key_account = (
        DashboardKey.objects.filter(key_hash=digest, revoked_at__isnull=True)
        .values_list("account_id", flat=True)
        .first()
    )
    if not operator and key_account is None:
        return Access.NO_CREDENTIALS
    if not Account.objects.filter(pk=account_id).exists():
        return Access.NO_ACCOUNT
    if operator or key_account == account_id:
        return Access.ALLOWED
    return Access.NOT_ALLOWED


def dashboard_session_access(*, account_id: str, user) -> Access:
    """Whether a user signed in with a Django session may watch the account."""
    if user is None or not user.is_authenticated:
        return Access.NO_CREDENTIALS
    if not Account.objects.filter(pk=account_id).exists():
        return Access.NO_ACCOUNT
    if account_user_allowed(user=user, account_id=account_id):
        return Access.ALLOWED
    return Access.NOT_ALLOWED


def account_snapshot(*, account_id: str) -> dict[str, Any]:
    """The dashboard's first message: the open period as it stands, at event number `seq`.

    Read under the account's lock, so no charge commits between reading the
    sequence number and the totals: events after `seq` are exactly those the
    snapshot does not count.
    """
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account_id)
        usage = account_usage(account=account, at=timezone.now())
    online = set(
        Meter.objects.filter(account=account).exclude(connection="").values_list("id", flat=True)
    )
    return {
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


def account_event_seq(*, account_id: str) -> int:
    """The number of the account's latest committed dashboard event."""
    return Account.objects.filter(pk=account_id).values_list("event_seq", flat=True).first() or 0


def meter_tariff_at(*, meter: Meter, at: datetime) -> Tariff:
    """The tariff in force at `at`: the latest assigned by then, else the first
    (a reading dated before its meter existed is rated on the first). The
    rating service applies the same rule to a frame's preloaded history."""
    history = meter.tariff_history.select_related("tariff")
    latest = history.filter(effective_from__lte=at).order_by("-effective_from", "-id").first()
    return (latest or history.order_by("effective_from", "id").first()).tariff
