"""GET /metrics for operators, and the readings each entry point counts.

These run in one process with prometheus-client's default registry (no
PROMETHEUS_MULTIPROC_DIR), so the page shows this process's own counters;
tests/unit/test_metrics.py covers the multiprocess mode.
"""

import json

import pytest
from channels.db import database_sync_to_async
from django.db import DatabaseError
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY

from tests.consumers.conftest import closed_with, dashboard, device, layer_emptied, rate_next_frame
from tests.factories import make_account, make_dashboard_key, make_meter, make_tariff

pytestmark = pytest.mark.django_db


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def readings(outcome: str) -> float:
    return sample("meterline_readings_total", outcome=outcome)


# --- the endpoint ----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer mlk_wrong"}, {"Authorization": "Basic eDp5"}]
)
def test_without_the_operator_key_it_is_401(headers):
    response = Client().get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert b"meterline_" not in response.content


def test_the_key_is_not_taken_from_the_query_string(operator_key):
    for name in ("token", "key", "api_key"):
        assert Client().get("/metrics", {name: operator_key}).status_code == 401


def test_a_revoked_key_is_401(operator_key):
    from billing.keys import secret_hash
    from billing.models import OperatorKey

    OperatorKey.objects.filter(key_hash=secret_hash(operator_key)).update(revoked_at=timezone.now())
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {operator_key}"})
    assert response.status_code == 401


def test_operators_get_the_prometheus_text_page(operator_key):
    response = Client(enforce_csrf_checks=True).get(
        "/metrics", headers={"Authorization": f"Bearer {operator_key}"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=1.0.0; charset=utf-8"
    page = response.content.decode()
    assert "# TYPE meterline_readings_total counter" in page
    assert 'meterline_readings_total{outcome="charged"}' in page
    assert "# TYPE meterline_ack_seconds histogram" in page
    assert "meterline_device_connections " in page


def test_it_is_get_only_and_needs_no_csrf_token(operator_key):
    client = Client(enforce_csrf_checks=True)
    headers = {"Authorization": f"Bearer {operator_key}"}
    assert client.post("/metrics", headers=headers).status_code == 405
    assert client.put("/metrics", headers=headers).status_code == 405


# --- HTTP ingest -------------------------------------------------------------------


def ingest(meter, token, body):
    return Client().post(
        f"/api/v1/meters/{meter.id}/readings/",
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )


def test_ingest_counts_refused_readings_and_busy_answers(monkeypatch):
    meter, token = make_meter(make_account(), make_tariff())
    now = timezone.now().isoformat()
    refused, busy, answers = (
        readings("refused"),
        readings("busy"),
        sample("meterline_busy_answers_total"),
    )
    body = {"readings": [{"id": "ok", "ts": now, "quantity": "1"}, {"id": "bad", "ts": now}]}
    assert ingest(meter, token, "not json").status_code == 400
    assert readings("refused") == refused + 1

    def database_down(**kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr("metering.ingest.readings_rate", database_down)
    assert ingest(meter, token, body).status_code == 503
    assert readings("refused") == refused + 2  # "bad", refused by the parser
    assert readings("busy") == busy + 1  # "ok", not recorded
    assert sample("meterline_busy_answers_total") == answers + 1


# --- the device socket -------------------------------------------------------------


@pytest.fixture
async def empty_layer():
    await layer_emptied()
    yield
    await layer_emptied()


@database_sync_to_async
def new_meter_token():
    return make_meter(make_account(), make_tariff())[1]


def reading(reading_id, **fields):
    now = timezone.now().isoformat()
    return json.dumps({"type": "reading", "id": reading_id, "ts": now, "quantity": "1", **fields})


@pytest.mark.django_db(transaction=True)
async def test_a_device_connection_is_counted_while_open_and_its_acks_timed(empty_layer):
    token = await new_meter_token()
    connections = sample("meterline_device_connections")
    acks = sample("meterline_ack_seconds_count")
    charged = readings("charged")
    client = device(token)
    assert (await client.connect())[0]  # accepted; connect() goes on to authenticate
    await client.send_to(text_data=reading("r-1"))
    worker = await rate_next_frame()
    assert json.loads(await client.receive_from(timeout=5))["ids"] == ["r-1"]
    worker.stop()
    assert sample("meterline_device_connections") == connections + 1
    assert readings("charged") == charged + 1
    assert sample("meterline_ack_seconds_count") == acks + 1
    await client.disconnect()
    assert sample("meterline_device_connections") == connections


@pytest.mark.django_db(transaction=True)
async def test_refused_and_busy_readings_are_counted_on_the_socket(empty_layer, monkeypatch):
    token = await new_meter_token()
    client = device(token)
    assert (await client.connect())[0]
    refused, busy, answers = (
        readings("refused"),
        readings("busy"),
        sample("meterline_busy_answers_total"),
    )
    await client.send_to(text_data="{not json")
    assert json.loads(await client.receive_from(timeout=5))["code"] == "invalid_json"
    assert readings("refused") == refused + 1

    def database_down(*args, **kwargs):
        raise DatabaseError("connection refused")

    # The worker fails to rate the frame and answers busy; the device is told so.
    monkeypatch.setattr("workers.rating.frames_rate", database_down)
    await client.send_to(text_data=reading("r-1"))
    worker = await rate_next_frame()
    assert json.loads(await client.receive_from(timeout=5))["type"] == "busy"
    worker.stop()
    assert readings("busy") == busy + 1
    assert sample("meterline_busy_answers_total") == answers + 1
    await client.disconnect()


@database_sync_to_async
def new_dashboard_key():
    account = make_account()
    return account.id, make_dashboard_key(account)


@pytest.mark.django_db(transaction=True)
async def test_dashboard_connections_are_counted_and_refused_ones_are_not(empty_layer):
    account_id, key = await new_dashboard_key()
    connections = sample("meterline_dashboard_connections")
    assert await closed_with(dashboard(account_id, "dbk_wrong")) == 4401
    assert sample("meterline_dashboard_connections") == connections
    watcher = dashboard(account_id, key)
    assert (await watcher.connect())[0]
    assert (await watcher.receive_json_from(timeout=5))["type"] == "snapshot"
    assert sample("meterline_dashboard_connections") == connections + 1
    await watcher.disconnect()
    assert sample("meterline_dashboard_connections") == connections
