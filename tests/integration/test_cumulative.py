"""Cumulative meters: the register's increase is the usage; decreases wrap or are refused."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.integration.stack import charges_by_reading, connect_device, iso, recv_json, send_json

pytestmark = pytest.mark.integration


def register(rid: str, value: str, at: datetime) -> dict:
    return {"type": "reading", "id": rid, "ts": iso(at), "value": value}


def amount_of(stack, p, rid: str) -> Decimal:
    """The amount charged for one reading; 0 if it has no charge."""
    charges = charges_by_reading(stack.charges(p.account, p.meter)).get(rid, [])
    assert len(charges) <= 1
    return Decimal(charges[0]["amount"]) if charges else Decimal(0)


async def test_increase_is_charged_and_decrease_refused(stack):
    p = stack.provision(kind="cumulative", unit_price="0.5")
    start = datetime.now(UTC) - timedelta(seconds=30)
    async with connect_device(stack, p.token) as ws:
        await send_json(ws, register("c-1", "1000", start))
        ack = await recv_json(ws)
        assert ack["type"] == "ack" and ack["ids"] == ["c-1"]
        # The first reading only sets the baseline.
        assert stack.meter_usage(p.account, p.meter) == (0, 0)
        assert amount_of(stack, p, "c-1") == 0

        await send_json(ws, register("c-2", "1012.5", start + timedelta(seconds=1)))
        assert (await recv_json(ws))["ids"] == ["c-2"]
        charge = charges_by_reading(stack.charges(p.account, p.meter))["c-2"][0]
        assert Decimal(charge["quantity"]) == Decimal("12.5")
        assert charge["amount"] == "6.250000"

        await send_json(ws, register("c-3", "1005", start + timedelta(seconds=2)))
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["id"] == "c-3"
        assert error["code"] == "register_decreased"
        assert amount_of(stack, p, "c-3") == 0
        assert stack.meter_usage(p.account, p.meter) == (Decimal("12.5"), Decimal("6.25"))

        # Still open, and the refused reading did not move the baseline.
        await send_json(ws, register("c-4", "1020", start + timedelta(seconds=3)))
        assert (await recv_json(ws))["ids"] == ["c-4"]
        assert amount_of(stack, p, "c-4") == Decimal("3.75")

    usage = stack.usage(p.account)
    assert usage["total"] == "10.000000"
    assert Decimal(usage["meters"][0]["usage"]) == 20


async def test_decrease_wraps_at_rollover(stack):
    p = stack.provision(kind="cumulative", rollover_at="1000", unit_price="0.5")
    start = datetime.now(UTC) - timedelta(seconds=30)
    async with connect_device(stack, p.token) as ws:
        await send_json(ws, register("w-1", "990", start))
        assert (await recv_json(ws))["ids"] == ["w-1"]
        assert stack.meter_usage(p.account, p.meter) == (0, 0)

        await send_json(ws, register("w-2", "10", start + timedelta(seconds=1)))
        ack = await recv_json(ws)
    assert ack["type"] == "ack" and ack["ids"] == ["w-2"]
    charge = charges_by_reading(stack.charges(p.account, p.meter))["w-2"][0]
    assert Decimal(charge["quantity"]) == 20
    assert charge["amount"] == "10.000000"
    assert stack.meter_usage(p.account, p.meter) == (Decimal(20), Decimal(10))
    assert stack.usage(p.account)["total"] == "10.000000"


async def test_cumulative_batch(stack):
    p = stack.provision(kind="cumulative", unit_price="1")
    start = datetime.now(UTC) - timedelta(seconds=60)
    values = ["100", "100.25", "101", "101", "110.5"]
    frame = {
        "type": "batch",
        "readings": [
            {"id": f"cb-{i}", "ts": iso(start + timedelta(seconds=i)), "value": v}
            for i, v in enumerate(values)
        ],
    }
    async with connect_device(stack, p.token) as ws:
        await send_json(ws, frame)
        ack = await recv_json(ws)
    assert ack["type"] == "ack"
    assert sorted(ack["ids"]) == [f"cb-{i}" for i in range(5)]
    assert stack.meter_usage(p.account, p.meter) == (Decimal("10.5"), Decimal("10.5"))
    assert stack.usage(p.account)["total"] == "10.500000"
