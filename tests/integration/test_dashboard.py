"""Dashboard WebSocket: a snapshot on connect, then live charges and meter status."""

from decimal import Decimal

import pytest

from tests.integration.stack import (
    Device,
    batch,
    connect_dashboard,
    connect_device,
    reading,
    recv_json,
    recv_until,
)

pytestmark = pytest.mark.integration

EVENT_TIMEOUT = 10.0


def is_type(kind: str, **fields):
    def match(message: dict) -> bool:
        return message.get("type") == kind and all(message.get(k) == v for k, v in fields.items())

    return match


async def next_charge(dash, meter: str) -> dict:
    return await recv_until(dash, is_type("charge", meter=meter), timeout=EVENT_TIMEOUT, seen=[])


def assert_snapshot(snapshot: dict, account: str) -> dict[str, dict]:
    assert snapshot["type"] == "snapshot"
    assert snapshot["account"] == account
    assert snapshot["currency"] == "EUR"
    assert isinstance(snapshot["period"]["start"], str) and isinstance(
        snapshot["period"]["end"], str
    )
    assert isinstance(snapshot["total"], str)
    meters = {m["id"]: m for m in snapshot["meters"]}
    for m in meters.values():
        assert set(m) >= {"id", "usage", "amount", "online"}
        assert isinstance(m["online"], bool)
    return meters


@pytest.mark.parametrize("credential", ["operator-key", "dashboard-key"])
async def test_snapshot_then_charges_and_meter_status(stack, credential):
    p = stack.provision(meters=2, unit_price="0.3")
    m1, m2 = p.meters
    key = stack.operator_key if credential == "operator-key" else stack.dashboard_key(p.account)

    async with connect_dashboard(stack, p.account, key) as dash:
        snapshot = await recv_json(dash, EVENT_TIMEOUT)
        meters = assert_snapshot(snapshot, p.account)
        assert snapshot["total"] == "0.000000"
        # Every meter of the account is listed, offline, with nothing used yet.
        assert set(meters) == {m1, m2}
        for m in meters.values():
            assert m["online"] is False
            assert Decimal(m["usage"]) == 0
            assert Decimal(m["amount"]) == 0

        async with connect_device(stack, p.tokens[0]) as ws:
            await recv_until(
                dash, is_type("meter_status", meter=m1, online=True), timeout=EVENT_TIMEOUT
            )
            device = Device(ws)

            assert await device.deliver([reading("r-1", "0.125")]) == {"r-1": "ack"}
            charge = await next_charge(dash, m1)
            assert charge["account"] == p.account
            assert charge["reading_ids"] == ["r-1"]
            assert Decimal(charge["quantity"]) == Decimal("0.125")
            assert charge["amount"] == "0.037500"
            assert Decimal(charge["meter_usage"]) == Decimal("0.125")
            assert charge["period_total"] == "0.037500"
            assert isinstance(charge["rated_at"], str)

            # One event per rated frame: a batch is one charge.
            frame = batch([reading("r-2", "1"), reading("r-3", "2.5"), reading("r-4", "0.375")])
            assert set((await device.deliver([frame])).values()) == {"ack"}
            charge = await next_charge(dash, m1)
            assert sorted(charge["reading_ids"]) == ["r-2", "r-3", "r-4"]
            assert Decimal(charge["quantity"]) == Decimal("3.875")
            assert charge["amount"] == "1.162500"
            assert Decimal(charge["meter_usage"]) == Decimal("4")
            assert charge["period_total"] == "1.200000"

            # Another meter's charge: its own usage, the account's total.
            async with connect_device(stack, p.tokens[1]) as ws2:
                await recv_until(
                    dash, is_type("meter_status", meter=m2, online=True), timeout=EVENT_TIMEOUT
                )
                assert await Device(ws2).deliver([reading("s-1", "10")]) == {"s-1": "ack"}
                charge = await next_charge(dash, m2)
                assert charge["amount"] == "3.000000"
                assert Decimal(charge["meter_usage"]) == 10
                assert charge["period_total"] == "4.200000"
            await recv_until(
                dash, is_type("meter_status", meter=m2, online=False), timeout=EVENT_TIMEOUT
            )

            # A second dashboard sees the state so far in its snapshot.
            async with connect_dashboard(stack, p.account, key) as dash2:
                snapshot = await recv_json(dash2, EVENT_TIMEOUT)
                meters = assert_snapshot(snapshot, p.account)
                assert snapshot["total"] == "4.200000"
                assert meters[m1]["online"] is True
                assert meters[m2]["online"] is False
                assert Decimal(meters[m1]["usage"]) == 4
                assert meters[m1]["amount"] == "1.200000"
                assert Decimal(meters[m2]["usage"]) == 10
                assert meters[m2]["amount"] == "3.000000"

        await recv_until(
            dash, is_type("meter_status", meter=m1, online=False), timeout=EVENT_TIMEOUT
        )
    assert stack.usage(p.account)["total"] == "4.200000"


async def test_charge_events_come_in_commit_order(stack):
    p = stack.provision(unit_price="1")
    async with connect_dashboard(stack, p.account, stack.operator_key) as dash:
        assert (await recv_json(dash, EVENT_TIMEOUT))["type"] == "snapshot"
        async with connect_device(stack, p.token) as ws:
            frames = [reading(f"o-{i}", "1") for i in range(30)]
            outcome = await Device(ws).deliver(frames)
            assert set(outcome.values()) == {"ack"}
            usages, totals, ids = [], [], []
            while len(ids) < 30:
                charge = await next_charge(dash, p.meter)
                ids.extend(charge["reading_ids"])
                usages.append(Decimal(charge["meter_usage"]))
                totals.append(Decimal(charge["period_total"]))
    assert sorted(ids) == sorted(f"o-{i}" for i in range(30))
    assert usages == sorted(usages) and usages[-1] == 30
    assert totals == sorted(totals) and totals[-1] == 30


async def test_dashboards_only_see_their_own_account(stack):
    mine = stack.provision(unit_price="1")
    other = stack.provision(unit_price="1")
    key = stack.dashboard_key(mine.account)
    async with connect_dashboard(stack, mine.account, key, via="query") as dash:
        assert (await recv_json(dash, EVENT_TIMEOUT))["type"] == "snapshot"
        async with connect_device(stack, other.token) as ws:
            assert await Device(ws).deliver([reading("x-1", "5")]) == {"x-1": "ack"}
        async with connect_device(stack, mine.token) as ws:
            assert await Device(ws).deliver([reading("y-1", "2")]) == {"y-1": "ack"}
        seen: list[dict] = []
        charge = await recv_until(dash, is_type("charge"), timeout=EVENT_TIMEOUT, seen=seen)
    assert charge["meter"] == mine.meter and charge["reading_ids"] == ["y-1"]
    assert all(m.get("meter") != other.meter for m in seen)
