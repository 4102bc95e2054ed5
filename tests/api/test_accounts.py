"""POST/GET /api/v1/accounts/ and dashboard keys."""

import pytest

from billing.keys import secret_hash
from billing.models import Account, DashboardKey

pytestmark = pytest.mark.django_db

BODY = {"name": "Acme", "currency": "EUR", "timezone": "Europe/Berlin"}


def test_create_and_get(api):
    response = api.post("/api/v1/accounts/", BODY, format="json")
    assert response.status_code == 201
    body = response.json()
    assert isinstance(body["id"], str) and body["id"].startswith("acc_")
    assert {k: body[k] for k in BODY} == BODY
    assert body["created_at"].endswith("Z")

    fetched = api.get(f"/api/v1/accounts/{body['id']}/")
    assert fetched.status_code == 200
    assert fetched.json() == body


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("currency", "eur"),
        ("currency", "EURO"),
        ("currency", "XYZ"),
        ("currency", 978),
        ("timezone", "Mars/Olympus"),
        ("timezone", "../../etc/passwd"),
        ("timezone", ""),
        ("name", ""),
    ],
)
def test_invalid_field_is_named(api, field, value):
    response = api.post("/api/v1/accounts/", {**BODY, field: value}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["errors"]) == [field]
    assert all(isinstance(m, str) for m in body["errors"][field])
    assert not Account.objects.exists()


def test_missing_fields_are_each_named(api):
    response = api.post("/api/v1/accounts/", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"name", "currency", "timezone"}


def test_zero_minor_unit_currency_is_accepted(api):
    body = {**BODY, "currency": "JPY", "timezone": "Asia/Tokyo"}
    assert api.post("/api/v1/accounts/", body, format="json").status_code == 201


def test_malformed_json_is_400_json(api):
    response = api.post("/api/v1/accounts/", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_unknown_account_is_404_json(api):
    response = api.get("/api/v1/accounts/acc_missing/")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


def test_method_not_allowed(api):
    response = api.delete("/api/v1/accounts/")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_dashboard_key_is_stored_hashed(api):
    account_id = api.post("/api/v1/accounts/", BODY, format="json").json()["id"]
    response = api.post(f"/api/v1/accounts/{account_id}/dashboard-keys/")
    assert response.status_code == 201
    key = response.json()["key"]
    assert key.startswith("dbk_")
    stored = DashboardKey.objects.get(account_id=account_id)
    assert stored.key_hash == secret_hash(key)


def test_dashboard_key_for_unknown_account_is_404(api):
    assert api.post("/api/v1/accounts/acc_missing/dashboard-keys/").status_code == 404
