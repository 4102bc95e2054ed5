"""A tariff's decimal strings must be whole over the REST API: "1.5\n" is a 400 naming
the field, not a price stored raw."""

import pytest

from billing.models import Tariff

pytestmark = pytest.mark.django_db

PER_UNIT = {"name": "Flat", "currency": "EUR", "model": "per_unit", "unit_price": "0.30"}
TIERS = [{"up_to": "100", "unit_price": "0.30"}, {"up_to": None, "unit_price": "0.25"}]
BAND = {"name": "peak", "days": [0], "start": "07:00", "end": "22:00", "unit_price": "0.40"}


def graduated(tiers):
    return {"name": "G", "currency": "EUR", "model": "graduated", "tiers": tiers}


def time_of_use(band):
    body = {"name": "T", "currency": "EUR", "model": "time_of_use", "default_unit_price": "0"}
    return {**body, "bands": [band]}


@pytest.mark.parametrize("raw", ["1.5\n", "1.5\r\n", " 1.5"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (lambda raw: {**PER_UNIT, "unit_price": raw}, "unit_price"),
        (lambda raw: {**PER_UNIT, "fixed_fee": raw}, "fixed_fee"),
        (lambda raw: {**PER_UNIT, "minimum": raw}, "minimum"),
        (lambda raw: graduated([{**TIERS[0], "up_to": raw}, TIERS[1]]), "tiers[0].up_to"),
        (lambda raw: graduated([TIERS[0], {**TIERS[1], "unit_price": raw}]), "tiers[1].unit_price"),
        (lambda raw: time_of_use({**BAND, "unit_price": raw}), "bands[0].unit_price"),
    ],
)
def test_a_price_with_anything_around_it_is_a_400_naming_the_field(api, raw, body, field):
    response = api.post("/api/v1/tariffs/", body(raw), format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == [field]
    assert not Tariff.objects.exists()


def test_a_band_clock_with_a_newline_is_a_400_naming_it(api):
    response = api.post("/api/v1/tariffs/", time_of_use({**BAND, "end": "22:00\n"}), format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == ["bands[0].end"]
