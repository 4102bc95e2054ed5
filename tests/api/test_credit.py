"""Credit control's API (CONTRACT.md section 6): credits once per key, the balance, the
cut-off line, alerts."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from billing.models import Account, Credit, Event
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db


def credit(api, account, amount="50.00", key="k-1", **kwargs):
    body = {"amount": amount, "idempotency_key": key, **kwargs}
    return api.post(f"/api/v1/accounts/{account.id}/credits/", body, format="json")


def balance(api, account) -> dict:
    answer = api.get(f"/api/v1/accounts/{account.id}/balance/")
    assert answer.status_code == 200
    return answer.json()


def test_an_account_without_credits_has_no_balance(api):
    account = make_account()
    assert balance(api, account) == {
        "currency": "EUR",
        "credited": "0",
        "consumed": "0",
        "balance": "0",
        "cutoff_at": None,
        "cut_off": False,
    }


def test_the_same_key_is_the_same_entry_credited_once(api):
    account = make_account()
    first = credit(api, account, "50.00", description="top-up")
    assert first.status_code == 201
    assert first.json()["balance_after"] == "50.000000"
    again = credit(api, account, "50.00", description="top-up")
    assert again.status_code == 200 and again.json() == first.json()
    other = credit(api, account, "2.5", key="k-2")
    assert other.status_code == 201 and other.json()["balance_after"] == "52.500000"
    assert balance(api, account)["credited"] == "52.500000"


def test_keys_are_per_account(api):
    one, two = make_account(), make_account()
    assert credit(api, one).status_code == 201
    assert credit(api, two).status_code == 201
    assert Credit.objects.count() == 2


@pytest.mark.parametrize("amount", ["0", "-5", "1.0000001", "1e3", 5, "1.5\n"])
def test_a_credit_must_be_a_positive_decimal_string(api, amount):
    answer = credit(api, make_account(), amount)
    assert answer.status_code == 400
    assert "amount" in answer.json()["errors"]


@pytest.mark.django_db(transaction=True)
def test_racing_requests_with_one_key_credit_once(operator_key):
    """Two clients, two database connections, one key: one entry, 201 to one, 200 to the other."""
    account = make_account()
    answers: list = []
    start = threading.Barrier(2)

    def post() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {operator_key}")
        start.wait()
        try:
            answers.append(credit(client, account, "10", key="same"))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 201]
    assert answers[0].json() == answers[1].json()
    assert Credit.objects.filter(account=account).count() == 1
    assert Account.objects.get(pk=account.pk).credited == Decimal("10")


def test_a_cutoff_line_above_the_balance_cuts_off_and_a_credit_restores(api):
    account = make_account()
    credit(api, account, "5")
    answer = api.patch(f"/api/v1/accounts/{account.id}/", {"cutoff_at": "10"}, format="json")
    assert answer.status_code == 200 and answer.json()["cut_off"] is True
    assert balance(api, account)["cut_off"] is True
    credit(api, account, "5.000001", key="k-2")
    assert balance(api, account)["cut_off"] is False
    kinds = list(
        Event.objects.filter(account=account).order_by("id").values_list("type", flat=True)
    )
    assert kinds == ["balance.depleted", "balance.restored"]


def test_no_cutoff_without_credits(api):
    account = make_account()
    answer = api.patch(f"/api/v1/accounts/{account.id}/", {"cutoff_at": "0"}, format="json")
    assert answer.json()["cut_off"] is False and answer.json()["cutoff_at"] == "0.000000"
    answer = api.patch(f"/api/v1/accounts/{account.id}/", {"cutoff_at": None}, format="json")
    assert answer.json()["cutoff_at"] is None


def test_alerts_are_made_and_listed(api):
    account = make_account()
    meter, _ = make_meter(account, make_tariff())
    base = f"/api/v1/accounts/{account.id}/alerts/"
    made = api.post(
        base, {"kind": "usage_above", "threshold": "100", "meter": meter.id}, format="json"
    )
    assert made.status_code == 201, made.content
    assert made.json()["meter"] == meter.id and made.json()["last_fired_at"] is None
    api.post(base, {"kind": "balance_below", "threshold": "-5"}, format="json")
    assert [a["kind"] for a in api.get(base).json()] == ["usage_above", "balance_below"]
    assert Account.objects.get(pk=account.pk).has_alerts


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "balance_below", "threshold": "5", "meter": "METER"},  # account-wide only
        {"kind": "spend_above", "threshold": "5", "meter": "mtr_elsewhere"},
        {"kind": "spend_over", "threshold": "5"},
        {"kind": "spend_above", "threshold": 5},
    ],
)
def test_alerts_refuse_what_cannot_be_watched(api, body):
    account = make_account()
    meter, _ = make_meter(account, make_tariff())
    body = {k: meter.id if v == "METER" else v for k, v in body.items()}
    answer = api.post(f"/api/v1/accounts/{account.id}/alerts/", body, format="json")
    assert answer.status_code == 400
    assert set(answer.json()["errors"]) & {"meter", "kind", "threshold"}
