"""Rows for tests, made through the ORM with sensible defaults."""

from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from billing.keys import new_secret, secret_hash
from billing.models import Account, DashboardKey, OperatorKey, Tariff
from metering.models import Meter, MeterTariff

GRADUATED_TIERS = [
    {"up_to": "100", "unit_price": "0.30"},
    {"up_to": None, "unit_price": "0.25"},
]


def make_account(**fields) -> Account:
    fields = {"name": "Acme", "currency": "EUR", "timezone": "Europe/Berlin", **fields}
    return Account.objects.create(**fields)


def make_tariff(
    model: str = "per_unit",
    currency: str = "EUR",
    *,
    fixed_fee: str = "0",
    minimum: str = "0",
    billing_period: str = "month",
    **params,
) -> Tariff:
    if not params:
        params = {"unit_price": "0.30"} if model == "per_unit" else {"tiers": GRADUATED_TIERS}
    return Tariff.objects.create(
        name=model,
        currency=currency,
        model=model,
        params=params,
        fixed_fee=Decimal(fixed_fee),
        minimum=Decimal(minimum),
        billing_period=billing_period,
    )


def make_meter(
    account: Account,
    tariff: Tariff,
    *,
    kind: str = "delta",
    rollover_at=None,
    effective_from: datetime | None = None,
) -> tuple[Meter, str]:
    """A meter and its device token."""
    token = new_secret("mtk")
    meter = Meter.objects.create(
        account=account,
        name="meter",
        kind=kind,
        rollover_at=rollover_at,
        token_hash=secret_hash(token),
    )
    MeterTariff.objects.create(
        meter=meter, tariff=tariff, effective_from=effective_from or timezone.now()
    )
    return meter, token


def make_operator_key() -> str:
    key = new_secret("mlk")
    OperatorKey.objects.create(name="tests", key_hash=secret_hash(key))
    return key


def make_dashboard_key(account: Account) -> str:
    key = new_secret("dbk")
    DashboardKey.objects.create(account=account, key_hash=secret_hash(key))
    return key
