"""Reads of billing state: usage of the open period and charges, used by the API and dashboards."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet

from billing.models import (
    Account,
    AccountMember,
    Charge,
    DashboardKey,
    MeterPeriodUsage,
    Tariff,
)
from billing.periods import period_bounds
from billing.tariffs import assignment_at


@dataclass(frozen=True)
class MeterUsage:
    meter_id: str
    usage: Decimal
    amount: Decimal


@dataclass(frozen=True)
class AccountUsage:
    account_id: str
    currency: str
    period_start: datetime
    period_end: datetime
    total: Decimal
    meters: list[MeterUsage]


def account_usage(*, account: Account, at: datetime) -> AccountUsage:
    """Each of the account's meters' usage and amount in the period holding `at`."""
    start, end = period_bounds(
        at,
        timezone=account.timezone,
        billing_period=account.billing_period,
        closed_until=account.closed_until,
    )
    rows = {
        row.meter_id: row
        for row in MeterPeriodUsage.objects.filter(account=account, period_start=start)
    }
    meters = []
    for meter_id in account.meters.order_by("created_at", "id").values_list("id", flat=True):
        row = rows.get(meter_id)
        meters.append(
            MeterUsage(
                meter_id=meter_id,
                usage=row.usage if row else Decimal(0),
                amount=row.amount if row else Decimal(0),
            )
        )
    return AccountUsage(
        account_id=account.id,
        currency=account.currency,
        period_start=start,
        period_end=end,
        total=sum((m.amount for m in meters), Decimal(0)),
        meters=meters,
    )


def charge_list(
    *,
    account: Account,
    meter_id: str | None = None,
    since: datetime | None = None,
    after_id: int | None = None,
) -> QuerySet[Charge]:
    """The account's charges in id order, optionally of one meter, rated at or after `since`,
    and (for paging) with ids above `after_id`. The reading comes in the same query."""
    charges = Charge.objects.filter(account=account).select_related("reading").order_by("id")
    if meter_id is not None:
        charges = charges.filter(meter_id=meter_id)
    if since is not None:
        charges = charges.filter(rated_at__gte=since)
    if after_id is not None:
        charges = charges.filter(id__gt=after_id)
    return charges


def dashboard_key_list(*, account: Account) -> QuerySet[DashboardKey]:
    """The account's dashboard keys, revoked ones too, oldest first."""
    return account.dashboard_keys.order_by("created_at", "id")


# Who may watch every account's dashboard: whoever Django's admin would show the accounts
# to (a superuser has every permission). `is_staff` alone only opens the admin's door.
VIEW_EVERY_ACCOUNT = "billing.view_account"


def account_list_for_user(*, user) -> QuerySet[Account]:
    """The accounts a signed-in user may watch: all of them with the view permission on
    accounts, else their memberships."""
    accounts = Account.objects.order_by("name", "id")
    if user.has_perm(VIEW_EVERY_ACCOUNT):
        return accounts
    return accounts.filter(members__user=user)


def account_user_allowed(*, user, account_id: str) -> bool:
    """Whether `user` (authenticated or not) may watch the account's dashboard."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.has_perm(VIEW_EVERY_ACCOUNT):
        return True
    return AccountMember.objects.filter(user=user, account_id=account_id).exists()


def meter_tariff_at(*, meter, at: datetime) -> Tariff:
    """The tariff in force on `meter` (a metering Meter) at `at`, by the rule the rating
    batch applies to its preloaded history (billing.tariffs.assignment_at)."""
    history = meter.tariff_history.select_related("tariff").order_by("effective_from", "id")
    return assignment_at(list(history), at).tariff
