"""HTTP ingest: the same frame checks and the same rating service as the WebSocket."""

import pytest
from django.db import DatabaseError
from django.utils import timezone

from billing.models import Charge
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db


@pytest.fixture
def meter_and_token():
    return make_meter(make_account(), make_tariff())


def post(client, meter_id, body, token, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(
        f"/api/v1/meters/{meter_id}/readings/",
        body,
        content_type="application/json",
        headers=headers,
    )


def test_readings_are_rated_before_the_answer(client, meter_and_token):
    meter, token = meter_and_token
    now = timezone.now().isoformat()
    body = {
        "readings": [
            {"id": "h-1", "ts": now, "quantity": "10"},
            {"id": "h-2", "ts": now, "quantity": 1.5},
        ]
    }
    response = post(client, meter.id, body, token)
    assert response.status_code == 200
    assert response.json()["ids"] == ["h-1"]
    assert [e["id"] for e in response.json()["errors"]] == ["h-2"]
    assert Charge.objects.get(reading__reading_id="h-1").amount == 3
    again = post(client, meter.id, body, token).json()
    assert (again["ids"], again["duplicates"]) == ([], ["h-1"])


@pytest.mark.parametrize("token", [None, "mtk_wrong"])
def test_a_missing_or_wrong_device_token_is_401(client, meter_and_token, token):
    meter, _ = meter_and_token
    assert post(client, meter.id, {"readings": []}, token).status_code == 401


def test_another_meters_token_is_401(client, meter_and_token):
    meter, _ = meter_and_token
    _, other_token = make_meter(meter.account, make_tariff())
    assert post(client, meter.id, {"readings": []}, other_token).status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("not json", 400, "invalid_json"),
        ([], 400, "invalid_message"),
        ({"readings": {}}, 400, "invalid_message"),
        ({"readings": [{}] * 1001}, 413, "too_large"),
    ],
)
def test_bad_bodies(client, meter_and_token, body, status, code):
    meter, token = meter_and_token
    response = post(client, meter.id, body, token)
    assert response.status_code == status
    assert response.json()["errors"][0]["code"] == code


def test_answers_are_written_as_they_always_were(client, meter_and_token, monkeypatch):
    # Byte for byte: devices parse these, and some parsers are strict about the spacing.
    meter, token = meter_and_token
    now = timezone.now().isoformat()
    ack = post(client, meter.id, {"readings": [{"id": "é", "ts": now, "quantity": "1"}]}, token)
    assert ack.content == b'{"ids": ["\\u00e9"], "duplicates": [], "errors": []}'
    assert ack["Content-Type"] == "application/json"

    monkeypatch.setattr("metering.ingest.readings_rate", database_down)
    busy = post(client, meter.id, {"readings": [{"id": "b", "ts": now, "quantity": "1"}]}, token)
    assert (busy.status_code, busy["Retry-After"]) == (503, "1")
    assert busy.content == b'{"detail": "busy: nothing was recorded, resend later"}'


def database_down(**kwargs):
    raise DatabaseError("connection refused")


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer a b", "Basic x", "Bearer mtk_x"])
def test_every_refused_token_gets_the_same_answer(client, meter_and_token, authorization):
    meter, _ = meter_and_token
    headers = {"Authorization": authorization} if authorization else {}
    response = post(client, meter.id, {"readings": []}, None, **headers)
    assert (response.status_code, response["WWW-Authenticate"]) == (401, "Bearer")
    assert response.content == b'{"detail": "missing or wrong device token"}'


def test_a_disabled_meter_is_403(client, meter_and_token):
    meter, token = meter_and_token
    meter.active = False
    meter.save()
    response = post(client, meter.id, {"readings": []}, token)
    assert response.status_code == 403
    assert response.content == b'{"detail": "this meter is disabled"}'


def test_json_whatever_the_device_accepts(client, meter_and_token):
    meter, token = meter_and_token
    response = post(client, meter.id, {"readings": []}, token, Accept="text/html")
    assert response.status_code == 200
    assert response.json() == {"ids": [], "duplicates": [], "errors": []}


def test_only_post(client, meter_and_token):
    meter, token = meter_and_token
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/v1/meters/{meter.id}/readings/", headers=headers).status_code == 405
