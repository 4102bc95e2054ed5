"""Reads of meter state: who is connecting, and who may watch a dashboard."""

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from billing.keys import secret_hash
from billing.models import Account, DashboardKey, OperatorKey
from billing.selectors import account_user_allowed
from metering.models import Meter
from protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_NO_ACCOUNT,
    CLOSE_UNAUTHENTICATED,
    dashboard_key_group,
    operator_key_group,
    user_group,
)


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


@dataclass(frozen=True)
class Grant:
    """What a dashboard's credentials come to. Allowed, `credential` names the channel-layer
    group of the credential it came with (protocol.py), where a revocation is told; the
    connections per credential are counted by it too."""

    access: Access
    credential: str | None = None


def dashboard_access(*, account_id: str, token: str | None, in_url: bool) -> Grant:
    """Whether `token` (an operator key or the account's dashboard key) may watch the account.

    A token that came in the URL (`?token=`) may only be a dashboard key: URLs end up in
    proxy logs and browser histories, where an operator key must never be.
    """
    if not token:
        return Grant(Access.NO_CREDENTIALS)
    digest = secret_hash(token)
    operator = None
    if not in_url:
        operator = (
            OperatorKey.objects.filter(key_hash=digest, revoked_at__isnull=True)
            .values_list("pk", flat=True)
            .first()
        )
    key = (
        DashboardKey.objects.filter(key_hash=digest, revoked_at__isnull=True)
        .values_list("pk", "account_id")
        .first()
    )
    if operator is None and key is None:
        return Grant(Access.NO_CREDENTIALS)
    if not Account.objects.filter(pk=account_id).exists():
        return Grant(Access.NO_ACCOUNT)
    if operator is not None:
        return Grant(Access.ALLOWED, operator_key_group(operator))
    if key[1] == account_id:
        return Grant(Access.ALLOWED, dashboard_key_group(key[0]))
    return Grant(Access.NOT_ALLOWED)


def dashboard_session_access(*, account_id: str, user) -> Grant:
    """Whether a user signed in with a Django session may watch the account."""
    if user is None or not user.is_authenticated:
        return Grant(Access.NO_CREDENTIALS)
    if not Account.objects.filter(pk=account_id).exists():
        return Grant(Access.NO_ACCOUNT)
    if account_user_allowed(user=user, account_id=account_id):
        return Grant(Access.ALLOWED, user_group(user.pk))
    return Grant(Access.NOT_ALLOWED)
