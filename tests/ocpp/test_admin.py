"""The admin over charge points' records: id tags (blocked and unblocked there, never
renamed), charging sessions with their running energy and amount, and the messages for
unknown transactions; sessions and messages are records, shown and never edited."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse

from metering.models import ChargingSession, IdTag, UnknownTransactionMessage
from metering.ocpp.services import transaction_start, unknown_transaction_record
from tests.ocpp.conftest import ID_TAG, make_charge_point

# `admin_client` is pytest-django's: a client logged in as a superuser.
pytestmark = pytest.mark.django_db

STARTED = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


def url(name: str, view: str, *pks) -> str:
    # Quoted as the admin quotes its links: "tag_22..." would otherwise unquote to 'tag"...'.
    return reverse(f"admin:metering_{name}_{view}", args=[quote(pk) for pk in pks])


@pytest.fixture
def rows() -> dict:
    point = make_charge_point()
    ref = transaction_start(
        charge_point=point.identity,
        connector_id=1,
        id_tag=ID_TAG,
        meter_start_wh=1_234_500,
        started_at=STARTED,
    )
    unknown_transaction_record(
        meter_id=point.meter.id, transaction_id=-1, action="MeterValues", payload={"x": 1}
    )
    return {
        "idtag": point.tag,
        "chargingsession": ChargingSession.objects.get(pk=ref.id),
        "unknowntransactionmessage": UnknownTransactionMessage.objects.get(),
    }


@pytest.mark.parametrize("name", ["idtag", "chargingsession", "unknowntransactionmessage"])
def test_the_list_and_the_page_of_each_render(admin_client, rows, name):
    listed = admin_client.get(url(name, "changelist"))
    assert listed.status_code == 200
    page = admin_client.get(url(name, "change", rows[name].pk))
    assert page.status_code == 200


def test_a_session_shows_its_energy_and_amount_so_far(admin_client, rows):
    listed = admin_client.get(url("chargingsession", "changelist")).content.decode()
    assert "0.000000 EUR" in listed  # the baseline reading: nothing charged yet


@pytest.mark.parametrize("name", ["chargingsession", "unknowntransactionmessage"])
def test_records_are_never_edited(admin_client, rows, name):
    assert admin_client.post(url(name, "change", rows[name].pk), {}).status_code == 403


def test_a_tag_is_blocked_and_unblocked_but_never_renamed(admin_client, rows):
    tag = rows["idtag"]
    page = url("idtag", "changelist")
    admin_client.post(page, {"action": "block", "_selected_action": [tag.pk]})
    assert IdTag.objects.get(pk=tag.pk).active is False
    admin_client.post(page, {"action": "unblock", "_selected_action": [tag.pk]})
    assert IdTag.objects.get(pk=tag.pk).active is True

    form = {"account": tag.account_id, "id_tag": "RENAMED", "active": "on"}
    admin_client.post(url("idtag", "change", tag.pk), form)
    assert IdTag.objects.get(pk=tag.pk).id_tag == ID_TAG
