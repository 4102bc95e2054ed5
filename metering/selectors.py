"""Reads of meter state: who is connecting, and who may watch a dashboard."""

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from billing.keys import secret_hash
from billing.models import Account, DashboardKey, OperatorKey
from billing.selectors import account_user_allowed
from metering.models import Meter
from protocol import CLOSE_FORBIDDEN, CLOSE_NO_ACCOUNT, CLOSE_UNAUTHENTICATED


@dataclass(frozen=True)
class MeterIdentity:
    id: str
    account_id: str
    kind: str
    active: bool
    cut_off: bool = False  # the account's (credit control: devices are told on connecting)
    balance: Decimal = Decimal(0)


def meter_for_token(*, token: str) -> MeterIdentity | None:
    # A charge point's password is good only at /ocpp/ (metering/ocpp/selectors.py).
    meter = (
        Meter.objects.filter(token_hash=secret_hash(token))
        .exclude(kind=Meter.Kind.OCPP)
        .values(
            "id",
            "account_id",
            "kind",
            "active",
            "account__cut_off",
            "account__credited",
            "account__consumed",
        )
        .first()
    )
    if meter is None:
        return None
    credited, consumed = meter.pop("account__credited"), meter.pop("account__consumed")
    cut_off = meter.pop("account__cut_off")
    return MeterIdentity(**meter, cut_off=cut_off, balance=credited - consumed)


class Access(Enum):
    ALLOWED = 0
    NO_CREDENTIALS = CLOSE_UNAUTHENTICATED
    NOT_ALLOWED = CLOSE_FORBIDDEN
    NO_ACCOUNT = CLOSE_NO_ACCOUNT


def dashboard_access(*, account_id: str, token: str | None, in_url: bool) -> Access:
    """Whether `token` (an operator key or the account's dashboard key) may watch the account.

    A token that came in the URL (`?token=`) may only be a dashboard key: URLs end up in
    proxy logs and browser histories, where an operator key must never be.
    """
    if not token:
        return Access.NO_CREDENTIALS
    digest = secret_hash(token)
    operator = not in_url and (
        OperatorKey.objects.filter(key_hash=digest, revoked_at__isnull=True).exists()
    )
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


def account_event_seq(*, account_id: str) -> int:
    """The number of the account's latest committed dashboard event."""
    return Account.objects.filter(pk=account_id).values_list("event_seq", flat=True).first() or 0
