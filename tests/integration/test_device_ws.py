"""Device WebSocket: a reading is acked only once its charge is visible through the API."""

from decimal import Decimal

import pytest

from tests.integration.stack import (
    Device,
    batch,
    charges_by_reading,
    connect_device,
    money,
    reading,
    recv_json,
    send_json,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("via", ["header", "query"])
async def test_single_reading_is_acked_then_charged(stack, via):
    p = stack.provision(unit_price="0.25")
    async with connect_device(stack, p.token, via=via) as ws:
        await send_json(ws, reading("r-000123", "2.5"))
        ack = await recv_json(ws)
    assert ack["type"] == "ack"
    assert ack["ids"] == ["r-000123"]
    assert ack["duplicates"] == []

    # The ack comes after the commit: the charge is already there.
    charges = stack.charges(p.account)
    assert len(charges) == 1
    charge = charges[0]
    assert charge["meter"] == p.meter
    assert charge["reading_id"] == "r-000123"
    assert Decimal(charge["quantity"]) == Decimal("2.5")
    assert charge["amount"] == "0.625000"
    assert charge["currency"] == "EUR"
    assert isinstance(charge["id"], str | int)
    assert charge["reading_ts"] and charge["rated_at"]

    usage = stack.usage(p.account)
    assert usage["currency"] == "EUR"
    assert usage["total"] == "0.625000"
    assert [m["id"] for m in usage["meters"]] == [p.meter]
    assert Decimal(usage["meters"][0]["usage"]) == Decimal("2.5")
    assert usage["meters"][0]["amount"] == "0.625000"


async def test_charges_filter_by_meter(stack):
    p = stack.provision(meters=2, unit_price="1")
    for n, token in enumerate(p.tokens):
        async with connect_device(stack, token) as ws:
            device = Device(ws)
            assert await device.deliver([reading(f"x-{n}", str(n + 1))]) == {f"x-{n}": "ack"}
    only_second = stack.api_ok("GET", f"/api/v1/accounts/{p.account}/charges/?meter={p.meters[1]}")
    assert [c["reading_id"] for c in only_second["results"]] == ["x-1"]
    assert only_second["results"][0]["amount"] == "2.000000"
    assert stack.usage(p.account)["total"] == "3.000000"


async def test_batch_of_500_is_acked_once_with_exact_totals(stack):
    p = stack.provision(unit_price="0.37")
    readings = [
        reading(f"b-{i:04d}", f"{(i % 13) * Decimal('0.125') + Decimal('0.001')}")
        for i in range(500)
    ]
    expected_usage = sum(Decimal(r["quantity"]) for r in readings)
    async with connect_device(stack, p.token) as ws:
        await send_json(ws, batch(readings))
        ack = await recv_json(ws, timeout=60)
    assert ack["type"] == "ack"
    assert sorted(ack["ids"]) == sorted(r["id"] for r in readings)
    assert len(ack["ids"]) == 500
    assert ack["duplicates"] == []

    charges = stack.charges(p.account, p.meter)
    per_reading = charges_by_reading(charges)
    assert set(per_reading) == {r["id"] for r in readings}
    assert all(len(c) == 1 for c in per_reading.values())
    assert sum(Decimal(c["quantity"]) for c in charges) == expected_usage
    assert money(sum(Decimal(c["amount"]) for c in charges)) == money(
        expected_usage * Decimal("0.37")
    )
    usage, amount = stack.meter_usage(p.account, p.meter)
    assert usage == expected_usage
    assert money(amount) == money(expected_usage * Decimal("0.37"))
    assert stack.usage(p.account)["total"] == money(expected_usage * Decimal("0.37"))


async def test_many_batches_on_one_connection(stack):
    p = stack.provision(unit_price="0.10")
    frames = [batch(reading(f"f{f}-{i}", "1.5") for i in range(50)) for f in range(6)]
    async with connect_device(stack, p.token) as ws:
        device = Device(ws)
        outcome = await device.deliver(frames, timeout=90)
    assert set(outcome.values()) == {"ack"} and len(outcome) == 300
    assert stack.usage(p.account)["total"] == "45.000000"
    assert len(stack.charges(p.account, p.meter)) == 300


async def test_graduated_tariff_splits_a_reading_across_tiers(stack):
    p = stack.provision(
        model="graduated",
        tiers=[{"up_to": "100", "unit_price": "0.30"}, {"up_to": None, "unit_price": "0.25"}],
    )
    async with connect_device(stack, p.token) as ws:
        await send_json(ws, reading("g-1", "90"))
        assert (await recv_json(ws))["ids"] == ["g-1"]
        first = charges_by_reading(stack.charges(p.account, p.meter))["g-1"][0]
        assert first["amount"] == "27.000000"

        await send_json(ws, reading("g-2", "20"))
        assert (await recv_json(ws))["ids"] == ["g-2"]
        second = charges_by_reading(stack.charges(p.account, p.meter))["g-2"][0]
        # 10 units left in the first tier, 10 in the second.
        assert second["amount"] == "5.500000"

        await send_json(ws, reading("g-3", "4"))
        assert (await recv_json(ws))["ids"] == ["g-3"]
        third = charges_by_reading(stack.charges(p.account, p.meter))["g-3"][0]
        assert third["amount"] == "1.000000"

    usage = stack.usage(p.account)
    assert usage["total"] == "33.500000"
    assert Decimal(usage["meters"][0]["usage"]) == Decimal("114")
    assert usage["meters"][0]["amount"] == "33.500000"


async def test_graduated_tariff_in_one_batch_adds_up_to_the_tariff_price(stack):
    p = stack.provision(
        model="graduated",
        tiers=[{"up_to": "100", "unit_price": "0.30"}, {"up_to": None, "unit_price": "0.25"}],
    )
    readings = [reading(f"gb-{i}", "7.5") for i in range(20)]  # 150 units
    async with connect_device(stack, p.token) as ws:
        outcome = await Device(ws).deliver([batch(readings)])
    assert set(outcome.values()) == {"ack"}
    charges = stack.charges(p.account, p.meter)
    assert len(charges) == 20
    assert money(sum(Decimal(c["amount"]) for c in charges)) == "42.500000"  # 30 + 50 * 0.25
    assert stack.usage(p.account)["total"] == "42.500000"
