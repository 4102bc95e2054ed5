"""Every endpoint's real answers against the served /api/schema/.

tests/api/conftest.py checks each answer any API test receives; this walk makes
sure each operation is answered at least once, whatever the other tests do, and
the last tests show the check fails on an answer unlike its documented shape.
"""

import json
from typing import Any

import pytest
from django.db import DatabaseError
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tests.api.schema_check import check_answer, path_template, served_schema
from tests.api.webhooks_walk import webhook_endpoints
from tests.factories import make_operator_key

pytestmark = pytest.mark.django_db

TIERS = [{"up_to": "5", "unit_price": "0.30"}, {"up_to": None, "unit_price": "0.25"}]
BAND = {"name": "day", "days": [0, 1, 2, 3, 4], "start": "07:00", "end": "22:00"}
MODELS = {
    "per_unit": {"unit_price": "0.30"},
    "graduated": {"tiers": TIERS},
    "volume": {"tiers": TIERS},
    "package": {"package_size": "10", "package_price": "2.50"},
    "time_of_use": {"bands": [{**BAND, "unit_price": "0.40"}], "default_unit_price": "0.2"},
}
INGEST = "/api/v1/meters/{meter_id}/readings/"
ACCOUNT = {"name": "Walk", "currency": "EUR", "timezone": "Europe/Berlin"}


class Walk:
    """Sends requests as the operator or as a device; checks and records every answer."""

    def __init__(self) -> None:
        self.operator = APIClient()
        self.operator.credentials(HTTP_AUTHORIZATION=f"Bearer {make_operator_key()}")
        self.seen: set[tuple[str, str, int]] = set()

    def send(self, method: str, path: str, body: Any = None, *, status: int, **kwargs) -> Any:
        client = kwargs.pop("client", self.operator)
        if isinstance(client, APIClient):
            kwargs.setdefault("format", "json")
        response = getattr(client, method)(path, body, **kwargs)
        assert response.status_code == status, (method, path, response.content)
        path = response.request["PATH_INFO"]  # without the query, or the host of a `next`
        check_answer(method.upper(), path, status, response.headers, response.content)
        self.seen.add((method.upper(), path_template(path), status))
        is_json = response.get("Content-Type", "").startswith("application/json")  # 204: none
        return response.json() if is_json else response.content

    def ingest(self, meter_id: str, token: str, body: Any, *, status: int) -> Any:
        return self.send(
            "post",
            f"/api/v1/meters/{meter_id}/readings/",
            body,
            status=status,
            client=Client(),
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )


def reading(reading_id: str, quantity: str = "7") -> dict[str, str]:
    return {"id": reading_id, "ts": timezone.now().isoformat(), "quantity": quantity}


def accounts_and_tariffs(walk: Walk) -> tuple[str, dict[str, str]]:
    account = walk.send("post", "/api/v1/accounts/", ACCOUNT, status=201)["id"]
    walk.send("get", f"/api/v1/accounts/{account}/", status=200)
    walk.send("get", "/api/v1/accounts/acc_missing/", status=404)
    walk.send("post", "/api/v1/accounts/", {**ACCOUNT, "currency": "euro"}, status=400)
    made = walk.send("post", f"/api/v1/accounts/{account}/dashboard-keys/", status=201)
    walk.send("get", f"/api/v1/accounts/{account}/dashboard-keys/", status=200)
    walk.send("get", "/api/v1/accounts/acc_missing/dashboard-keys/", status=404)
    walk.send("delete", f"/api/v1/dashboard-keys/{made['id']}/", status=204)
    walk.send("delete", "/api/v1/dashboard-keys/999999/", status=404)
    listed = walk.send("get", f"/api/v1/accounts/{account}/dashboard-keys/", status=200)
    assert listed["results"][0]["revoked_at"] is not None  # a timestamp, not only null
    tariffs = {}
    for model, fields in MODELS.items():
        body = {"name": model, "currency": "EUR", "model": model, "fixed_fee": "1.5", **fields}
        tariffs[model] = walk.send("post", "/api/v1/tariffs/", body, status=201)["id"]
        walk.send("get", f"/api/v1/tariffs/{tariffs[model]}/", status=200)
    return account, tariffs


def meters(walk: Walk, account: str, tariffs: dict[str, str]) -> dict[str, Any]:
    made = {}
    for model, tariff in tariffs.items():
        body = {"account": account, "tariff": tariff, "name": model, "kind": "delta"}
        made[model] = walk.send("post", "/api/v1/meters/", body, status=201)
    register = {**body, "kind": "cumulative", "rollover_at": "100000"}
    cumulative = walk.send("post", "/api/v1/meters/", register, status=201)["id"]
    walk.send("get", f"/api/v1/meters/{cumulative}/", status=200)
    walk.send("patch", f"/api/v1/meters/{cumulative}/", {"name": "Register"}, status=200)
    walk.send("patch", f"/api/v1/meters/{cumulative}/", {"kind": "delta"}, status=400)
    rotated = walk.send("post", f"/api/v1/meters/{cumulative}/rotate-token/", status=200)
    walk.send("patch", f"/api/v1/meters/{cumulative}/", {"active": False}, status=200)
    walk.ingest(cumulative, rotated["token"], {"readings": []}, status=403)
    return made


def ingest_every_answer(walk: Walk, made: dict[str, Any], monkeypatch) -> None:
    for model, meter in made.items():
        frame = {"readings": [reading(f"{model}-1"), reading(f"{model}-2", "12.5")]}
        walk.ingest(meter["id"], meter["token"], frame, status=200)
    meter = made["graduated"]
    again = {"readings": [reading("graduated-1"), {"id": "bad", "ts": "yesterday"}]}
    assert walk.ingest(meter["id"], meter["token"], again, status=200)["duplicates"]
    walk.ingest(meter["id"], meter["token"], "not json", status=400)
    walk.ingest(meter["id"], meter["token"], {"readings": [{}] * 1001}, status=413)
    walk.ingest(meter["id"], "mtk_wrong", {"readings": []}, status=401)

    def database_down(**kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr("metering.ingest.readings_rate", database_down)
    walk.ingest(meter["id"], meter["token"], {"readings": [reading("busy")]}, status=503)


def bills(walk: Walk, account: str) -> None:
    walk.send("get", f"/api/v1/accounts/{account}/usage/", status=200)
    page = walk.send("get", f"/api/v1/accounts/{account}/charges/?limit=3", status=200)
    walk.send("get", page["next"], status=200)
    walk.send("get", f"/api/v1/accounts/{account}/charges/?since=never", status=400)
    invoice = walk.send("post", f"/api/v1/accounts/{account}/close-period/", status=201)
    walk.send("get", f"/api/v1/invoices/?account={account}", status=200)
    walk.send("get", "/api/v1/invoices/", status=400)
    walk.send("get", f"/api/v1/invoices/{invoice['id']}/", status=200)
    walk.send("get", f"/api/v1/invoices/{invoice['id']}/lines.csv", status=200)
    walk.send("get", f"/api/v1/accounts/{account}/", status=401, client=APIClient())


def credit_control(walk: Walk, account: str, meter: str) -> None:
    base = f"/api/v1/accounts/{account}"
    walk.send("get", f"{base}/balance/", status=200)
    credit = {"amount": "50.00", "description": "top-up", "idempotency_key": "k-1"}
    walk.send("post", f"{base}/credits/", credit, status=201)
    walk.send("post", f"{base}/credits/", credit, status=200)
    walk.send("post", f"{base}/credits/", {**credit, "amount": "-1"}, status=400)
    walk.send("post", "/api/v1/accounts/acc_missing/credits/", credit, status=404)
    walk.send("patch", f"{base}/", {"cutoff_at": "0"}, status=200)
    walk.send("patch", f"{base}/", {"cutoff_at": "zero"}, status=400)
    walk.send("get", f"{base}/balance/", status=200)
    alert = {"kind": "spend_above", "threshold": "100", "meter": meter}
    walk.send("post", f"{base}/alerts/", alert, status=201)
    walk.send("post", f"{base}/alerts/", {**alert, "kind": "balance_below"}, status=400)
    walk.send("get", f"{base}/alerts/", status=200)


def charging(walk: Walk, account: str, tariff: str) -> None:
    """Id tags, and the sessions of a charge point (started as its StartTransaction would)."""
    from metering.models import Meter
    from metering.ocpp.selectors import ChargePoint
    from metering.ocpp.services import transaction_start

    body = {"account": account, "tariff": tariff, "name": "CP", "kind": "ocpp"}
    charger = walk.send("post", "/api/v1/meters/", {**body, "charge_point_id": "CP-W"}, status=201)
    walk.send("post", "/api/v1/meters/", body, status=400)  # no charge_point_id
    tags = f"/api/v1/accounts/{account}/id-tags/"
    tag = walk.send("post", tags, {"id_tag": "04A2B3C4"}, status=201)
    walk.send("post", tags, {"id_tag": "04a2b3c4"}, status=400)  # the same, case aside
    walk.send("post", "/api/v1/accounts/acc_missing/id-tags/", {"id_tag": "x"}, status=404)
    walk.send("get", tags, status=200)
    walk.send("get", f"/api/v1/id-tags/{tag['id']}/", status=200)
    walk.send("get", "/api/v1/id-tags/tag_missing/", status=404)
    walk.send("patch", f"/api/v1/id-tags/{tag['id']}/", {"active": False}, status=200)
    walk.send("patch", f"/api/v1/id-tags/{tag['id']}/", {"active": "maybe"}, status=400)
    point = ChargePoint(charger["id"], account, "CP-W", True)
    session = transaction_start(
        charge_point=point,
        connector_id=1,
        id_tag="04A2B3C4",
        meter_start_wh=1000,
        started_at=timezone.now(),
    )
    sessions = f"/api/v1/accounts/{account}/charging-sessions/"
    walk.send("get", sessions, status=200)
    walk.send("get", f"{sessions}?status=over", status=400)
    walk.send("get", "/api/v1/accounts/acc_missing/charging-sessions/", status=404)
    walk.send("get", f"/api/v1/charging-sessions/{session.id}/", status=200)
    walk.send("get", "/api/v1/charging-sessions/chs_missing/", status=404)
    stop = f"/api/v1/charging-sessions/{session.id}/stop/"
    walk.send("post", stop, status=409)  # its charge point is not connected
    Meter.objects.filter(pk=charger["id"]).update(connection="specific.walk")
    walk.send("post", stop, status=202)
    walk.send("post", "/api/v1/charging-sessions/chs_missing/stop/", status=404)


def test_every_operation_answers_as_the_schema_says(monkeypatch):
    walk = Walk()
    account, tariffs = accounts_and_tariffs(walk)
    made = meters(walk, account, tariffs)
    charging(walk, account, tariffs["per_unit"])
    credit_control(walk, account, made["per_unit"]["id"])
    ingest_every_answer(walk, made, monkeypatch)
    bills(walk, account)
    webhook_endpoints(walk, account)

    operations = {
        (method.upper(), template, int(status))
        for template, methods in served_schema()["paths"].items()
        for method, operation in methods.items()
        for status in operation["responses"]
    }
    answered = {(method, template) for method, template, _ in walk.seen}
    assert {(method, template) for method, template, _ in operations} <= answered
    successes = {op for op in operations if op[2] < 300}
    assert successes <= walk.seen, successes - walk.seen
    ingest = {op for op in operations if op[1] == INGEST}
    assert ingest <= walk.seen, ingest - walk.seen


# --- The check fails on an answer unlike its shape ------------------------------------

ACCOUNT_PATH = "/api/v1/accounts/acc_1/"
ACCOUNT_BODY = {
    "id": "acc_1",
    "name": "Acme",
    "currency": "EUR",
    "timezone": "Europe/Berlin",
    "created_at": "2026-03-01T12:00:00.123456Z",
    "cutoff_at": None,
    "cut_off": False,
}
USAGE_PATH = "/api/v1/accounts/acc_1/usage/"
USAGE_BODY = {
    "period": {"start": "2026-02-28T23:00:00Z", "end": "2026-03-31T22:00:00Z"},
    "currency": "EUR",
    "total": "1.500000",
    "meters": [{"id": "mtr_1", "usage": "5", "amount": "1.500000"}],
}
INGEST_PATH = INGEST.format(meter_id="mtr_1")
JSON = {"Content-Type": "application/json"}
ACK_BODY = {"ids": ["r-1"], "duplicates": [], "errors": [{"id": None, "code": "c", "detail": "d"}]}


def without(body: dict[str, Any], key: str, **changes: Any) -> dict[str, Any]:
    return {**{k: v for k, v in body.items() if k != key}, **changes}


def as_bytes(body: Any) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", ACCOUNT_PATH, 200, ACCOUNT_BODY),
        ("GET", USAGE_PATH, 200, USAGE_BODY),
        ("POST", INGEST_PATH, 200, ACK_BODY),
        ("GET", ACCOUNT_PATH, 404, {"code": "not_found", "detail": "Not found."}),
        ("DELETE", ACCOUNT_PATH, 405, {"code": "method_not_allowed", "detail": "No."}),
        ("POST", INGEST_PATH, 403, {"detail": "this meter is disabled"}),
    ],
)
def test_the_check_passes_the_real_shapes(method, path, status, body):
    check_answer(method, path, status, JSON, as_bytes(body))


def test_the_check_wants_no_body_where_none_is_documented():
    check_answer("DELETE", "/api/v1/dashboard-keys/1/", 204, {}, b"")
    with pytest.raises(AssertionError, match="a body where none is documented"):
        check_answer("DELETE", "/api/v1/dashboard-keys/1/", 204, JSON, as_bytes({"ok": True}))


def test_the_check_wants_the_documented_headers():
    busy = as_bytes({"detail": "busy: nothing was recorded, resend later"})
    check_answer("POST", INGEST_PATH, 503, {**JSON, "Retry-After": "1"}, busy)
    with pytest.raises(AssertionError, match="no Retry-After header"):
        check_answer("POST", INGEST_PATH, 503, JSON, busy)


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        (ACCOUNT_PATH, 200, without(ACCOUNT_BODY, "name", title="Acme")),  # renamed
        (ACCOUNT_PATH, 200, without(ACCOUNT_BODY, "name")),  # dropped
        (ACCOUNT_PATH, 200, {**ACCOUNT_BODY, "owner": "someone"}),  # added
        (ACCOUNT_PATH, 200, {**ACCOUNT_BODY, "currency": None}),  # null, not nullable
        (ACCOUNT_PATH, 200, {**ACCOUNT_BODY, "id": 1}),  # a number for a string
        (ACCOUNT_PATH, 200, {**ACCOUNT_BODY, "created_at": "2026-03-01T12:00:00"}),  # no zone
        (USAGE_PATH, 200, {**USAGE_BODY, "total": "1.5"}),  # money not to 6 places
        (USAGE_PATH, 200, {**USAGE_BODY, "meters": [{"id": "m", "usage": "5.0", "amount": "0"}]}),
        (INGEST_PATH, 200, without(ACK_BODY, "duplicates", duplicate=[])),
        (INGEST_PATH, 413, {"detail": "too large"}),  # a refusal where an ack is documented
        (ACCOUNT_PATH, 404, {"detail": "Not found."}),  # an error without its code
        (ACCOUNT_PATH, 202, ACCOUNT_BODY),  # a success the schema does not document
    ],
)
def test_the_check_fails_on_an_answer_unlike_its_shape(path, status, body):
    method = "POST" if path == INGEST_PATH else "GET"
    with pytest.raises(AssertionError, match=f"{method} /api/v1/"):
        check_answer(method, path, status, JSON, as_bytes(body))
