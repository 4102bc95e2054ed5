"""Django admin: every model's pages render, money rows are read-only, hashes never shown."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse

from billing.keys import secret_hash
from billing.models import (
    Charge,
    Invoice,
    InvoiceLine,
    MeterPeriodUsage,
    OperatorKey,
)
from metering.models import Meter, Reading
from tests.factories import make_account, make_meter, make_operator_key, make_tariff

# `admin_client` is pytest-django's: a client logged in as a superuser.
pytestmark = pytest.mark.django_db

TS = datetime(2026, 3, 1, 12, tzinfo=UTC)
PERIOD_START = datetime(2026, 2, 28, 23, tzinfo=UTC)
PERIOD_END = datetime(2026, 3, 31, 22, tzinfo=UTC)

ALL_MODELS = [
    "billing/account",
    "billing/tariff",
    "billing/operatorkey",
    "billing/meterperiodusage",
    "billing/charge",
    "billing/invoice",
    "metering/meter",
    "metering/reading",
]
READ_ONLY = [
    "billing/meterperiodusage",
    "billing/charge",
    "billing/invoice",
    "metering/reading",
]


@pytest.fixture
def rows() -> dict:
    """One of everything, related as the services would relate them."""
    account = make_account()
    tariff = make_tariff()
    meter, token = make_meter(account, tariff)
    reading = Reading.objects.create(
        meter=meter, reading_id="r-1", ts=TS, quantity=Decimal("2.5"), received_at=TS
    )
    charge = Charge.objects.create(
        account=account,
        meter=meter,
        reading=reading,
        tariff=tariff,
        period_start=PERIOD_START,
        quantity=Decimal("2.5"),
        amount=Decimal("0.75"),
        currency="EUR",
        rated_at=TS,
    )
    usage = MeterPeriodUsage.objects.create(
        meter=meter,
        account=account,
        period_start=PERIOD_START,
        period_end=PERIOD_END,
        usage=Decimal("2.5"),
        exact_amount=Decimal("0.75"),
        amount=Decimal("0.75"),
    )
    invoice = Invoice.objects.create(
        account=account,
        period_start=PERIOD_START,
        period_end=PERIOD_END,
        currency="EUR",
        subtotal=Decimal("0.75"),
        total=Decimal("0.75"),
    )
    InvoiceLine.objects.create(
        invoice=invoice,
        position=0,
        kind="usage",
        meter=meter,
        description="meter: 2.5 kWh",
        quantity=Decimal("2.5"),
        amount=Decimal("0.75"),
    )
    make_operator_key()
    return {
        "billing/account": account,
        "billing/tariff": tariff,
        "billing/operatorkey": OperatorKey.objects.get(),
        "billing/meterperiodusage": usage,
        "billing/charge": charge,
        "billing/invoice": invoice,
        "metering/meter": meter,
        "metering/reading": reading,
        "token": token,
    }


def url(model: str, view: str, *pks) -> str:
    app, name = model.split("/")
    # Quoted as the admin quotes them: "acc_22..." would otherwise unquote to 'acc"...'.
    return reverse(f"admin:{app}_{name}_{view}", args=[quote(pk) for pk in pks])


@pytest.mark.parametrize("model", ALL_MODELS)
def test_changelist_and_change_page_render(admin_client, rows, model):
    response = admin_client.get(url(model, "changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    response = admin_client.get(url(model, "change", rows[model].pk))
    assert response.status_code == 200


@pytest.mark.parametrize("model", ALL_MODELS)
def test_changelist_search_and_filters_run(admin_client, rows, model):
    response = admin_client.get(url(model, "changelist"), {"q": "not-an-id"})
    assert response.status_code == 200


def test_charge_list_shows_the_device_reading_id(admin_client, rows):
    response = admin_client.get(url("billing/charge", "changelist"), {"q": "r-1"})
    assert response.context["cl"].result_count == 1
    assert "r-1" in response.content.decode()


@pytest.mark.parametrize("model", READ_ONLY)
def test_money_and_usage_rows_are_read_only(admin_client, rows, model):
    assert admin_client.get(url(model, "add")).status_code == 403
    obj = rows[model]
    assert admin_client.post(url(model, "change", obj.pk), {}).status_code == 403
    assert admin_client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_invoice_page_shows_its_lines(admin_client, rows):
    response = admin_client.get(url("billing/invoice", "change", rows["billing/invoice"].pk))
    assert "meter: 2.5 kWh" in response.content.decode()


@pytest.mark.parametrize("model", ["billing/operatorkey", "metering/meter"])
def test_keys_and_tokens_are_made_elsewhere_and_hashes_never_shown(admin_client, rows, model):
    assert admin_client.get(url(model, "add")).status_code == 403
    key_hashes = [k.key_hash for k in OperatorKey.objects.all()]
    hashes = [*key_hashes, secret_hash(rows["token"]), rows["token"]]
    for page in (url(model, "changelist"), url(model, "change", rows[model].pk)):
        body = admin_client.get(page).content.decode()
        assert not any(h in body for h in hashes)


def test_revoking_operator_keys_locks_them_out(admin_client, rows):
    key = make_operator_key()
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    account_url = f"/api/v1/accounts/{rows['billing/account'].id}/"
    assert api.get(account_url).status_code == 200

    response = admin_client.post(
        url("billing/operatorkey", "changelist"),
        {
            "action": "revoke",
            "_selected_action": [k.pk for k in OperatorKey.objects.all()],
        },
    )
    assert response.status_code == 302
    assert not OperatorKey.objects.filter(revoked_at__isnull=True).exists()
    assert api.get(account_url).status_code == 401


def test_disabling_a_meter_in_admin_goes_through_the_service(
    admin_client, rows, django_capture_on_commit_callbacks
):
    meter = rows["metering/meter"]
    with django_capture_on_commit_callbacks() as closes:
        response = admin_client.post(
            url("metering/meter", "changelist"),
            {"action": "disable", "_selected_action": [meter.pk]},
        )
    assert response.status_code == 302
    assert not Meter.objects.get(pk=meter.pk).active
    assert len(closes) == 1  # meter_update closes the device's connections (4403)

    assignment = meter.tariff_history.get()
    form = {
        "name": "renamed",
        "active": "on",
        # The read-only tariff history inline still posts its management form.
        "tariff_history-TOTAL_FORMS": "1",
        "tariff_history-INITIAL_FORMS": "1",
        "tariff_history-0-id": str(assignment.pk),
        "tariff_history-0-meter": meter.pk,
    }
    response = admin_client.post(url("metering/meter", "change", meter.pk), form)
    assert response.status_code == 302
    meter = Meter.objects.get(pk=meter.pk)
    assert (meter.name, meter.active) == ("renamed", True)
    assert meter.tariff_history.get() == assignment
