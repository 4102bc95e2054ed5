"""The charge point socket (channels' communicator, in-memory layer): the handshake and its
credentials, readings through the batcher and a real rating consumer, and the messages
that reach a connection from elsewhere (rotation, an operator's stop, a cut-off)."""

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from billing.credit_services import credit_add
from billing.models import Account, Charge
from metering.models import ChargingSession
from metering.ocpp.services import charging_session_stop
from metering.services import meter_token_rotate, meter_update
from protocol import account_devices_group
from tests.consumers.conftest import (
    closed_with,
    dashboard,
    device,
    layer_emptied,
    rate_next_frame,
    websocket_app,
)
from tests.factories import make_dashboard_key
from tests.ocpp.conftest import ID_TAG, make_charge_point

pytestmark = pytest.mark.django_db(transaction=True)
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


@pytest.fixture(autouse=True)
async def empty_layer():
    await layer_emptied()
    yield
    await layer_emptied()


def socket(path_id: str, user: str | None, password: str | None, *, subprotocols=("ocpp1.6",)):
    headers = []
    if user is not None:
        secret = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers.append((b"authorization", f"Basic {secret}".encode()))
    return WebsocketCommunicator(
        websocket_app, f"/ocpp/{path_id}", headers=headers, subprotocols=list(subprotocols)
    )


@pytest.fixture
async def charge_point():
    return await database_sync_to_async(make_charge_point)()


@pytest.fixture
async def connected(charge_point):
    client = socket("CP-1", "CP-1", charge_point.password)
    connected, subprotocol = await client.connect()
    assert connected and subprotocol == "ocpp1.6"
    yield client
    await client.disconnect()


async def call(client, action: str, payload: dict, unique_id: str = "u1") -> list:
    await client.send_to(text_data=json.dumps([2, unique_id, action, payload]))
    return json.loads(await client.receive_from(timeout=5))


async def rated_call(client, action: str, payload: dict, unique_id: str = "u1") -> list:
    """A call whose answer waits for a rating worker: rate it, then hear the answer."""
    await client.send_to(text_data=json.dumps([2, unique_id, action, payload]))
    worker = await rate_next_frame()
    answer = json.loads(await client.receive_from(timeout=5))
    worker.stop()
    return answer


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def start(meter_start: int = 0) -> dict:
    return {"connectorId": 1, "idTag": ID_TAG, "meterStart": meter_start, "timestamp": at(0)}


def values(transaction_id: int, wh: int, minutes: float) -> dict:
    sample = {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    meter_value = {"timestamp": at(minutes), "sampledValue": [sample]}
    return {"connectorId": 1, "transactionId": transaction_id, "meterValue": [meter_value]}


async def refused(client) -> int | None:
    """The close code, or None when the handshake itself was refused."""
    connected, _ = await client.connect()
    if not connected:
        return None
    output = await client.receive_output(timeout=2)
    assert output["type"] == "websocket.close"
    return output["code"]


async def test_credentials_are_refused_five_ways_and_nothing_is_answered(charge_point):
    other = await database_sync_to_async(make_charge_point)("CP-2")
    attempts = {
        "wrong password": socket("CP-1", "CP-1", "0" * 40),
        "no credentials": socket("CP-1", None, None),
        "another meter's token": socket("CP-1", "CP-1", other.password),
        "another charge point's id in Basic": socket("CP-1", "CP-2", other.password),
        "unknown id": socket("CP-9", "CP-9", charge_point.password),
    }
    for name, client in attempts.items():
        assert await refused(client) == 4401, name
    no_subprotocol = socket("CP-1", "CP-1", charge_point.password, subprotocols=())
    assert await refused(no_subprotocol) is None, "refused at the handshake"
    ocpp2_only = socket("CP-1", "CP-1", charge_point.password, subprotocols=("ocpp2.0.1",))
    assert await refused(ocpp2_only) is None


async def test_a_disabled_charge_point_is_refused_and_a_rotation_closes_it(charge_point, connected):
    assert (await call(connected, "Heartbeat", {}))[0] == 3
    await database_sync_to_async(meter_token_rotate)(meter=charge_point.meter)
    output = await connected.receive_output(timeout=2)
    assert output == {"type": "websocket.close", "code": 4401}
    await database_sync_to_async(meter_update)(meter=charge_point.meter, active=False)
    assert await refused(socket("CP-1", "CP-1", charge_point.password)) == 4401  # old password
    meter = charge_point.meter
    password = await database_sync_to_async(meter_token_rotate)(meter=meter)
    assert await refused(socket("CP-1", "CP-1", password)) == 4403


async def test_a_session_goes_through_the_batcher_and_a_rating_worker(charge_point, connected):
    boot = await call(
        connected, "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}
    )
    assert boot[2]["status"] == "Accepted"
    started = await rated_call(connected, "StartTransaction", start(1000), "s")
    tid = started[2]["transactionId"]
    assert started[:2] == [3, "s"] and started[2]["idTagInfo"]["status"] == "Accepted"
    assert await rated_call(connected, "MeterValues", values(tid, 3500, 5), "m") == [3, "m", {}]
    amounts = await database_sync_to_async(
        lambda: list(Charge.objects.values_list("reading__reading_id", "amount"))
    )()
    sample_id = f"tx{tid}-{(T0 + timedelta(minutes=5)):%Y%m%dT%H%M%S.%fZ}-Sample.Periodic"
    assert sorted((rid, str(amount)) for rid, amount in amounts) == [
        (sample_id, "0.750000"),  # 2.5 kWh from meterStart, at 0.30
        (f"tx{tid}-start", "0.000000"),
    ]


async def test_dashboards_see_the_charge_point_come_online_and_its_connectors(charge_point):
    key = await database_sync_to_async(make_dashboard_key)(charge_point.account)
    watcher = dashboard(charge_point.account.id, key)
    await watcher.connect()
    assert json.loads(await watcher.receive_from(timeout=5))["type"] == "snapshot"
    client = socket("CP-1", "CP-1", charge_point.password)
    await client.connect()
    online = json.loads(await watcher.receive_from(timeout=5))
    assert online == {"type": "meter_status", "meter": charge_point.meter.id, "online": True}
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}
    assert await call(client, "StatusNotification", status) == [3, "u1", {}]
    event = json.loads(await watcher.receive_from(timeout=5))
    assert (event["type"], event["connector_id"], event["status"]) == (
        "connector_status",
        1,
        "Preparing",
    )
    await client.disconnect()
    offline = json.loads(await watcher.receive_from(timeout=5))
    assert offline["online"] is False
    await watcher.disconnect()


async def stopped_session(client, tid: int) -> ChargingSession:
    """Hear the RemoteStopTransaction for `tid`, accept it, and return the session once the
    answer is recorded."""
    request = json.loads(await client.receive_from(timeout=5))
    assert request[0] == 2 and request[2:] == ["RemoteStopTransaction", {"transactionId": tid}]
    await client.send_to(text_data=json.dumps([3, request[1], {"status": "Accepted"}]))
    for _ in range(100):
        session = await database_sync_to_async(ChargingSession.objects.get)(transaction_id=tid)
        if session.remote_stop_status == "Accepted":
            return session
        await asyncio.sleep(0.02)
    raise AssertionError(f"the answer was not recorded: {session.remote_stop_status!r}")


async def test_an_operators_stop_reaches_the_charge_point(connected):
    tid = (await rated_call(connected, "StartTransaction", start()))[2]["transactionId"]
    session = await database_sync_to_async(ChargingSession.objects.get)(transaction_id=tid)
    requested = await database_sync_to_async(charging_session_stop)(session=session)
    assert requested.remote_stop_status == "Requested"
    session = await stopped_session(connected, tid)
    assert session.remote_stop_requested_at is not None


async def test_a_cut_off_stops_every_active_session(charge_point, connected):
    tid = (await rated_call(connected, "StartTransaction", start()))[2]["transactionId"]
    cutoff = {"type": "account.cutoff", "balance": "-0.500000", "event": "evt_1"}
    await get_channel_layer().group_send(account_devices_group(charge_point.account.id), cutoff)
    await stopped_session(connected, tid)


async def test_a_charge_point_connecting_while_cut_off_is_stopped_after_its_first_call(
    charge_point, connected
):
    tid = (await rated_call(connected, "StartTransaction", start()))[2]["transactionId"]
    await connected.disconnect()
    await database_sync_to_async(Account.objects.filter(pk=charge_point.account.pk).update)(
        cut_off=True
    )
    again = socket("CP-1", "CP-1", charge_point.password)
    await again.connect()
    assert await again.receive_nothing(timeout=0.2), "not before it has spoken"
    answer = await call(again, "Authorize", {"idTag": ID_TAG})
    assert answer[2] == {"idTagInfo": {"status": "Blocked"}}
    await stopped_session(again, tid)
    await again.disconnect()


@database_sync_to_async
def prepaid(account: Account, credit: str) -> None:
    credit_add(account_id=account.id, amount=Decimal(credit), description="", idempotency_key="k")
    Account.objects.filter(pk=account.pk).update(cutoff_at=Decimal(0))


async def test_the_meter_values_that_exhaust_the_credit_stop_the_session(charge_point, connected):
    await prepaid(charge_point.account, "1")
    tid = (await rated_call(connected, "StartTransaction", start()))[2]["transactionId"]
    # 5 kWh at 0.30: 1.50 of a credit of 1. The energy was used: charged all the same.
    assert await rated_call(connected, "MeterValues", values(tid, 5000, 5), "m") == [3, "m", {}]
    await stopped_session(connected, tid)
    assert (await call(connected, "Authorize", {"idTag": ID_TAG}))[2]["idTagInfo"] == {
        "status": "Blocked"
    }


async def test_a_charge_points_password_is_good_only_at_ocpp(charge_point):
    """Else a device could send readings with a session's ids before the charge point."""
    assert await closed_with(device(charge_point.password)) == 4401
    ingest = await database_sync_to_async(Client().post)(
        f"/api/v1/meters/{charge_point.meter.id}/readings/",
        {"readings": []},
        content_type="application/json",
        headers={"Authorization": f"Bearer {charge_point.password}"},
    )
    assert ingest.status_code == 401
