"""The device socket: authentication, parsing, and the road to the rating worker and back."""

import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

import protocol
from billing.models import Charge
from metering.consumers import devices
from metering.consumers.common import connect_gate
from tests.consumers.conftest import (
    closed_with,
    dashboard,
    device,
    frames_handed_on,
    rate_next_frame,
)
from tests.factories import make_account, make_meter, make_operator_key, make_tariff

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def new_meter(**options):
    account = make_account()
    meter, token = make_meter(account, make_tariff("graduated"), **options)
    return meter, token


@database_sync_to_async
def charges_of(meter):
    return list(Charge.objects.filter(meter=meter).values_list("reading__reading_id", "amount"))


def reading(reading_id, quantity="1"):
    return json.dumps(
        {
            "type": "reading",
            "id": reading_id,
            "ts": timezone.now().isoformat(),
            "quantity": quantity,
        }
    )


async def test_ack_comes_after_the_charge_is_committed():
    meter, token = await new_meter()
    client = device(token)
    assert (await client.connect())[0]
    await client.send_to(text_data=reading("r-1", "90"))
    worker = await rate_next_frame()
    ack = json.loads(await client.receive_from(timeout=5))
    worker.stop()
    assert ack == {"type": "ack", "ids": ["r-1"], "duplicates": []}
    assert [(rid, str(amount)) for rid, amount in await charges_of(meter)] == [("r-1", "27.000000")]
    await client.disconnect()


async def test_the_token_may_come_in_the_query_string():
    _, token = await new_meter()
    client = device(query=f"?token={token}")
    assert (await client.connect())[0]
    await client.send_to(text_data=reading("q"))
    worker = await rate_next_frame()
    assert json.loads(await client.receive_from(timeout=5))["ids"] == ["q"]
    worker.stop()
    await client.disconnect()


async def test_a_batch_is_one_channel_message_and_one_ack():
    meter, token = await new_meter()
    client = device(token)
    await client.connect()
    batch = {
        "type": "batch",
        "readings": [
            {"id": f"b-{i}", "ts": timezone.now().isoformat(), "quantity": "1"} for i in range(50)
        ],
    }
    await client.send_to(text_data=json.dumps(batch))
    worker = await rate_next_frame()
    ack = json.loads(await client.receive_from(timeout=5))
    worker.stop()
    assert ack["ids"] == [f"b-{i}" for i in range(50)]
    assert len(await charges_of(meter)) == 50
    await client.disconnect()


async def test_bad_input_is_answered_and_the_connection_stays_open():
    _, token = await new_meter()
    client = device(token)
    await client.connect()
    await client.send_to(text_data="{oops")
    assert json.loads(await client.receive_from())["code"] == "invalid_json"
    await client.send_to(text_data=reading("neg", "-1"))
    error = json.loads(await client.receive_from())
    assert (error["id"], error["code"]) == ("neg", "invalid_reading")
    assert set(error) == {"type", "id", "code", "detail"}  # one refused reading: the contract's
    await client.send_to(text_data=reading("ok"))
    worker = await rate_next_frame()
    assert json.loads(await client.receive_from(timeout=5))["ids"] == ["ok"]
    worker.stop()
    await client.disconnect()


async def test_refusals_carry_the_contract_close_codes():
    meter, token = await new_meter()
    assert await closed_with(device()) == 4401
    assert await closed_with(device("mtk_wrong")) == 4401
    meter.active = False
    await database_sync_to_async(meter.save)()
    assert await closed_with(device(token)) == 4403


async def test_an_operator_close_reaches_open_connections():
    meter, token = await new_meter()
    client = device(token)
    await client.connect()
    from channels.layers import get_channel_layer

    await get_channel_layer().group_send(f"meter-{meter.id}", {"type": "meter.close", "code": 4403})
    output = await client.receive_output(timeout=2)
    assert output == {"type": "websocket.close", "code": 4403}


async def test_dashboards_see_the_device_come_online_and_the_charge():
    meter, token = await new_meter()
    key = await database_sync_to_async(make_operator_key)()
    watcher = dashboard(meter.account_id, key, via="header")
    await watcher.connect()
    snapshot = await watcher.receive_json_from()
    assert snapshot["type"] == "snapshot"
    assert snapshot["meters"] == [
        {"id": meter.id, "usage": "0", "amount": "0.000000", "online": False}
    ]
    client = device(token)
    await client.connect()
    assert await watcher.receive_json_from() == {
        "type": "meter_status",
        "meter": meter.id,
        "online": True,
    }
    await client.send_to(text_data=reading("r", "110"))
    worker = await rate_next_frame()
    await client.receive_from(timeout=5)
    event = await watcher.receive_json_from(timeout=5)
    worker.stop()
    assert {k: event[k] for k in ("type", "meter", "reading_ids", "quantity", "amount")} == {
        "type": "charge",
        "meter": meter.id,
        "reading_ids": ["r"],
        "quantity": "110",
        "amount": "32.500000",
    }
    assert (event["meter_usage"], event["period_total"]) == ("110", "32.500000")
    await client.disconnect()
    assert (await watcher.receive_json_from())["online"] is False
    await watcher.disconnect()


async def test_a_full_rating_channel_answers_busy_and_records_nothing(settings):
    layer = dict(settings.CHANNEL_LAYERS["default"])
    layer["CONFIG"] = {"capacity": 1}
    settings.CHANNEL_LAYERS = {"default": layer}  # channels rebuilds its layer on this change
    first, first_token = await new_meter()
    second, second_token = await new_meter()  # of another account: a batch of its own
    clients = [device(first_token), device(second_token)]
    for client in clients:
        await client.connect()
    await clients[0].send_to(text_data=reading("fits"))
    await frames_handed_on()
    await clients[1].send_to(text_data=reading("overflows"))
    busy = json.loads(await clients[1].receive_from())
    assert busy == {"type": "busy", "ids": ["overflows"], "retry_after_ms": 500}
    worker = await rate_next_frame()
    assert json.loads(await clients[0].receive_from(timeout=5))["ids"] == ["fits"]
    worker.stop()
    assert [rid for rid, _ in await charges_of(first)] == ["fits"]
    assert await charges_of(second) == []
    for client in clients:
        await client.disconnect()


async def test_a_second_connection_takes_over_and_the_first_is_closed_4409():
    _, token = await new_meter()
    first = device(token)
    await first.connect()
    second = device(token)
    assert (await second.connect())[0]
    assert await first.receive_output(timeout=2) == {"type": "websocket.close", "code": 4409}
    await second.send_to(text_data=reading("after-takeover"))
    worker = await rate_next_frame()
    assert json.loads(await second.receive_from(timeout=5))["ids"] == ["after-takeover"]
    worker.stop()
    await second.disconnect()


async def test_frames_beyond_the_in_flight_limit_get_busy(settings):
    settings.METERLINE_MAX_IN_FLIGHT = 2
    _, token = await new_meter()
    client = device(token)
    await client.connect()
    for n in range(3):
        await client.send_to(text_data=reading(f"f-{n}"))
    busy = json.loads(await client.receive_from())
    assert busy == {"type": "busy", "ids": ["f-2"], "retry_after_ms": 500}
    # An answered frame frees its place in the window.
    worker = await rate_next_frame()
    assert json.loads(await client.receive_from(timeout=5))["ids"] == ["f-0"]
    worker.stop()
    await client.send_to(text_data=reading("f-3"))
    assert await client.receive_nothing(timeout=0.3)  # handed on, not refused
    await client.disconnect()


async def test_an_empty_batch_is_answered_with_an_empty_ack():
    _, token = await new_meter()
    client = device(token)
    await client.connect()
    await client.send_to(text_data=json.dumps({"type": "batch", "readings": []}))
    assert json.loads(await client.receive_from()) == {"type": "ack", "ids": [], "duplicates": []}
    await client.disconnect()


def bad(reading_id):
    return {"id": reading_id, "ts": timezone.now().isoformat(), "quantity": "-1"}


async def test_the_refused_readings_of_a_frame_come_in_one_message():
    _, token = await new_meter()
    client = device(token)
    await client.connect()
    await client.send_to(
        text_data=json.dumps({"type": "batch", "readings": [bad(f"b-{n}") for n in range(1000)]})
    )
    error = json.loads(await client.receive_from())
    # The first refusal as the contract's single error, then all of them.
    assert (error["type"], error["id"], error["code"]) == ("error", "b-0", "invalid_reading")
    assert error["errors"][0] == {key: error[key] for key in ("id", "code", "detail")}
    assert [(e["id"], e["code"]) for e in error["errors"]] == [
        (f"b-{n}", "invalid_reading") for n in range(1000)
    ]
    assert await client.receive_nothing(timeout=0.3)
    await client.disconnect()


async def test_refusals_beside_good_readings_are_one_message_and_the_rest_is_acked():
    _, token = await new_meter()
    client = device(token)
    await client.connect()
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    readings = [
        {"id": "ok-1", "ts": timezone.now().isoformat(), "quantity": "1"},
        bad("neg"),
        {"id": "ahead", "ts": future, "quantity": "1"},
        {"id": "ok-2", "ts": timezone.now().isoformat(), "quantity": "2"},
    ]
    await client.send_to(text_data=json.dumps({"type": "batch", "readings": readings}))
    error = json.loads(await client.receive_from())
    assert [(e["id"], e["code"]) for e in error["errors"]] == [
        ("neg", "invalid_reading"),
        ("ahead", "future_timestamp"),
    ]
    worker = await rate_next_frame()
    assert json.loads(await client.receive_from(timeout=5)) == {
        "type": "ack",
        "ids": ["ok-1", "ok-2"],
        "duplicates": [],
    }
    worker.stop()
    await client.disconnect()


async def test_the_readings_rating_refuses_in_a_frame_come_in_one_message():
    _, token = await new_meter(kind="cumulative")
    client = device(token)
    await client.connect()

    def register(reading_id, value, seconds_ago):
        ts = (timezone.now() - timedelta(seconds=seconds_ago)).isoformat()
        return {"id": reading_id, "ts": ts, "value": value}

    await client.send_to(text_data=json.dumps({"type": "reading", **register("base", "10", 60)}))
    worker = await rate_next_frame()
    assert json.loads(await client.receive_from(timeout=5))["ids"] == ["base"]
    worker.stop()
    readings = [register("down-1", "5", 50), register("down-2", "3", 40), register("up", "20", 30)]
    await client.send_to(text_data=json.dumps({"type": "batch", "readings": readings}))
    worker = await rate_next_frame()
    assert json.loads(await client.receive_from(timeout=5))["ids"] == ["up"]
    error = json.loads(await client.receive_from(timeout=5))
    worker.stop()
    assert (error["type"], error["id"], error["code"]) == ("error", "down-1", "register_decreased")
    assert [(e["id"], e["code"]) for e in error["errors"]] == [
        ("down-1", "register_decreased"),
        ("down-2", "register_decreased"),
    ]
    assert await client.receive_nothing(timeout=0.3)
    await client.disconnect()


async def test_a_connection_that_keeps_sending_refused_frames_is_closed_4429(settings):
    settings.METERLINE_INVALID_FRAMES_PER_MINUTE = 3
    _, token = await new_meter()
    client = device(token)
    await client.connect()
    for n in range(3):  # the budget
        await client.send_to(text_data=reading(f"neg-{n}", "-1"))
        assert json.loads(await client.receive_from())["code"] == "invalid_reading"
    await client.send_to(text_data=reading("fine"))  # good frames spend nothing
    worker = await rate_next_frame()
    assert json.loads(await client.receive_from(timeout=5))["ids"] == ["fine"]
    worker.stop()
    await client.send_to(text_data="{oops")  # a refused frame too, one too many
    assert json.loads(await client.receive_from())["code"] == "invalid_json"
    assert await client.receive_output(timeout=2) == {"type": "websocket.close", "code": 4429}


async def test_a_connect_beyond_the_waiting_room_is_told_when_to_come_back(monkeypatch):
    _, token = await new_meter()
    gate = connect_gate()
    monkeypatch.setattr(gate, "waiting", gate.waiting_room)  # a fleet coming back at once
    monkeypatch.setattr(devices, "TRY_AGAIN_GRACE_SECONDS", 0.1)
    client = device(token)
    assert (await client.connect())[0]
    told = json.loads(await client.receive_from(timeout=2))
    assert told["type"] == "try_again_later" and told["retry_after_ms"] > 0
    # A device that stays is closed once its grace is over, never rated.
    assert (await client.receive_output(timeout=2))["code"] == protocol.CLOSE_TRY_AGAIN_LATER
    monkeypatch.setattr(gate, "waiting", 0)
    again = device(token)
    assert (await again.connect())[0]
    await again.send_to(text_data=reading("r-1"))
    worker = await rate_next_frame()
    assert json.loads(await again.receive_from(timeout=5))["ids"] == ["r-1"]
    worker.stop()
    await again.disconnect()
