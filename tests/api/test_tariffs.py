"""POST/GET /api/v1/tariffs/: decimal strings only, each bad field named."""

from decimal import Decimal

import pytest

from billing.models import Tariff

pytestmark = pytest.mark.django_db

GRADUATED = {
    "name": "Household",
    "currency": "EUR",
    "unit": "kWh",
    "billing_period": "month",
    "model": "graduated",
    "tiers": [{"up_to": "100", "unit_price": "0.30"}, {"up_to": None, "unit_price": "0.25"}],
    "fixed_fee": "9.90",
    "minimum": "0",
}
PER_UNIT = {"name": "Flat", "currency": "EUR", "model": "per_unit", "unit_price": "0.30"}


def post(api, body):
    return api.post("/api/v1/tariffs/", body, format="json")


def errors_of(response) -> dict:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    return body["errors"]


def test_create_graduated_and_get(api):
    response = post(api, GRADUATED)
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("trf_")
    assert body["tiers"] == GRADUATED["tiers"]
    assert body["fixed_fee"] == "9.900000"
    assert body["minimum"] == "0.000000"
    assert body["model"] == "graduated" and body["unit"] == "kWh"
    assert "unit_price" not in body

    tariff = Tariff.objects.get(pk=body["id"])
    assert tariff.params == {"tiers": GRADUATED["tiers"]}
    assert tariff.fixed_fee == Decimal("9.90")

    fetched = api.get(f"/api/v1/tariffs/{body['id']}/")
    assert fetched.status_code == 200
    assert fetched.json() == body


def test_create_per_unit_with_defaults(api):
    response = post(api, PER_UNIT)
    assert response.status_code == 201
    body = response.json()
    assert body["unit_price"] == "0.30"
    assert body["fixed_fee"] == "0.000000"
    assert body["billing_period"] == "month"
    assert body["unit"] == "unit"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"unit_price": 0.3}, "unit_price"),
        ({"unit_price": 1}, "unit_price"),
        ({"unit_price": "NaN"}, "unit_price"),
        ({"unit_price": "Infinity"}, "unit_price"),
        ({"unit_price": "-0.30"}, "unit_price"),
        ({"unit_price": "abc"}, "unit_price"),
        ({"unit_price": "1e999999"}, "unit_price"),
        ({"unit_price": "0.0000000000001"}, "unit_price"),
        ({"fixed_fee": 9.9}, "fixed_fee"),
        ({"fixed_fee": "-1"}, "fixed_fee"),
        ({"fixed_fee": "NaN"}, "fixed_fee"),
        ({"fixed_fee": "0.0000001"}, "fixed_fee"),
        ({"minimum": "1e30"}, "minimum"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"billing_period": "fortnight"}, "billing_period"),
        ({"billing_period": "PT0S"}, "billing_period"),
        ({"model": "banded"}, "model"),
        ({"model": "nonsense"}, "model"),
        ({"tiers": [{"up_to": None, "unit_price": "0.1"}]}, "tiers"),
        ({"name": ""}, "name"),
    ],
)
def test_per_unit_bad_field_is_named(api, change, field):
    assert list(errors_of(post(api, {**PER_UNIT, **change}))) == [field]
    assert not Tariff.objects.exists()


def test_nan_as_a_bare_json_constant_is_refused(api):
    response = api.post(
        "/api/v1/tariffs/",
        '{"name": "x", "currency": "EUR", "model": "per_unit", "unit_price": NaN}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "traceback" not in response.content.decode().lower()


def test_missing_model_field_is_named(api):
    body = {k: v for k, v in PER_UNIT.items() if k != "unit_price"}
    assert list(errors_of(post(api, body))) == ["unit_price"]


@pytest.mark.parametrize(
    ("tiers", "field"),
    [
        # unordered
        (
            [
                {"up_to": "100", "unit_price": "0.3"},
                {"up_to": "50", "unit_price": "0.2"},
                {"up_to": None, "unit_price": "0.1"},
            ],
            "tiers[1].up_to",
        ),
        # open tier not last
        (
            [{"up_to": None, "unit_price": "0.3"}, {"up_to": "100", "unit_price": "0.2"}],
            "tiers[0].up_to",
        ),
        # last tier closed
        ([{"up_to": "100", "unit_price": "0.3"}], "tiers[0].up_to"),
        # float price
        (
            [{"up_to": "100", "unit_price": 0.3}, {"up_to": None, "unit_price": "0.2"}],
            "tiers[0].unit_price",
        ),
        # negative price
        (
            [{"up_to": "100", "unit_price": "0.3"}, {"up_to": None, "unit_price": "-0.2"}],
            "tiers[1].unit_price",
        ),
        # float bound
        (
            [{"up_to": 100, "unit_price": "0.3"}, {"up_to": None, "unit_price": "0.2"}],
            "tiers[0].up_to",
        ),
        ([], "tiers"),
        ("100", "tiers"),
        (["x", {"up_to": None, "unit_price": "0.2"}], "tiers[0]"),
        (
            [{"up_to": "1e30", "unit_price": "0.3"}, {"up_to": None, "unit_price": "0.2"}],
            "tiers[0].up_to",
        ),
    ],
)
def test_graduated_bad_tiers_are_named(api, tiers, field):
    errors = errors_of(post(api, {**GRADUATED, "tiers": tiers}))
    assert list(errors) == [field]
    assert errors[field] and all(isinstance(m, str) for m in errors[field])


def test_float_message_says_decimal_string(api):
    errors = errors_of(post(api, {**PER_UNIT, "unit_price": 0.3}))
    assert "decimal string" in errors["unit_price"][0]


def test_another_models_field_is_refused(api):
    errors = errors_of(post(api, {**GRADUATED, "unit_price": "0.3"}))
    assert list(errors) == ["unit_price"]


def test_unknown_tariff_is_404(api):
    assert api.get("/api/v1/tariffs/trf_missing/").status_code == 404


PEAK = {
    "name": "peak",
    "days": [0, 1, 2, 3, 4],
    "start": "07:00",
    "end": "22:00",
    "unit_price": "0.40",
}


@pytest.mark.parametrize(
    "fields",
    [
        {
            "model": "volume",
            "tiers": [{"up_to": "10", "unit_price": "1"}, {"up_to": None, "unit_price": "0.5"}],
        },
        {"model": "package", "package_size": "100", "package_price": "9.99"},
        {"model": "time_of_use", "bands": [PEAK], "default_unit_price": "0.25"},
    ],
)
def test_every_model_can_be_created_and_read_back(api, fields):
    body = {"name": "t", "currency": "EUR", "unit": "kWh", **fields}
    created = api.post("/api/v1/tariffs/", body, format="json")
    assert created.status_code == 201, created.json()
    fetched = api.get(f"/api/v1/tariffs/{created.json()['id']}/").json()
    assert {key: fetched[key] for key in fields} == fields


@pytest.mark.parametrize(
    ("bands", "field"),
    [
        ([{**PEAK, "start": "7am"}], "bands[0].start"),
        ([{**PEAK, "days": [0, 9]}], "bands[0].days"),
        ([PEAK, {**PEAK, "name": "again"}], "bands[1]"),
    ],
)
def test_bad_bands_are_named(api, bands, field):
    body = {
        "name": "t",
        "currency": "EUR",
        "model": "time_of_use",
        "bands": bands,
        "default_unit_price": "0",
    }
    response = api.post("/api/v1/tariffs/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_a_package_of_nothing_is_refused(api):
    body = {
        "name": "t",
        "currency": "EUR",
        "model": "package",
        "package_size": "0",
        "package_price": "1",
    }
    response = api.post("/api/v1/tariffs/", body, format="json")
    assert response.status_code == 400
    assert "package_size" in response.json()["errors"]
