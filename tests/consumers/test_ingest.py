"""HTTP ingest: the same frame checks and the same rating service as the WebSocket."""

import pytest
from django.utils import timezone

from billing.models import Charge
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db


@pytest.fixture
def meter_and_token():
    return make_meter(make_account(), make_tariff())


def post(client, meter_id, body, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
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
