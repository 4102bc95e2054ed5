"""The demo of `make demo`: one account, a tariff, meters and a user to sign in with.

Idempotent: each piece is made once and found again by its fixed id or name.
"""

import secrets
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction

from billing.models import Account, AccountMember, Tariff
from metering.models import Meter
from metering.services import meter_create, meter_token_rotate

DEMO_ACCOUNT_ID = "acc_demo"
DEMO_TARIFF_NAME = "Demo energy"
DEMO_USERNAME = "demo"


@transaction.atomic
def demo_account_ensure() -> tuple[Account, Tariff]:
    account, _ = Account.objects.get_or_create(
        pk=DEMO_ACCOUNT_ID,
        defaults={"name": "Demo Energy Co", "currency": "EUR", "timezone": "Europe/Berlin"},
    )
    tariff = Tariff.objects.filter(name=DEMO_TARIFF_NAME, currency=account.currency).first()
    if tariff is None:
        tariff = Tariff.objects.create(
            name=DEMO_TARIFF_NAME,
            currency=account.currency,
            unit="kWh",
            billing_period="month",
            model=Tariff.PricingModel.GRADUATED,
            params={
                "tiers": [
                    {"up_to": "100", "unit_price": "0.32"},
                    {"up_to": None, "unit_price": "0.27"},
                ]
            },
            fixed_fee=Decimal(0),
            minimum=Decimal(0),
        )
    return account, tariff


def demo_meters_ensure(*, count: int) -> list[Meter]:
    """The demo account's first `count` meters, made where missing."""
    account, tariff = demo_account_ensure()
    meters = []
    for number in range(1, count + 1):
        name = f"Demo meter {number}"
        meter = Meter.objects.filter(account=account, name=name).first()
        if meter is None:
            meter, _ = meter_create(
                account=account, tariff=tariff, name=name, kind="delta", rollover_at=None
            )
        meters.append(meter)
    return meters


def demo_meter_tokens(*, count: int) -> dict[str, str]:
    """{meter id: a fresh device token}: tokens are stored hashed, so each run rotates them."""
    return {meter.id: meter_token_rotate(meter=meter) for meter in demo_meters_ensure(count=count)}


@transaction.atomic
def demo_user_ensure(*, account: Account) -> tuple[str, str]:
    """The demo user, a member of the account, with a new random password: (username, password)."""
    user, _ = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
    password = secrets.token_urlsafe(9)
    user.set_password(password)
    user.save()
    AccountMember.objects.get_or_create(user=user, account=account)
    return user.get_username(), password
