"""The central system's answers to a charge point, without a socket: rated inline, in the
database, through the same rating service the workers call."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async

from billing.models import Account, Charge, Event
from metering.models import ChargingSession, ConnectorStatus, IdTag, UnknownTransactionMessage
from tests.ocpp.conftest import ID_TAG, Link

pytestmark = pytest.mark.django_db(transaction=True)
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def start(meter_start: int, *, minutes: float = 0, connector: int = 1, tag: str = ID_TAG) -> dict:
    return {
        "connectorId": connector,
        "idTag": tag,
        "meterStart": meter_start,
        "timestamp": at(minutes),
    }


def values(transaction_id, wh: str, *, minutes: float, connector: int = 1) -> dict:
    sample = {"value": wh, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return {
        "connectorId": connector,
        "transactionId": transaction_id,
        "meterValue": [{"timestamp": at(minutes), "sampledValue": [sample]}],
    }


def stop(transaction_id, meter_stop: int, *, minutes: float, **more) -> dict:
    return {
        "transactionId": transaction_id,
        "meterStop": meter_stop,
        "timestamp": at(minutes),
        **more,
    }


@database_sync_to_async
def charged(meter) -> Decimal:
    return sum(Charge.objects.filter(meter=meter).values_list("amount", flat=True), Decimal(0))


@database_sync_to_async
def session_of(transaction_id) -> ChargingSession:
    return ChargingSession.objects.get(transaction_id=transaction_id)


@database_sync_to_async
def completed_events() -> list[dict]:
    events = Event.objects.filter(type=Event.Type.CHARGING_SESSION_COMPLETED).order_by("id")
    return list(events.values_list("data", flat=True))


async def test_boot_and_heartbeat_give_the_time_and_the_interval(link):
    boot = await link.result(
        "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}
    )
    assert boot["status"] == "Accepted" and boot["interval"] == 300
    assert datetime.fromisoformat(boot["currentTime"]).tzinfo is not None
    assert "currentTime" in await link.result("Heartbeat", {})


async def test_a_session_is_billed_once_from_meter_start_whatever_is_resent(link, charge_point):
    assert await link.result("Authorize", {"idTag": ID_TAG}) == {
        "idTagInfo": {"status": "Accepted"}
    }
    started = await link.result("StartTransaction", start(10_000))
    tid = started["transactionId"]
    assert tid > 0 and started["idTagInfo"] == {"status": "Accepted"}
    assert await link.result("MeterValues", values(tid, "12500", minutes=5)) == {}
    # A reconnect later, the charge point resends what it had no answer for.
    again = Link(charge_point.identity)
    assert (await again.result("StartTransaction", start(10_000)))["transactionId"] == tid
    await again.result("MeterValues", values(tid, "12500", minutes=5))
    await again.result("MeterValues", values(tid, "14000", minutes=10))
    assert await charged(charge_point.meter) == Decimal("1.200000")  # 4 kWh at 0.30
    await again.result("StopTransaction", stop(tid, 15_000, minutes=12, idTag=ID_TAG))
    await again.result("StopTransaction", stop(tid, 15_000, minutes=12, idTag=ID_TAG))
    await again.close()
    assert await charged(charge_point.meter) == Decimal("1.500000")
    session = await session_of(tid)
    assert (session.status, session.meter_stop_wh, session.stop_reason) == (
        "completed",
        15_000,
        "Local",
    )
    assert (session.energy_kwh, session.amount) == (Decimal(5), Decimal("1.5"))
    [event] = await completed_events()
    assert event["transaction_id"] == tid and event["amount"] == "1.500000"
    assert event["energy_kwh"] == "5" and event["status"] == "completed"


async def test_the_energy_between_sessions_is_not_billed(link, charge_point):
    first = (await link.result("StartTransaction", start(1000)))["transactionId"]
    await link.result("StopTransaction", stop(first, 3000, minutes=1))
    # Between the sessions the register moved on 7 kWh (another meter, a test, a fault).
    second = (await link.result("StartTransaction", start(10_000, minutes=2)))["transactionId"]
    assert second != first
    await link.result("StopTransaction", stop(second, 11_000, minutes=3))
    assert await charged(charge_point.meter) == Decimal("0.900000")  # 2 + 1 kWh


async def test_unknown_transactions_are_recorded_and_answered_never_refused(link, charge_point):
    for transaction_id in (-1, 0, 999_999, 2**40, 10**30):
        assert await link.result("MeterValues", values(transaction_id, "5000", minutes=1)) == {}
        answer = await link.result(
            "StopTransaction", stop(transaction_id, 6000, minutes=2, idTag="X")
        )
        assert answer == {"idTagInfo": {"status": "Invalid"}}
    assert await link.result("StopTransaction", stop(-1, 6000, minutes=2)) == {}
    recorded = await database_sync_to_async(
        lambda: list(UnknownTransactionMessage.objects.values_list("transaction_id", "action"))
    )()
    assert len(recorded) == 11 and (-1, "MeterValues") in recorded
    assert (None, "StopTransaction") in recorded  # beyond 64 bits: in the payload only
    assert await charged(charge_point.meter) == 0


async def test_meter_values_without_a_transaction_are_not_billed(link, charge_point):
    payload = values(1, "5000", minutes=1)
    del payload["transactionId"]
    assert await link.result("MeterValues", {**payload, "connectorId": 0}) == {}
    assert link.rated == []


async def test_busy_is_not_an_ocpp_error_the_readings_go_again_until_committed(charge_point):
    link = Link(charge_point.identity, busy=2)
    started = await link.result("StartTransaction", start(0))
    assert link.rated == [[f"tx{started['transactionId']}-start"]] * 3
    await link.close()


async def test_authorize_follows_the_tag_and_the_cut_off(link, charge_point):
    assert (await link.result("Authorize", {"idTag": "04a2b3c4"}))["idTagInfo"][
        "status"
    ] == "Accepted"
    assert (await link.result("Authorize", {"idTag": "UNKNOWN"}))["idTagInfo"][
        "status"
    ] == "Invalid"
    await database_sync_to_async(Account.objects.filter(pk=charge_point.account.pk).update)(
        cut_off=True
    )
    assert (await link.result("Authorize", {"idTag": ID_TAG}))["idTagInfo"]["status"] == "Blocked"
    await database_sync_to_async(Account.objects.filter(pk=charge_point.account.pk).update)(
        cut_off=False
    )
    await database_sync_to_async(IdTag.objects.filter(pk=charge_point.tag.pk).update)(active=False)
    assert (await link.result("Authorize", {"idTag": ID_TAG}))["idTagInfo"]["status"] == "Blocked"


async def test_a_session_of_an_unknown_tag_gets_an_id_and_is_not_billed(link, charge_point):
    started = await link.result("StartTransaction", start(0, tag="STRANGER"))
    assert started["idTagInfo"] == {"status": "Invalid"}
    await link.result("MeterValues", values(started["transactionId"], "9000", minutes=1))
    await link.result("StopTransaction", stop(started["transactionId"], 9000, minutes=2))
    assert link.rated == [] and await charged(charge_point.meter) == 0
    session = await session_of(started["transactionId"])
    assert (session.billed, session.status, session.amount) == (False, "completed", 0)


async def test_a_second_connector_charging_at_once_is_not_billed(link, charge_point):
    first = (await link.result("StartTransaction", start(1000, connector=1)))["transactionId"]
    second = (await link.result("StartTransaction", start(50_000, connector=2)))["transactionId"]
    await link.result("MeterValues", values(second, "51000", minutes=1, connector=2))
    await link.result("MeterValues", values(first, "2000", minutes=1))
    assert await charged(charge_point.meter) == Decimal("0.300000")
    assert not (await session_of(second)).billed


async def test_a_start_on_a_connector_ends_the_session_it_never_stopped(link, charge_point):
    lost = (await link.result("StartTransaction", start(1000)))["transactionId"]
    await link.result("MeterValues", values(lost, "2000", minutes=1))
    await link.result("StartTransaction", start(2000, minutes=5))
    session = await session_of(lost)
    assert (session.status, session.stop_reason, session.amount) == (
        "completed",
        "Superseded",
        Decimal("0.3"),
    )


async def test_status_notifications_are_kept_and_shown(link, charge_point):
    payload = {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": at(1)}
    assert await link.result("StatusNotification", payload) == {}
    assert link.events == [
        {
            "type": "connector_status",
            "meter": charge_point.meter.id,
            "charge_point_id": "CP-1",
            "connector_id": 1,
            "status": "Charging",
            "error_code": "NoError",
            "info": "",
            "at": at(1),
        }
    ]
    status = await database_sync_to_async(ConnectorStatus.objects.get)(meter=charge_point.meter)
    assert status.status == "Charging"


async def test_calls_meterline_does_not_answer_and_malformed_ones(link):
    answer = await link.call("Reset", {"type": "Hard"})
    assert answer[0] == 4 and answer[2] == "NotImplemented"
    answer = await link.call("Authorize", {"idTag": 5})
    assert answer[2] == "TypeConstraintViolation"
    answer = await link.call("StartTransaction", start(-5))
    assert answer[2] == "PropertyConstraintViolation"
    answer = await link.frame('[2, "bad", "Heartbeat"]')
    assert answer[:3] == [4, "bad", "FormationViolation"]
    assert (await link.result("DataTransfer", {"vendorId": "x"})) == {"status": "UnknownVendorId"}


async def test_our_own_trouble_is_never_a_call_error_for_a_transaction_message(charge_point):
    link = Link(charge_point.identity)

    async def broken(readings):
        raise RuntimeError("the database is restarting")

    link.central.rate_once = broken
    link.central.received(json.dumps([2, "s1", "StartTransaction", start(0)]))
    link.central.received(json.dumps([2, "h1", "Heartbeat", {}]))
    answer = await link.sent.get()
    assert answer[1] == "h1", "the StartTransaction went unanswered: the charge point resends it"
    await link.close()


async def test_a_remote_stop_is_sent_and_its_answer_recorded(link, charge_point):
    tid = (await link.result("StartTransaction", start(0)))["transactionId"]
    session = await session_of(tid)
    link.central.spawn(link.central.remote_stop(session_id=session.id, transaction_id=tid))
    call = await link.sent.get()
    assert call[0] == 2 and call[2:] == ["RemoteStopTransaction", {"transactionId": tid}]
    link.central.received(json.dumps([3, call[1], {"status": "Accepted"}]))
    for _ in range(100):
        session = await session_of(tid)
        if session.remote_stop_status:
            break
        await asyncio.sleep(0.05)
    assert session.remote_stop_status == "Accepted" and session.remote_stop_requested_at


async def test_dashboards_hear_a_session_start_and_complete(link):
    tid = (await link.result("StartTransaction", start(1000)))["transactionId"]
    await link.result("MeterValues", values(tid, "3000", minutes=1))
    await link.result("StopTransaction", stop(tid, 4000, minutes=2))
    await link.result("StopTransaction", stop(tid, 4000, minutes=2))  # told once
    sessions = [e["session"] for e in link.events if e["type"] == "charging_session"]
    assert [(s["transaction_id"], s["status"], s["amount"]) for s in sessions] == [
        (tid, "active", "0.000000"),
        (tid, "completed", "0.900000"),
    ]
