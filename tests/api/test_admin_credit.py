"""The admin over credit control: credits made through the service, never changed; alerts shown."""

from decimal import Decimal

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse

from billing.credit_services import alert_create, credit_add
from billing.models import Account, Alert, Credit
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def url(name: str, view: str, *pks) -> str:
    return reverse(f"admin:billing_{name}_{view}", args=[quote(pk) for pk in pks])


def test_a_credit_added_in_the_admin_goes_through_the_service(admin_client):
    account = make_account()
    Account.objects.filter(pk=account.pk).update(cutoff_at=Decimal("0"))
    credit_add(account_id=account.id, amount=Decimal("1"), description="", idempotency_key="k")
    Account.objects.filter(pk=account.pk).update(consumed=Decimal("3"), cut_off=True)
    answer = admin_client.post(
        url("credit", "add"), {"account": account.id, "amount": "5", "description": "by hand"}
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    made = Credit.objects.get(account=account, description="by hand")
    assert made.balance_after == Decimal("3")  # credited 6, consumed 3
    account.refresh_from_db()
    assert (account.credited, account.cut_off) == (Decimal("6"), False)  # restored


def test_credits_never_change_once_made(admin_client):
    account = make_account()
    credit = credit_add(
        account_id=account.id, amount=Decimal("5"), description="", idempotency_key="k"
    ).credit
    page = admin_client.get(url("credit", "change", credit.pk))
    assert page.status_code == 200 and "5.000000" in page.content.decode()
    admin_client.post(url("credit", "change", credit.pk), {"amount": "500"})
    assert Credit.objects.get(pk=credit.pk).amount == Decimal("5")
    deleted = admin_client.post(url("credit", "delete", credit.pk), {"post": "yes"})
    assert deleted.status_code == 403 and Credit.objects.filter(pk=credit.pk).exists()


def test_alerts_are_listed_and_not_made_here(admin_client):
    account = make_account()
    alert = alert_create(account=account, kind="spend_above", threshold=Decimal("9"), meter_id=None)
    listing = admin_client.get(url("alert", "changelist"))
    assert listing.status_code == 200 and alert.id in listing.content.decode()
    assert admin_client.get(url("alert", "change", alert.pk)).status_code == 200
    assert admin_client.get(url("alert", "add")).status_code == 403
    assert Alert.objects.count() == 1
