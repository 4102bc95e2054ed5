"""Tariff fields checked into pricing models; each mistake names its field."""

from datetime import time
from decimal import Decimal

import pytest

from billing.pricing import Graduated, Package, PerUnit, TimeOfUse, Volume
from billing.tariffs import TariffError, pricing_model

TIERS = [{"up_to": "100.5", "unit_price": "0.30"}, {"up_to": None, "unit_price": "0.25"}]


def band(**fields):
    return {
        "name": "peak",
        "days": [0, 1, 2, 3, 4],
        "start": "07:00",
        "end": "22:00",
        "unit_price": "0.40",
        **fields,
    }


@pytest.mark.parametrize(
    ("model", "params", "kind"),
    [
        ("per_unit", {"unit_price": "0.30"}, PerUnit),
        ("graduated", {"tiers": TIERS}, Graduated),
        ("volume", {"tiers": TIERS}, Volume),
        ("package", {"package_size": "0.5", "package_price": "2"}, Package),
        ("time_of_use", {"bands": [band()], "default_unit_price": "0.2"}, TimeOfUse),
    ],
)
def test_every_model_of_the_contract(model, params, kind):
    assert isinstance(pricing_model(model, params), kind)


def test_bands_take_midnight_and_a_whole_day():
    model = pricing_model(
        "time_of_use",
        {
            "bands": [
                band(name="night", days=[0], start="22:00", end="06:00"),
                band(name="sunday", days=[6], start="00:00", end="24:00"),
            ],
            "default_unit_price": "0",
        },
    )
    night, sunday = model.bands
    assert (night.start, night.end, night.crosses_midnight()) == (time(22), time(6), True)
    assert sunday.end == time(0)
    assert sunday.unit_price == Decimal("0.40")


def tiers(*pairs):
    return {"tiers": [{"up_to": up_to, "unit_price": price} for up_to, price in pairs]}


@pytest.mark.parametrize(
    ("model", "params", "field"),
    [
        ("per_unit", {"unit_price": 0.3}, "unit_price"),
        ("per_unit", {"unit_price": "NaN"}, "unit_price"),
        ("per_unit", {"unit_price": "-Infinity"}, "unit_price"),
        ("per_unit", {"unit_price": "-0.01"}, "unit_price"),
        ("per_unit", {}, "unit_price"),
        ("graduated", {"tiers": []}, "tiers"),
        ("volume", {"tiers": "100"}, "tiers"),
        ("graduated", tiers((None, "1"), (None, "1")), "tiers[0].up_to"),
        ("graduated", tiers(("10", "1"), ("5", "1"), (None, "1")), "tiers[1].up_to"),
        ("volume", tiers(("10", "1"), ("10", "1"), (None, "1")), "tiers[1].up_to"),
        ("graduated", tiers(("10", "1")), "tiers[0].up_to"),
        ("graduated", tiers(("0", "1"), (None, "1")), "tiers[0].up_to"),
        ("graduated", tiers(("10", "-1"), (None, "1")), "tiers[0].unit_price"),
        ("graduated", {"tiers": [5]}, "tiers[0]"),
        ("package", {"package_size": "0", "package_price": "1"}, "package_size"),
        ("package", {"package_size": "1"}, "package_price"),
        ("time_of_use", {"bands": [band()]}, "default_unit_price"),
        ("time_of_use", {"bands": {}, "default_unit_price": "0"}, "bands"),
        (
            "time_of_use",
            {"bands": [band(start="7:00")], "default_unit_price": "0"},
            "bands[0].start",
        ),
        (
            "time_of_use",
            {"bands": [band(start="24:00")], "default_unit_price": "0"},
            "bands[0].start",
        ),
        ("time_of_use", {"bands": [band(end="25:00")], "default_unit_price": "0"}, "bands[0].end"),
        ("time_of_use", {"bands": [band(end="07:00")], "default_unit_price": "0"}, "bands[0].end"),
        ("time_of_use", {"bands": [band(days=[7])], "default_unit_price": "0"}, "bands[0].days"),
        ("time_of_use", {"bands": [band(days=[])], "default_unit_price": "0"}, "bands[0].days"),
        ("time_of_use", {"bands": [band(days=[1, 1])], "default_unit_price": "0"}, "bands[0].days"),
        ("time_of_use", {"bands": [band(days=[True])], "default_unit_price": "0"}, "bands[0].days"),
        ("time_of_use", {"bands": [band(name="")], "default_unit_price": "0"}, "bands[0].name"),
        (
            "time_of_use",
            {"bands": [band(unit_price="-1")], "default_unit_price": "0"},
            "bands[0].unit_price",
        ),
        ("banded", {}, "model"),
    ],
)
def test_invalid_tariffs_name_the_bad_field(model, params, field):
    with pytest.raises(TariffError) as caught:
        pricing_model(model, params)
    assert caught.value.field == field


def test_overlapping_bands_are_refused_with_where_they_meet():
    params = {
        "bands": [band(), band(name="night", days=[0], start="21:00", end="06:00")],
        "default_unit_price": "0",
    }
    with pytest.raises(TariffError) as caught:
        pricing_model("time_of_use", params)
    assert caught.value.field == "bands[1]"
    assert "Monday at 21:00" in caught.value.message


def test_a_band_past_midnight_overlaps_the_next_mornings_band():
    params = {
        "bands": [
            band(name="morning", days=[1], start="05:00", end="09:00"),
            band(name="night", days=[0], start="22:00", end="06:00"),
        ],
        "default_unit_price": "0",
    }
    with pytest.raises(TariffError, match="Tuesday at 05:00"):
        pricing_model("time_of_use", params)
