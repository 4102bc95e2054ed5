"""Invoices in the operator API: close-period, list, detail, CSV; the billing period rule."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from metering.parsing import ReadingIn
from metering.rating import readings_rate
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def account_with_usage():
    account = make_account()
    meter, _ = make_meter(
        account,
        make_tariff(unit_price="0.3", fixed_fee="9.90"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    reading = ReadingIn(id="r", ts=timezone.now(), quantity=D("10"))
    readings_rate(meter_id=meter.id, readings=[reading])
    return account, meter


def test_close_period_answers_201_with_the_invoice(api, account_with_usage):
    account, _ = account_with_usage
    response = api.post(f"/api/v1/accounts/{account.id}/close-period/")
    assert response.status_code == 201
    invoice = response.json()
    assert {k: invoice[k] for k in ("account", "status", "subtotal", "total", "currency")} == {
        "account": account.id,
        "status": "finalized",
        "subtotal": "12.90",
        "total": "12.90",
        "currency": "EUR",
    }
    assert [(line["quantity"], line["amount"]) for line in invoice["lines"]] == [
        ("10", "3.00"),
        ("1", "9.90"),
    ]
    assert all(line["description"] for line in invoice["lines"])
    listed = api.get(f"/api/v1/invoices/?account={account.id}").json()["results"]
    assert [i["id"] for i in listed] == [invoice["id"]]
    assert api.get(f"/api/v1/invoices/{invoice['id']}/").json() == invoice


def test_usage_after_close_period_is_a_fresh_period(api, account_with_usage):
    account, _ = account_with_usage
    api.post(f"/api/v1/accounts/{account.id}/close-period/")
    usage = api.get(f"/api/v1/accounts/{account.id}/usage/").json()
    assert usage["total"] == "0.000000"


def test_invoice_lines_as_csv(api, account_with_usage):
    account, meter = account_with_usage
    invoice = api.post(f"/api/v1/accounts/{account.id}/close-period/").json()
    response = api.get(f"/api/v1/invoices/{invoice['id']}/lines.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(row["kind"], row["meter"], row["amount"]) for row in rows] == [
        ("usage", meter.id, "3.00"),
        ("fixed_fee", meter.id, "9.90"),
    ]


def test_invoice_list_needs_an_account(api):
    response = api.get("/api/v1/invoices/")
    assert response.status_code == 400
    assert "account" in response.json()["errors"]
    assert api.get("/api/v1/invoices/?account=acc_missing").status_code == 404
    assert api.get("/api/v1/invoices/inv_missing/").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/invoices/?account=acc_x"),
        ("get", "/api/v1/invoices/inv_x/"),
        ("get", "/api/v1/invoices/inv_x/lines.csv"),
        ("post", "/api/v1/accounts/acc_x/close-period/"),
    ],
)
def test_invoices_need_the_operator_key(client, method, path):
    assert getattr(client, method)(path).status_code == 401


def test_an_accounts_meters_share_one_billing_period(api):
    account = make_account()
    monthly = make_tariff()
    minutely = make_tariff(billing_period="PT1M")
    first = api.post(
        "/api/v1/meters/",
        {"account": account.id, "tariff": minutely.id, "name": "a", "kind": "delta"},
        format="json",
    )
    assert first.status_code == 201
    second = api.post(
        "/api/v1/meters/",
        {"account": account.id, "tariff": monthly.id, "name": "b", "kind": "delta"},
        format="json",
    )
    assert second.status_code == 400
    assert "tariff" in second.json()["errors"]
    account.refresh_from_db()
    assert account.billing_period == "PT1M"
