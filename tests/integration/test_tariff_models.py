"""Every pricing model of the contract, as a device and a dashboard see it on the live stack."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.integration.stack import (
    Device,
    charges_by_reading,
    connect_dashboard,
    connect_device,
    iso,
    reading,
    recv_json,
    recv_until,
)

pytestmark = pytest.mark.integration

BERLIN = ZoneInfo("Europe/Berlin")
TIERS = [{"up_to": "100", "unit_price": "0.30"}, {"up_to": None, "unit_price": "0.25"}]


def recent_local(weekday_wanted: bool, hour: int) -> datetime:
    """The latest moment before now, in Berlin, at `hour`:00 on a weekday (or weekend day)."""
    moment = datetime.now(BERLIN).replace(hour=hour, minute=0, second=0, microsecond=0)
    while moment > datetime.now(BERLIN) or (moment.weekday() < 5) != weekday_wanted:
        moment -= timedelta(days=1)
    return moment


async def rate_through_stack(stack, model_fields: dict, readings: list[dict]) -> tuple[dict, list]:
    """Send `readings` a frame each; return {reading id: charge} and the dashboard charge events."""
    p = stack.provision(**model_fields)
    async with connect_dashboard(stack, p.account, stack.operator_key) as dash:
        assert (await recv_json(dash))["type"] == "snapshot"
        async with connect_device(stack, p.token) as ws:
            device = Device(ws)
            for message in readings:
                assert await device.deliver([message]) == {message["id"]: "ack"}
        events = []
        while sum(len(e["reading_ids"]) for e in events) < len(readings):
            events.append(await recv_until(dash, lambda m: m.get("type") == "charge", timeout=10))
    charges = {rid: c for rid, [c] in charges_by_reading(stack.charges(p.account)).items()}
    return charges, events


def amounts(charges: dict) -> dict[str, str]:
    return {rid: charge["amount"] for rid, charge in charges.items()}


async def test_per_unit(stack):
    charges, events = await rate_through_stack(
        stack,
        {"model": "per_unit", "unit_price": "0.125"},
        [reading("a", "8"), reading("b", "0.5")],
    )
    assert amounts(charges) == {"a": "1.000000", "b": "0.062500"}
    assert [e["period_total"] for e in events] == ["1.000000", "1.062500"]


async def test_graduated_splits_a_reading_across_the_boundary(stack):
    charges, events = await rate_through_stack(
        stack, {"model": "graduated", "tiers": TIERS}, [reading("a", "90"), reading("b", "20")]
    )
    assert amounts(charges) == {"a": "27.000000", "b": "5.500000"}
    assert [line["amount"] for line in charges["b"]["lines"]] == ["3.000000", "2.500000"]
    assert events[-1]["period_total"] == "32.500000"


async def test_volume_reprices_earlier_usage(stack):
    charges, events = await rate_through_stack(
        stack, {"model": "volume", "tiers": TIERS}, [reading("a", "90"), reading("b", "20")]
    )
    assert amounts(charges) == {"a": "27.000000", "b": "0.500000"}
    assert [e["amount"] for e in events] == ["27.000000", "0.500000"]
    assert events[-1]["period_total"] == "27.500000"


async def test_package(stack):
    fields = {"model": "package", "package_size": "10", "package_price": "5"}
    charges, events = await rate_through_stack(
        stack, fields, [reading("a", "1"), reading("b", "9"), reading("c", "0.001")]
    )
    assert amounts(charges) == {"a": "5.000000", "b": "0.000000", "c": "5.000000"}
    assert events[-1]["period_total"] == "10.000000"


async def test_time_of_use_in_the_accounts_timezone(stack):
    fields = {
        "model": "time_of_use",
        "bands": [
            {
                "name": "peak",
                "days": [0, 1, 2, 3, 4],
                "start": "07:00",
                "end": "22:00",
                "unit_price": "0.40",
            },
            {
                "name": "night",
                "days": [0, 1, 2, 3, 4, 5, 6],
                "start": "22:00",
                "end": "06:00",
                "unit_price": "0.10",
            },
        ],
        "default_unit_price": "0.25",
    }
    weekday_noon = recent_local(True, 12).astimezone(UTC)
    night = recent_local(True, 3).astimezone(UTC)
    weekend_noon = recent_local(False, 12).astimezone(UTC)
    charges, _ = await rate_through_stack(
        stack,
        fields,
        [
            reading("peak", "1", ts=iso(weekday_noon)),
            reading("night", "1", ts=iso(night)),
            reading("weekend", "1", ts=iso(weekend_noon)),
        ],
    )
    assert amounts(charges) == {"peak": "0.400000", "night": "0.100000", "weekend": "0.250000"}
    assert charges["night"]["lines"][0]["description"] == "band night"


async def test_a_tariff_change_applies_from_its_moment_even_to_late_readings(stack):
    p = stack.provision(model="per_unit", unit_price="1")
    before_change = datetime.now(UTC)
    new_tariff = stack.create_tariff(model="per_unit", unit_price="2")
    stack.api_ok("PATCH", f"/api/v1/meters/{p.meter}/", {"tariff": new_tariff})
    async with connect_device(stack, p.token) as ws:
        after_change = datetime.now(UTC)
        frames = [
            reading("late", "1", ts=iso(before_change)),
            reading("new", "1", ts=iso(after_change)),
        ]
        assert await Device(ws).deliver(frames) == {"late": "ack", "new": "ack"}
    assert amounts({r: c for r, [c] in charges_by_reading(stack.charges(p.account)).items()}) == {
        "late": "1.000000",
        "new": "2.000000",
    }
