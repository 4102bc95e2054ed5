"""Every pricing model, at its boundaries and under random splits of usage. No database."""

from datetime import UTC, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from billing.pricing import (
    Band,
    Graduated,
    Package,
    PerUnit,
    Tier,
    TimeOfUse,
    Volume,
    rate,
    round6,
)

D = Decimal
NOON = datetime(2026, 11, 23, 12, tzinfo=UTC)
TIERS = (Tier(D("100"), D("0.30")), Tier(D("500"), D("0.25")), Tier(None, D("0.20")))
HOUSEHOLD = Graduated(TIERS)
BULK = Volume(TIERS)


def charges(model, quantities, at=NOON):
    """Rate `quantities` in order from an empty period: (charges, usage, exact price)."""
    usage, exact, amounts = D(0), D(0), []
    for quantity in quantities:
        rated = rate(
            model, usage_before=usage, exact_before=exact, quantity=quantity, local_time=at
        )
        assert sum(line.amount for line in rated.lines) == rated.amount
        amounts.append(rated.amount)
        usage, exact = rated.usage_after, rated.exact_after
    return amounts, usage, exact


# --- boundaries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "graduated", "volume"),
    [
        ("0", "0", "0"),
        ("99.999999", "29.9999997", "29.9999997"),
        ("100", "30.00", "30.00"),
        ("100.000001", "30.00000025", "25.00000025"),
        ("500", "130.00", "125.00"),
        ("500.5", "130.10", "100.10"),
    ],
)
def test_tier_boundaries_are_inclusive_up_to(usage, graduated, volume):
    assert HOUSEHOLD.price(D(usage)) == D(graduated)
    assert BULK.price(D(usage)) == D(volume)


def test_a_reading_across_a_boundary_is_split_into_one_line_per_tier():
    rated = rate(
        HOUSEHOLD, usage_before=D(90), exact_before=D(27), quantity=D(420), local_time=NOON
    )
    assert [(line.quantity, line.unit_price, line.amount) for line in rated.lines] == [
        (D(10), D("0.30"), D("3.000000")),
        (D(400), D("0.25"), D("100.000000")),
        (D(10), D("0.20"), D("2.000000")),
    ]
    assert rated.amount == D("105.000000")


def test_volume_reprices_earlier_usage_when_a_tier_is_crossed():
    amounts, _, _ = charges(BULK, [D(90), D(20)])
    assert amounts == [D("27.000000"), D("0.500000")]  # 110 x 0.25 = 27.50
    rated = rate(BULK, usage_before=D(90), exact_before=D(27), quantity=D(20), local_time=NOON)
    assert [(line.quantity, line.amount) for line in rated.lines] == [
        (D(20), D("5.000000")),
        (D(90), D("-4.500000")),
    ]


def test_volume_can_charge_a_negative_correction():
    model = Volume((Tier(D("10"), D("1")), Tier(None, D("0.10"))))
    amounts, _, _ = charges(model, [D(10), D(1)])
    assert amounts == [D("10.000000"), D("-8.900000")]  # 11 x 0.10 = 1.10


def test_fractional_boundaries():
    model = Graduated((Tier(D("0.5"), D("2")), Tier(D("1.5"), D("1")), Tier(None, D("0"))))
    assert model.price(D("2")) == D("2")


@pytest.mark.parametrize(
    ("usage", "price"),
    [("0", "0"), ("0.001", "5"), ("10", "5"), ("10.000000001", "10"), ("25", "15")],
)
def test_package_sells_whole_packages(usage, price):
    assert Package(D("10"), D("5")).price(D(usage)) == D(price)


def test_package_charges_only_when_a_package_is_opened():
    amounts, _, _ = charges(Package(D("10"), D("5")), [D(1), D(8), D(1), D("0.5")])
    assert amounts == [D(5), D(0), D(0), D(5)]


def test_charges_round_half_up_to_six_places_and_still_add_up():
    model = PerUnit(D("0.0000005"))
    amounts, usage, exact = charges(model, [D(1), D(1), D(1)])
    assert amounts == [D("0.000001"), D("0"), D("0.000001")]
    assert sum(amounts) == round6(exact) == round6(model.price(usage))


def test_huge_usage_stays_exact():
    usage = D("999999999999999999999.999999999")  # the largest reading that fits
    rated = rate(
        PerUnit(D("0.123456789012")),
        usage_before=D(0),
        exact_before=D(0),
        quantity=usage,
        local_time=NOON,
    )
    # 33 significant digits: Python's default 28-digit context would have rounded it.
    assert rated.exact_after == D("123456789011999999999.999999999876543210988")


# --- time of use ----------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = frozenset(range(5))
TOU = TimeOfUse(
    bands=(
        Band("peak", WEEKDAYS, time(7), time(22), D("0.40")),
        Band("night", frozenset(range(7)), time(22), time(6), D("0.10")),
    ),
    default_unit_price=D("0.25"),
)


@pytest.mark.parametrize(
    ("local", "band"),
    [
        (datetime(2026, 11, 23, 6, 59), "default"),  # Monday, between night and peak
        (datetime(2026, 11, 23, 7, 0), "peak"),
        (datetime(2026, 11, 23, 21, 59, 59), "peak"),
        (datetime(2026, 11, 23, 22, 0), "night"),
        (datetime(2026, 11, 24, 0, 0), "night"),  # past midnight: Monday's night band
        (datetime(2026, 11, 24, 5, 59), "night"),
        (datetime(2026, 11, 24, 6, 0), "default"),
        (datetime(2026, 11, 28, 12, 0), "default"),  # Saturday: no peak
    ],
)
def test_time_of_use_bands_including_across_midnight(local, band):
    rated = rate(
        TOU,
        usage_before=D(0),
        exact_before=D(0),
        quantity=D(1),
        local_time=local.replace(tzinfo=BERLIN),
    )
    assert rated.lines[0].description == f"band {band}"


def test_a_band_crossing_midnight_belongs_to_the_day_it_starts():
    sunday_night = TimeOfUse(
        bands=(Band("sunday night", frozenset({6}), time(23), time(1), D("1")),),
        default_unit_price=D(0),
    )

    def covered(*local):
        return sunday_night.band_at(datetime(*local, tzinfo=BERLIN)) is not None

    assert covered(2026, 11, 29, 23, 30)  # Sunday 23:30
    assert covered(2026, 11, 30, 0, 30)  # Monday 00:30, still Sunday's band
    assert not covered(2026, 11, 30, 1, 0)  # the end is exclusive
    assert not covered(2026, 11, 29, 0, 30)  # Sunday 00:30 would be Saturday's band


@pytest.mark.parametrize(
    ("utc", "zone", "band"),
    [
        # Berlin, spring forward 2026-03-29 02:00 -> 03:00 (a Sunday: night band till 06:00)
        (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), BERLIN, "night"),  # 01:59 CET
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), BERLIN, "night"),  # 03:00 CEST
        (datetime(2026, 3, 29, 4, 0, tzinfo=UTC), BERLIN, "default"),  # 06:00 CEST
        # Berlin, fall back 2026-10-25 03:00 -> 02:00: 02:30 happens twice, both at night
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), BERLIN, "night"),
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), BERLIN, "night"),
        (datetime(2026, 10, 25, 5, 0, tzinfo=UTC), BERLIN, "default"),  # 06:00 CET
        # New York: Monday 2026-03-09 07:00 EDT is 11:00 UTC (it was 12:00 UTC a week before)
        (datetime(2026, 3, 9, 11, 0, tzinfo=UTC), NEW_YORK, "peak"),
        (datetime(2026, 3, 2, 11, 0, tzinfo=UTC), NEW_YORK, "default"),  # 06:00 EST
        (datetime(2026, 11, 2, 12, 0, tzinfo=UTC), NEW_YORK, "peak"),  # Monday 07:00 EST
        (datetime(2026, 10, 26, 11, 0, tzinfo=UTC), NEW_YORK, "peak"),  # Monday 07:00 EDT
    ],
)
def test_time_of_use_follows_local_wall_clock_across_dst(utc, zone, band):
    local = utc.astimezone(zone)
    found = TOU.band_at(local)
    assert (found.name if found else "default") == band


def test_time_of_use_sums_exactly():
    model = TimeOfUse(bands=(), default_unit_price=D("0.0000003"))
    amounts, _, exact = charges(model, [D(1)] * 10)
    assert sum(amounts) == round6(exact) == D("0.000003")


# --- properties ----------------------------------------------------------------------

prices = st.decimals(min_value=0, max_value=2, places=4, allow_nan=False, allow_infinity=False)
quantities = st.decimals(
    min_value=0, max_value=300, places=3, allow_nan=False, allow_infinity=False
)


@st.composite
def tier_lists(draw, descending: bool = False):
    bounds = sorted(
        draw(st.sets(st.decimals(min_value="0.001", max_value=1000, places=3), max_size=4))
    )
    unit_prices = draw(st.lists(prices, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    if descending:
        unit_prices = sorted(unit_prices, reverse=True)
    return tuple(Tier(up_to, p) for up_to, p in zip([*bounds, None], unit_prices, strict=True))


usage_models = st.one_of(
    st.builds(PerUnit, prices),
    st.builds(Graduated, tier_lists()),
    st.builds(Volume, tier_lists()),
    st.builds(Package, st.decimals(min_value="0.5", max_value=50, places=1), prices),
)


@given(usage_models, st.lists(quantities, min_size=1, max_size=25))
def test_a_periods_charges_add_up_to_the_price_of_its_total(model, split):
    amounts, usage, _ = charges(model, split)
    assert sum(amounts) == round6(model.price(usage))


@given(usage_models, st.lists(quantities, min_size=1, max_size=25), st.randoms())
def test_reordering_readings_never_changes_the_period_total(model, split, random):
    shuffled = list(split)
    random.shuffle(shuffled)
    assert sum(charges(model, split)[0]) == sum(charges(model, shuffled)[0])


@given(tier_lists(descending=True), quantities)
def test_graduated_never_exceeds_per_unit_at_the_first_tiers_price(tiers, usage):
    assert Graduated(tiers).price(usage) <= PerUnit(tiers[0].unit_price).price(usage)


@given(tier_lists(), quantities)
def test_volume_prices_all_usage_at_the_tier_it_reaches(tiers, usage):
    model = Volume(tiers)
    reached = next(t for t in tiers if t.up_to is None or usage <= t.up_to)
    assert model.price(usage) == usage * reached.unit_price


@given(tier_lists(), st.lists(quantities, min_size=1, max_size=10))
def test_graduated_lines_cover_the_quantity_exactly(tiers, split):
    usage, exact = D(0), D(0)
    for quantity in split:
        assume(quantity > 0)
        rated = rate(
            Graduated(tiers),
            usage_before=usage,
            exact_before=exact,
            quantity=quantity,
            local_time=NOON,
        )
        assert sum(line.quantity for line in rated.lines) == quantity
        usage, exact = rated.usage_after, rated.exact_after
