"""Operator REST API as a client sees it: authentication, validation, the objects it returns."""

from typing import Any

import pytest

pytestmark = pytest.mark.integration

WRONG_KEY = "not-an-operator-key"


def names_field(body: Any, field: str) -> bool:
    """Whether a 400 body names `field`: as a key anywhere, or as a "field"/"attr" value."""
    if isinstance(body, dict):
        for key, value in body.items():
            if key == field or (key in ("field", "attr", "param") and value == field):
                return True
            if names_field(value, field):
                return True
    elif isinstance(body, list):
        return any(names_field(item, field) for item in body)
    return False


@pytest.fixture(scope="module")
def account(stack) -> str:
    return stack.create_account(name="rest")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/accounts/", {"name": "x", "currency": "EUR", "timezone": "UTC"}),
        ("GET", "/api/v1/accounts/{account}/", None),
        ("GET", "/api/v1/accounts/{account}/usage/", None),
        ("GET", "/api/v1/accounts/{account}/charges/", None),
        ("POST", "/api/v1/accounts/{account}/dashboard-keys/", None),
    ],
)
@pytest.mark.parametrize("token", [None, WRONG_KEY], ids=["missing-key", "wrong-key"])
def test_missing_or_wrong_operator_key_gets_401(stack, account, method, path, body, token):
    status, _ = stack.api(method, path.format(account=account), body, token=token)
    assert status == 401


def test_account_round_trip(stack):
    created = stack.api_ok(
        "POST",
        "/api/v1/accounts/",
        {"name": "Round trip", "currency": "EUR", "timezone": "Europe/Berlin"},
        201,
    )
    assert isinstance(created["id"], str) and created["id"]
    fetched = stack.api_ok("GET", f"/api/v1/accounts/{created['id']}/")
    assert fetched["id"] == created["id"]
    assert fetched["name"] == "Round trip"
    assert fetched["currency"] == "EUR"
    assert fetched["timezone"] == "Europe/Berlin"


def test_new_account_has_an_empty_open_period(stack, account):
    usage = stack.usage(account)
    assert usage["currency"] == "EUR"
    assert usage["total"] == "0.000000"
    assert set(usage["period"]) >= {"start", "end"}
    assert stack.api_ok("GET", f"/api/v1/accounts/{account}/charges/")["results"] == []


def test_meter_token_is_shown_on_creation(stack, account):
    tariff = stack.create_tariff()
    meter, token = stack.create_meter(account, tariff)
    assert isinstance(meter, str) and isinstance(token, str) and len(token) >= 16
    _, other = stack.create_meter(account, tariff)
    assert other != token


GOOD_TARIFF = {
    "name": "t",
    "currency": "EUR",
    "unit": "kWh",
    "billing_period": "month",
    "model": "per_unit",
    "unit_price": "0.25",
    "fixed_fee": "0",
    "minimum": "0",
}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/accounts/", {"currency": "EUR", "timezone": "UTC"}, "name"),
        (
            "/api/v1/accounts/",
            {"name": "x", "currency": "EUR", "timezone": "Mars/Olympus"},
            "timezone",
        ),
        (
            "/api/v1/accounts/",
            {"name": "x", "currency": "NOTACURRENCY", "timezone": "UTC"},
            "currency",
        ),
        ("/api/v1/tariffs/", {**GOOD_TARIFF, "unit_price": "abc"}, "unit_price"),
        ("/api/v1/tariffs/", {**GOOD_TARIFF, "model": "made_up"}, "model"),
        ("/api/v1/tariffs/", {**GOOD_TARIFF, "fixed_fee": "-1x"}, "fixed_fee"),
    ],
    ids=[
        "account-name-missing",
        "bad-timezone",
        "bad-currency",
        "bad-unit-price",
        "bad-model",
        "bad-fixed-fee",
    ],
)
def test_invalid_body_gets_400_naming_the_field(stack, path, body, field):
    status, response = stack.api("POST", path, body)
    assert status == 400, response
    assert names_field(response, field), response


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"kind": "sideways"}, "kind"),
        ({"account": "acc_doesnotexist"}, "account"),
        ({"tariff": "trf_doesnotexist"}, "tariff"),
    ],
    ids=["bad-kind", "unknown-account", "unknown-tariff"],
)
def test_invalid_meter_body_gets_400_naming_the_field(stack, account, override, field):
    tariff = stack.create_tariff()
    body = {"account": account, "tariff": tariff, "name": "m", "kind": "delta", "rollover_at": None}
    body.update(override)
    status, response = stack.api("POST", "/api/v1/meters/", body)
    assert status == 400, response
    assert names_field(response, field), response


def test_dashboard_key_is_created(stack, account):
    first = stack.dashboard_key(account)
    second = stack.dashboard_key(account)
    assert isinstance(first, str) and first and first != second
