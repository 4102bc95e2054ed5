"""EV charge points on the real stack, driven by the `ocpp` package's own ChargePoint.

A full session with a reconnect and resent messages is billed once, to the cent, and
its charges reach the dashboard; unknown transaction ids are answered, never refused;
credentials are refused five ways; an operator's stop and a cut-off both reach the
charger as RemoteStopTransaction; Authorize is Blocked while the account is cut off.
"""

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from ocpp.v16 import call
from websockets.exceptions import ConnectionClosed, InvalidStatus

from clients.charge_point import charge_point, register, timestamp
from tests.integration.stack import connect_dashboard, recv_until

pytestmark = pytest.mark.integration

TAG = "04A2B3C4"
BOOT = call.BootNotification(charge_point_model="Wallbox", charge_point_vendor="Acme")


def provision(stack, *, unit_price: str = "0.30") -> dict:
    """An account, an ocpp meter on a per-unit tariff in kWh, and an id tag."""
    account = stack.create_account()
    tariff = stack.create_tariff(unit_price=unit_price)
    cp_id = f"CP-{uuid.uuid4().hex[:8]}"
    body = {"account": account, "tariff": tariff, "name": cp_id, "kind": "ocpp"}
    meter = stack.api_ok("POST", "/api/v1/meters/", {**body, "charge_point_id": cp_id}, 201)
    stack.api_ok("POST", f"/api/v1/accounts/{account}/id-tags/", {"id_tag": TAG}, 201)
    return {"account": account, "meter": meter["id"], "id": cp_id, "password": meter["token"]}


def sessions(stack, account: str) -> list[dict]:
    return stack.api_ok("GET", f"/api/v1/accounts/{account}/charging-sessions/")


async def test_a_session_with_a_reconnect_and_resends_is_billed_once_to_the_cent(stack):
    p = provision(stack)
    t0 = datetime.now(UTC) - timedelta(minutes=20)
    at = [timestamp(t0 + timedelta(minutes=m)) for m in range(8)]
    start = call.StartTransaction(connector_id=1, id_tag=TAG, meter_start=100_000, timestamp=at[0])
    tid, unanswered = await _until_the_connection_drops(stack, p, start, at)
    # Reconnected, the charge point resends whatever it had no answer for.
    async with charge_point(stack.http_base, p["id"], p["password"]) as cp:
        assert (await cp.call(start)).transaction_id == tid
        for values in unanswered:
            await cp.call(values)
        await cp.call(call.MeterValues(1, [register(107_250, at[3])], tid))
        stop = call.StopTransaction(
            meter_stop=110_000,
            timestamp=at[5],
            transaction_id=tid,
            id_tag=TAG,
            reason="EVDisconnected",
            transaction_data=[register(110_000, at[5], "Transaction.End")],
        )
        assert (await cp.call(stop)).id_tag_info["status"] == "Accepted"
        await cp.call(stop)
    [session] = sessions(stack, p["account"])
    # 10 kWh from meterStart at 0.30, whatever was resent.
    assert (session["status"], session["energy_kwh"], session["amount"]) == (
        "completed",
        "10",
        "3.000000",
    )
    assert (session["meter_start_wh"], session["meter_stop_wh"]) == ("100000", "110000")
    assert (session["transaction_id"], session["stop_reason"]) == (tid, "EVDisconnected")
    charges = stack.charges(p["account"], p["meter"])
    assert sum(Decimal(c["amount"]) for c in charges) == Decimal("3")
    assert stack.usage(p["account"])["total"] == "3.000000"


async def _until_the_connection_drops(stack, p: dict, start, at: list[str]) -> tuple[int, list]:
    """Boot, authorize, start and two MeterValues, the second's answer lost as the
    connection drops; the dashboard sees the first charged. The transaction id, and the
    MeterValues a charge point resends (it cannot know the first was answered in time)."""
    key = stack.dashboard_key(p["account"])
    async with (
        connect_dashboard(stack, p["account"], key) as dash,
        charge_point(stack.http_base, p["id"], p["password"]) as cp,
    ):
        assert (await cp.call(BOOT)).status == "Accepted"
        assert (await cp.call(call.Authorize(id_tag=TAG))).id_tag_info["status"] == "Accepted"
        tid = (await cp.call(start)).transaction_id
        values = call.MeterValues(1, [register(102_500, at[1])], tid)
        assert await cp.call(values) is not None
        charge = await recv_until(dash, _charged, timeout=20)  # past meterStart's 0
        assert charge["meter"] == p["meter"] and charge["amount"] == "0.750000"
        lost = call.MeterValues(1, [register(104_000, at[2])], tid)
        await cp._connection.send(json.dumps([2, "lost-1", "MeterValues", _camel(lost)]))
    return tid, [values, lost]


def _charged(message: dict) -> bool:
    return message.get("type") == "charge" and message["amount"] != "0.000000"


def _camel(payload) -> dict:
    """A call's payload as the ocpp package sends it (camelCase, no Nones)."""
    from dataclasses import asdict

    from ocpp.charge_point import remove_nones, snake_to_camel_case

    return remove_nones(snake_to_camel_case(asdict(payload)))


async def test_unknown_transaction_ids_are_answered_never_refused(stack):
    p = provision(stack)
    async with charge_point(stack.http_base, p["id"], p["password"]) as cp:
        for tid in (-1, 0, 987_654):
            values = call.MeterValues(1, [register(5000, timestamp())], tid)
            assert await cp.call(values, suppress=False) is not None  # a CallError raises
            stop = call.StopTransaction(meter_stop=6000, timestamp=timestamp(), transaction_id=tid)
            assert await cp.call(stop, suppress=False) is not None
    assert stack.charges(p["account"]) == []
    assert sessions(stack, p["account"]) == []


async def answered_at_all(stack, cp_id: str, password: str | None, **options) -> bool:
    """Whether a BootNotification on this connection is ever answered."""
    try:
        async with charge_point(
            stack.http_base, cp_id, password, response_timeout=3, **options
        ) as cp:
            return await cp.call(BOOT) is not None
    except (InvalidStatus, ConnectionClosed, TimeoutError):
        return False


async def test_credentials_are_refused_five_ways(stack):
    p, other = provision(stack), provision(stack)
    assert await answered_at_all(stack, p["id"], p["password"]), "the control"
    refusals = {
        "wrong password": (p["id"], "0" * 40, {}),
        "none": (p["id"], None, {}),
        "another meter's token": (p["id"], other["password"], {}),
        "unknown id": ("CP-nobody", p["password"], {}),
        "no subprotocol": (p["id"], p["password"], {"subprotocols": ()}),
    }
    for name, (cp_id, password, options) in refusals.items():
        assert not await answered_at_all(stack, cp_id, password, **options), name


async def test_an_operators_stop_and_a_cut_off_reach_the_charger(stack):
    p = provision(stack, unit_price="1")
    base = f"/api/v1/accounts/{p['account']}"
    credit = {"amount": "5.00", "description": "top-up", "idempotency_key": "k1"}
    stack.api_ok("POST", f"{base}/credits/", credit, 201)
    stack.api_ok("PATCH", f"{base}/", {"cutoff_at": "0"})
    start = call.StartTransaction(connector_id=1, id_tag=TAG, meter_start=0, timestamp=timestamp())
    async with charge_point(stack.http_base, p["id"], p["password"]) as cp:
        await cp.call(BOOT)
        tid = (await cp.call(start)).transaction_id
        [session] = sessions(stack, p["account"])
        stopped = stack.api_ok(
            "POST", f"/api/v1/charging-sessions/{session['id']}/stop/", None, 202
        )
        assert stopped["remote_stop_status"] == "Requested"
        assert await asyncio.wait_for(cp.remote_stops.get(), 20) == tid
        await _until(lambda: sessions(stack, p["account"])[0]["remote_stop_status"] == "Accepted")
        # The driver carries on charging: 6 kWh at 1 takes the balance of 5 below 0.
        await cp.call(call.MeterValues(1, [register(6000, timestamp())], tid))
        assert await asyncio.wait_for(cp.remote_stops.get(), 20) == tid  # the cut-off
        blocked = await cp.call(call.Authorize(id_tag=TAG))
        assert blocked.id_tag_info["status"] == "Blocked"
        more = {**credit, "amount": "10.00", "idempotency_key": "k2"}
        stack.api_ok("POST", f"{base}/credits/", more, 201)
        assert (await cp.call(call.Authorize(id_tag=TAG))).id_tag_info["status"] == "Accepted"
    assert stack.api_ok("GET", f"{base}/balance/")["balance"] == "9.000000"


async def _until(predicate, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)
