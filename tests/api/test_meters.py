"""Meters: create with a one-time token, patch, rotate; open connections closed after commit."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from billing.keys import secret_hash
from metering.models import Meter, MeterTariff
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return make_account()


@pytest.fixture
def tariff():
    return make_tariff()


def create(api, **fields):
    return api.post("/api/v1/meters/", fields, format="json")


def errors_of(response) -> dict:
    assert response.status_code == 400, response.content
    return response.json()["errors"]


def listening(meter_id: str):
    """A channel in the meter's group, as a connected device consumer would be."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(f"meter-{meter_id}", channel)
    return channel


def received(channel: str) -> dict:
    return async_to_sync(get_channel_layer().receive)(channel)


def test_create_shows_token_once(api, account, tariff):
    response = create(api, account=account.id, tariff=tariff.id, name="Main", kind="delta")
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("mtr_")
    assert body["token"].startswith("mtk_")
    assert body["account"] == account.id and body["tariff"] == tariff.id
    assert body["kind"] == "delta" and body["rollover_at"] is None and body["active"] is True

    meter = Meter.objects.get(pk=body["id"])
    assert meter.token_hash == secret_hash(body["token"])
    (assignment,) = MeterTariff.objects.filter(meter=meter)
    assert assignment.tariff_id == tariff.id
    assert assignment.effective_from == meter.created_at

    fetched = api.get(f"/api/v1/meters/{meter.id}/")
    assert fetched.status_code == 200
    assert "token" not in fetched.json()
    assert fetched.json() == {k: v for k, v in body.items() if k != "token"}


def test_create_cumulative_with_rollover(api, account, tariff):
    response = create(
        api,
        account=account.id,
        tariff=tariff.id,
        name="Register",
        kind="cumulative",
        rollover_at="100000",
    )
    assert response.status_code == 201
    assert response.json()["rollover_at"] == "100000"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "gauge"}, "kind"),
        ({"account": "acc_missing"}, "account"),
        ({"tariff": "trf_missing"}, "tariff"),
        ({"rollover_at": "0"}, "rollover_at"),
        ({"rollover_at": "-5"}, "rollover_at"),
        ({"rollover_at": 1000.5}, "rollover_at"),
        ({"rollover_at": "1000", "kind": "delta"}, "rollover_at"),
        ({"name": ""}, "name"),
    ],
)
def test_create_bad_field_is_named(api, account, tariff, change, field):
    body = {"account": account.id, "tariff": tariff.id, "name": "M", "kind": "cumulative"}
    assert list(errors_of(create(api, **{**body, **change}))) == [field]
    assert not Meter.objects.exists()


def test_tariff_in_another_currency_is_refused(api, account):
    usd = make_tariff(currency="USD")
    errors = errors_of(create(api, account=account.id, tariff=usd.id, name="M", kind="delta"))
    assert list(errors) == ["tariff"]
    assert "USD" in errors["tariff"][0]
    assert not Meter.objects.exists()


def test_rotate_token_replaces_the_hash_and_closes_4401(
    api, account, tariff, django_capture_on_commit_callbacks
):
    meter, old_token = make_meter(account, tariff)
    channel = listening(meter.id)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.post(f"/api/v1/meters/{meter.id}/rotate-token/")
    assert response.status_code == 200
    new_token = response.json()["token"]
    assert response.json()["id"] == meter.id
    assert new_token != old_token
    assert not Meter.objects.filter(token_hash=secret_hash(old_token)).exists()
    assert Meter.objects.get(token_hash=secret_hash(new_token)).pk == meter.pk
    assert len(callbacks) == 1
    assert received(channel) == {"type": "meter.close", "code": 4401}


def test_nothing_is_closed_before_commit(api, account, tariff, django_capture_on_commit_callbacks):
    meter, _ = make_meter(account, tariff)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        api.post(f"/api/v1/meters/{meter.id}/rotate-token/")
        api.patch(f"/api/v1/meters/{meter.id}/", {"active": False}, format="json")
    assert len(callbacks) == 2  # queued for the commit, not sent


def test_deactivate_closes_4403(api, account, tariff, django_capture_on_commit_callbacks):
    meter, _ = make_meter(account, tariff)
    channel = listening(meter.id)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(f"/api/v1/meters/{meter.id}/", {"active": False}, format="json")
    assert response.status_code == 200
    assert response.json()["active"] is False
    meter.refresh_from_db()
    assert meter.active is False
    assert received(channel) == {"type": "meter.close", "code": 4403}


def test_patch_keeps_the_register_the_rating_service_wrote(api, account, tariff):
    meter, _ = make_meter(account, tariff, kind="cumulative")
    Meter.objects.filter(pk=meter.pk).update(last_value="42")  # rated after `meter` was loaded
    api.patch(f"/api/v1/meters/{meter.id}/", {"name": "Renamed"}, format="json")
    meter.refresh_from_db()
    assert meter.name == "Renamed"
    assert meter.last_value == 42


def test_patch_tariff_adds_an_assignment_from_now(
    api, account, tariff, django_capture_on_commit_callbacks
):
    meter, _ = make_meter(account, tariff)
    graduated = make_tariff("graduated")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.patch(f"/api/v1/meters/{meter.id}/", {"tariff": graduated.id}, format="json")
    assert response.status_code == 200
    assert response.json()["tariff"] == graduated.id
    history = list(MeterTariff.objects.filter(meter=meter))
    assert [h.tariff_id for h in history] == [tariff.id, graduated.id]
    assert history[1].effective_from >= history[0].effective_from
    assert callbacks == []  # a tariff change leaves the connection open


def test_patch_tariff_in_another_currency_is_refused(api, account, tariff):
    meter, _ = make_meter(account, tariff)
    usd = make_tariff(currency="USD")
    response = api.patch(f"/api/v1/meters/{meter.id}/", {"tariff": usd.id}, format="json")
    assert list(errors_of(response)) == ["tariff"]
    assert MeterTariff.objects.filter(meter=meter).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "cumulative"}, "kind"),
        ({"account": "acc_x"}, "account"),
        ({"active": "maybe"}, "active"),
        ({"tariff": "trf_missing"}, "tariff"),
    ],
)
def test_patch_bad_field_is_named(api, account, tariff, body, field):
    meter, _ = make_meter(account, tariff)
    response = api.patch(f"/api/v1/meters/{meter.id}/", body, format="json")
    assert list(errors_of(response)) == [field]


def test_unknown_meter_is_404(api):
    assert api.get("/api/v1/meters/mtr_missing/").status_code == 404
    assert api.patch("/api/v1/meters/mtr_missing/", {}, format="json").status_code == 404
    assert api.post("/api/v1/meters/mtr_missing/rotate-token/").status_code == 404
