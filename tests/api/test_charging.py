"""Charge points in the operator API: ocpp meters, id tags, charging sessions and their
remote stop (CONTRACT.md section 8)."""

import re
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from billing.keys import secret_hash
from metering.models import ChargingSession, IdTag, Meter
from metering.ocpp.readings import start_reading
from metering.ocpp.selectors import ChargePoint, id_tag_status
from metering.ocpp.services import session_complete, transaction_start
from metering.rating import readings_rate
from protocol import ReadingIn, meter_group
from tests.factories import make_account, make_tariff

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return make_account()


@pytest.fixture
def tariff():
    return make_tariff(unit_price="0.50")


def charger(api, account, tariff, charge_point_id="CP-1"):
    body = {"account": account.id, "tariff": tariff.id, "name": "Garage", "kind": "ocpp"}
    return api.post("/api/v1/meters/", {**body, "charge_point_id": charge_point_id}, format="json")


def test_an_ocpp_meter_gets_a_charge_point_id_and_a_password_a_charger_can_keep(
    api, account, tariff
):
    response = charger(api, account, tariff)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["charge_point_id"]) == ("ocpp", "CP-1")
    assert re.fullmatch(r"[0-9a-f]{40}", body["token"]), "AuthorizationKey: 40 hex at most"
    assert Meter.objects.get(pk=body["id"]).token_hash == secret_hash(body["token"])
    rotated = api.post(f"/api/v1/meters/{body['id']}/rotate-token/").json()["token"]
    assert re.fullmatch(r"[0-9a-f]{40}", rotated) and rotated != body["token"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "ocpp"}, "charge_point_id"),
        ({"kind": "delta", "charge_point_id": "CP-9"}, "charge_point_id"),
        ({"kind": "ocpp", "charge_point_id": "has:colon"}, "charge_point_id"),
        ({"kind": "ocpp", "charge_point_id": "x" * 49}, "charge_point_id"),
        ({"kind": "ocpp", "charge_point_id": "CP-1", "rollover_at": "100"}, "rollover_at"),
    ],
)
def test_charge_point_ids_are_checked(api, account, tariff, fields, field):
    body = {"account": account.id, "tariff": tariff.id, "name": "x", **fields}
    response = api.post("/api/v1/meters/", body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"], response.content


def test_a_charge_point_id_is_unique(api, account, tariff):
    assert charger(api, account, tariff).status_code == 201
    again = charger(api, make_account(), tariff)
    assert again.status_code == 400 and "charge_point_id" in again.json()["errors"]


def test_id_tags_are_made_listed_and_blocked(api, account):
    base = f"/api/v1/accounts/{account.id}/id-tags/"
    made = api.post(base, {"id_tag": "04A2B3C4"}, format="json")
    assert made.status_code == 201 and made.json()["active"] is True
    assert api.post(base, {"id_tag": "04a2b3c4"}, format="json").status_code == 400
    assert api.post(base, {"id_tag": "ÜBER"}, format="json").status_code == 400  # not ASCII
    assert api.post(base, {"id_tag": "x" * 21}, format="json").status_code == 400
    assert [t["id_tag"] for t in api.get(base).json()] == ["04A2B3C4"]
    assert id_tag_status(account_id=account.id, id_tag="04a2b3c4") == "Accepted"
    tag = made.json()["id"]
    assert (
        api.patch(f"/api/v1/id-tags/{tag}/", {"active": False}, format="json").json()["active"]
        is False
    )
    assert id_tag_status(account_id=account.id, id_tag="04A2B3C4") == "Blocked"
    other = make_account()  # the same card may belong to another account too
    assert (
        api.post(
            f"/api/v1/accounts/{other.id}/id-tags/", {"id_tag": "04A2B3C4"}, format="json"
        ).status_code
        == 201
    )


def started(api, account, tariff, *, connected: bool = True):
    """A session started and charged 3 kWh so far; the charge point online or not."""
    meter = charger(api, account, tariff).json()
    IdTag.objects.create(account=account, id_tag="T")
    at = timezone.now() - timedelta(minutes=10)
    point = ChargePoint(meter["id"], account.id, "CP-1", True)
    session = transaction_start(
        charge_point=point, connector_id=1, id_tag="T", meter_start_wh=2000, started_at=at
    )
    tid = session.transaction_id
    readings = [
        start_reading(transaction_id=tid, meter_start_wh=2000, at=at),
        ReadingIn(id=f"tx{tid}-a", ts=at + timedelta(minutes=1), value=5),
    ]
    readings_rate(meter_id=meter["id"], readings=readings)
    if connected:
        Meter.objects.filter(pk=meter["id"]).update(connection="specific.test")
    return meter, session


def test_sessions_show_their_running_amount_then_their_final_one(api, account, tariff):
    meter, session = started(api, account, tariff)
    base = f"/api/v1/accounts/{account.id}/charging-sessions/"
    [shown] = api.get(base).json()
    assert (shown["status"], shown["energy_kwh"], shown["amount"]) == ("active", "3", "1.500000")
    assert (shown["meter"], shown["charge_point_id"], shown["currency"]) == (
        meter["id"],
        "CP-1",
        "EUR",
    )
    assert (shown["meter_start_wh"], shown["meter_stop_wh"], shown["stopped_at"]) == (
        "2000",
        None,
        None,
    )
    session_complete(
        session_id=session.id, stopped_at=timezone.now(), meter_stop_wh=5000, reason="Local"
    )
    assert api.get(f"{base}?status=active").json() == []
    [done] = api.get(f"{base}?status=completed").json()
    assert (done["status"], done["amount"], done["meter_stop_wh"]) == (
        "completed",
        "1.500000",
        "5000",
    )
    assert api.get(f"{base}?status=stopped").status_code == 400


def test_a_stop_goes_to_the_charge_points_connection_after_commit(
    api, account, tariff, django_capture_on_commit_callbacks
):
    _, session = started(api, account, tariff)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(meter_group(session_meter(session)), channel)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/charging-sessions/{session.id}/stop/")
    assert response.status_code == 202 and response.json()["remote_stop_status"] == "Requested"
    message = async_to_sync(layer.receive)(channel)
    assert message == {
        "type": "ocpp.remote_stop",
        "session": session.id,
        "transaction": session.transaction_id,
    }


def session_meter(session) -> str:
    return ChargingSession.objects.get(pk=session.id).meter_id


def test_a_stop_is_refused_when_it_cannot_reach_or_is_over(api, account, tariff):
    _, session = started(api, account, tariff, connected=False)
    stop = f"/api/v1/charging-sessions/{session.id}/stop/"
    assert api.post(stop).status_code == 409
    session_complete(
        session_id=session.id, stopped_at=timezone.now(), meter_stop_wh=None, reason="x"
    )
    answer = api.post(stop)
    assert answer.status_code == 409 and answer.json()["code"] == "not_stoppable"
