"""The reading id is the idempotency key: however a reading is resent, it is charged once."""

from decimal import Decimal

import pytest

from devtools.stack import http_json
from tests.integration.stack import (
    batch,
    charges_by_reading,
    connect_device,
    reading,
    recv_json,
    send_json,
)

pytestmark = pytest.mark.integration


async def test_resend_on_the_same_connection_is_a_duplicate(stack):
    p = stack.provision(unit_price="2")
    r = reading("d-1", "3")
    async with connect_device(stack, p.token) as ws:
        await send_json(ws, r)
        assert (await recv_json(ws))["ids"] == ["d-1"]
        await send_json(ws, r)
        again = await recv_json(ws)
    assert again["type"] == "ack"
    assert again["duplicates"] == ["d-1"]
    assert "d-1" not in again["ids"]
    assert [c["reading_id"] for c in stack.charges(p.account)] == ["d-1"]
    assert stack.usage(p.account)["total"] == "6.000000"


async def test_resend_on_a_new_connection_is_a_duplicate(stack):
    p = stack.provision(unit_price="2")
    r = reading("d-2", "3")
    async with connect_device(stack, p.token) as ws:
        await send_json(ws, r)
        assert (await recv_json(ws))["ids"] == ["d-2"]
    async with connect_device(stack, p.token, via="query") as ws:
        await send_json(ws, r)
        again = await recv_json(ws)
        # Resent inside a batch with a new reading: only the new one is charged.
        await send_json(ws, batch([r, reading("d-3", "1")]))
        mixed = await recv_json(ws)
    assert again["type"] == "ack" and again["duplicates"] == ["d-2"] and again["ids"] == []
    assert mixed["type"] == "ack"
    assert mixed["ids"] == ["d-3"]
    assert mixed["duplicates"] == ["d-2"]
    assert sorted(c["reading_id"] for c in stack.charges(p.account)) == ["d-2", "d-3"]
    assert stack.usage(p.account)["total"] == "8.000000"


async def test_same_id_twice_in_one_batch_is_charged_once(stack):
    p = stack.provision(unit_price="2")
    r = reading("d-4", "5")
    async with connect_device(stack, p.token) as ws:
        await send_json(ws, batch([r, reading("d-5", "1"), r]))
        ack = await recv_json(ws)
    assert ack["type"] == "ack"
    assert ack["ids"].count("d-4") <= 1
    assert "d-4" in ack["duplicates"]
    assert "d-5" in ack["ids"]
    per_reading = charges_by_reading(stack.charges(p.account))
    assert {rid: len(c) for rid, c in per_reading.items()} == {"d-4": 1, "d-5": 1}
    assert Decimal(per_reading["d-4"][0]["quantity"]) == Decimal("5")
    assert stack.usage(p.account)["total"] == "12.000000"


async def test_resend_over_http_of_a_websocket_reading_is_a_duplicate(stack):
    p = stack.provision(unit_price="2")
    r = reading("d-6", "1")
    async with connect_device(stack, p.token) as ws:
        await send_json(ws, r)
        assert (await recv_json(ws))["ids"] == ["d-6"]
    body = {"readings": [{k: v for k, v in r.items() if k != "type"}]}
    status, answer = http_json(
        "POST", f"{stack.http_base}/api/v1/meters/{p.meter}/readings/", body, token=p.token
    )
    assert status == 200, answer
    assert answer == {"ids": [], "duplicates": ["d-6"], "errors": []}
    assert len(stack.charges(p.account)) == 1
    assert stack.usage(p.account)["total"] == "2.000000"
