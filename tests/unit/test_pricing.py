"""Pricing is pure: these tests need no database."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.pricing import (
    Graduated,
    PerUnit,
    TariffError,
    Tier,
    charge_amount,
    pricing_model,
    round6,
)

D = Decimal
HOUSEHOLD = Graduated(tiers=(Tier(D("100"), D("0.30")), Tier(None, D("0.25"))))


@pytest.mark.parametrize(
    ("usage", "price"),
    [
        ("0", "0"),
        ("99.999", "29.9997"),
        ("100", "30.00"),
        ("100.001", "30.00025"),
        ("110", "32.50"),
    ],
)
def test_graduated_prices_each_unit_in_its_tier(usage, price):
    assert HOUSEHOLD.price(D(usage)) == D(price)


def test_a_reading_across_a_boundary_is_split_between_tiers():
    assert charge_amount(HOUSEHOLD, before=D(90), after=D(110)) == D("5.500000")


def test_fractional_boundaries():
    model = Graduated(tiers=(Tier(D("0.5"), D("2")), Tier(D("1.5"), D("1")), Tier(None, D("0"))))
    assert model.price(D("2")) == D("2")  # 0.5*2 + 1*1 + 0.5*0


def test_per_unit():
    assert PerUnit(D("0.125")).price(D("8")) == D("1.000")


def test_charges_round_half_up_to_six_places():
    model = PerUnit(D("0.0000005"))
    assert charge_amount(model, before=D(0), after=D(1)) == D("0.000001")
    assert round6(D("-0.0000005")) == D("-0.000001")


usage_steps = st.lists(
    st.decimals(min_value=0, max_value=500, places=3, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=30,
)


@given(usage_steps)
def test_charges_of_a_period_add_up_to_the_price_of_its_total(steps):
    before = D(0)
    total = D(0)
    for step in steps:
        total += charge_amount(HOUSEHOLD, before=before, after=before + step)
        before += step
    assert total == round6(HOUSEHOLD.price(before))


@pytest.mark.parametrize(
    ("model", "params", "field"),
    [
        ("per_unit", {"unit_price": 0.3}, "unit_price"),
        ("per_unit", {"unit_price": "NaN"}, "unit_price"),
        ("per_unit", {"unit_price": "-1"}, "unit_price"),
        ("per_unit", {}, "unit_price"),
        ("graduated", {"tiers": []}, "tiers"),
        (
            "graduated",
            {"tiers": [{"up_to": None, "unit_price": "1"}, {"up_to": None, "unit_price": "1"}]},
            "tiers[0].up_to",
        ),
        (
            "graduated",
            {
                "tiers": [
                    {"up_to": "10", "unit_price": "1"},
                    {"up_to": "5", "unit_price": "1"},
                    {"up_to": None, "unit_price": "1"},
                ]
            },
            "tiers[1].up_to",
        ),
        ("graduated", {"tiers": [{"up_to": "10", "unit_price": "1"}]}, "tiers[0].up_to"),
        ("banded", {}, "model"),
    ],
)
def test_invalid_tariffs_name_the_bad_field(model, params, field):
    with pytest.raises(TariffError) as caught:
        pricing_model(model, params)
    assert caught.value.field == field
