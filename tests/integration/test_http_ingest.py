"""HTTP ingest for devices without a WebSocket: answered like an ack, once rated."""

from decimal import Decimal

import pytest

from devtools.stack import http_json
from tests.integration.stack import charges_by_reading, ts_ago

pytestmark = pytest.mark.integration


def ingest(stack, meter: str, readings: list[dict], token: str | None):
    return http_json(
        "POST",
        f"{stack.http_base}/api/v1/meters/{meter}/readings/",
        {"readings": readings},
        token=token,
    )


def test_readings_are_answered_once_charged(stack):
    p = stack.provision(unit_price="0.5")
    readings = [{"id": f"h-{i}", "ts": ts_ago(0), "quantity": "1.25"} for i in range(10)]
    status, body = ingest(stack, p.meter, readings, p.token)
    assert status == 200, body
    assert sorted(body["ids"]) == sorted(r["id"] for r in readings)
    assert body["duplicates"] == []
    assert body["errors"] == []
    charges = stack.charges(p.account, p.meter)
    assert {c["reading_id"] for c in charges} == {r["id"] for r in readings}
    assert all(c["amount"] == "0.625000" for c in charges)
    assert stack.usage(p.account)["total"] == "6.250000"

    status, again = ingest(stack, p.meter, readings[:3], p.token)
    assert status == 200
    assert again["ids"] == []
    assert sorted(again["duplicates"]) == ["h-0", "h-1", "h-2"]
    assert len(stack.charges(p.account, p.meter)) == 10


def test_a_bad_reading_is_reported_and_the_rest_charged(stack):
    p = stack.provision(unit_price="1")
    readings = [
        {"id": "ok-1", "ts": ts_ago(0), "quantity": "2"},
        {"id": "bad-1", "ts": ts_ago(0), "quantity": "-2"},
    ]
    status, body = ingest(stack, p.meter, readings, p.token)
    assert status == 200, body
    assert body["ids"] == ["ok-1"]
    assert body["duplicates"] == []
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["id"] == "bad-1"
    assert error["code"] == "invalid_reading"
    assert isinstance(error["detail"], str)
    per_reading = charges_by_reading(stack.charges(p.account, p.meter))
    assert set(per_reading) == {"ok-1"}
    assert Decimal(per_reading["ok-1"][0]["quantity"]) == 2


@pytest.mark.parametrize("which", ["missing", "wrong", "operator-key", "other-meter"])
def test_missing_or_wrong_device_token_gets_401(stack, which):
    p = stack.provision(meters=2)
    token = {
        "missing": None,
        "wrong": "not-a-device-token",
        "operator-key": stack.operator_key,
        "other-meter": p.tokens[1],
    }[which]
    status, _ = ingest(stack, p.meter, [{"id": "z-1", "ts": ts_ago(0), "quantity": "1"}], token)
    assert status == 401
    assert stack.charges(p.account) == []
