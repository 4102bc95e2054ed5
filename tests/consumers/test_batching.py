"""Frames of one web process travel to the rating workers in batches (metering/batching.py),
within bounds: the readings a process holds, the frames a connection has out."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone
from prometheus_client import REGISTRY

from billing.models import Charge
from metering import batching
from metering.batching import frame_batcher
from metering.consumers import devices
from protocol import RATING_CHANNEL
from tests.consumers.conftest import device, rate_message
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def new_meters(count):
    """`count` meters of one new account, with their device tokens."""
    account = make_account()
    tariff = make_tariff()
    return [make_meter(account, tariff) for _ in range(count)]


@database_sync_to_async
def charged_ids():
    return sorted(Charge.objects.values_list("reading__reading_id", flat=True))


def reading(reading_id):
    now = timezone.now().isoformat()
    return json.dumps({"type": "reading", "id": reading_id, "ts": now, "quantity": "1"})


async def connected_devices(count):
    clients = []
    for _, token in await new_meters(count):
        client = device(token)
        assert (await client.connect())[0]
        clients.append(client)
    return clients


async def next_batch(timeout=5):
    return await asyncio.wait_for(get_channel_layer().receive(RATING_CHANNEL), timeout)


async def test_frames_arriving_while_the_batches_are_out_wait_and_go_as_one_message(settings):
    settings.METERLINE_BATCHES_IN_FLIGHT = 1
    clients = await connected_devices(3)
    await clients[0].send_to(text_data=reading("first"))
    first = await next_batch()
    for n, client in enumerate(clients):  # the only place is taken: these wait
        await client.send_to(text_data=reading(f"waiting-{n}"))
    assert await clients[0].receive_nothing(timeout=0.2)

    worker = await rate_message(first)  # its answer frees the place
    assert json.loads(await clients[0].receive_from(timeout=5))["ids"] == ["first"]
    worker.stop()
    second = await next_batch()
    # Three devices' frames: one message, in whichever order their consumers ran.
    assert sorted(frame["readings"][0]["id"] for frame in second["frames"]) == [
        "waiting-0",
        "waiting-1",
        "waiting-2",
    ]
    worker = await rate_message(second)
    for n, client in enumerate(clients):
        ack = json.loads(await client.receive_from(timeout=5))
        assert ack == {"type": "ack", "ids": [f"waiting-{n}"], "duplicates": []}
        await client.disconnect()
    worker.stop()
    assert await charged_ids() == ["first", "waiting-0", "waiting-1", "waiting-2"]


async def test_a_batch_unanswered_for_long_frees_its_place_and_a_late_answer_still_acks(
    settings, monkeypatch
):
    settings.METERLINE_BATCHES_IN_FLIGHT = 1
    monkeypatch.setattr(batching, "BATCH_EXPIRY_SECONDS", 0.2)
    [client] = await connected_devices(1)
    await client.send_to(text_data=reading("slow"))
    slow = await next_batch()  # taken by a worker that stalls
    await client.send_to(text_data=reading("after"))
    later = await next_batch()
    assert [frame["readings"][0]["id"] for frame in later["frames"]] == ["after"]
    worker = await rate_message(later)
    assert json.loads(await client.receive_from(timeout=5))["ids"] == ["after"]
    worker.stop()
    worker = await rate_message(slow)
    assert json.loads(await client.receive_from(timeout=5))["ids"] == ["slow"]
    worker.stop()
    await client.disconnect()


async def test_a_frame_that_breaks_rating_does_not_hold_up_the_rest_of_its_batch():
    clients = await connected_devices(2)
    await clients[0].send_to(text_data=reading("fine"))
    message = await next_batch()
    poison = {"key": 999, "meter": "mtr_gone", "readings": [{"id": "x", "ts": "not a time"}]}
    message["frames"].append(poison)
    worker = await rate_message(message)
    assert json.loads(await clients[0].receive_from(timeout=5))["ids"] == ["fine"]
    worker.stop()
    assert await charged_ids() == ["fine"]
    for client in clients:
        await client.disconnect()


async def test_an_account_has_one_batch_out_at_a_time_while_others_go_beside_it(settings):
    settings.METERLINE_BATCHES_IN_FLIGHT = 2
    settings.METERLINE_ACCOUNT_BATCHES_IN_FLIGHT = 1
    [(_, mine)] = await new_meters(1)
    [(_, theirs)] = await new_meters(1)  # another account
    me, them = device(mine), device(theirs)
    for client in (me, them):
        assert (await client.connect())[0]
    await me.send_to(text_data=reading("mine-1"))
    first = await next_batch()
    await me.send_to(text_data=reading("mine-2"))  # waits: its account's batch is out
    await them.send_to(text_data=reading("theirs-1"))  # goes beside it
    second = await next_batch()
    assert [frame["readings"][0]["id"] for frame in second["frames"]] == ["theirs-1"]

    worker = await rate_message(first)
    assert json.loads(await me.receive_from(timeout=5))["ids"] == ["mine-1"]
    third = await next_batch()
    assert [frame["readings"][0]["id"] for frame in third["frames"]] == ["mine-2"]
    worker.stop()
    for client in (me, them):
        await client.disconnect()


def busy(*ids):
    return {"type": "busy", "ids": list(ids), "retry_after_ms": 500}


def waiting_gauge():
    return REGISTRY.get_sample_value("meterline_waiting_readings")


def layer_expiry(monkeypatch, seconds):
    """The channel layer's message expiry, as the web process counts it, made short."""
    monkeypatch.setattr(batching, "LAYER_EXPIRY_SECONDS", seconds)
    # The device consumer once kept a clock of its own for it, and forgot frames by it.
    monkeypatch.setattr(devices, "LAYER_EXPIRY_SECONDS", seconds, raising=False)


async def test_frames_beyond_the_readings_a_process_may_hold_get_busy(settings):
    settings.METERLINE_BATCHES_IN_FLIGHT = 1
    settings.METERLINE_MAX_WAITING_READINGS = 3
    clients = await connected_devices(5)
    # r-0 goes out, r-1 and r-2 wait behind it: 3 readings held, no worker answers.
    for n, client in enumerate(clients[:3]):
        await client.send_to(text_data=reading(f"r-{n}"))
        assert await client.receive_nothing(timeout=0.1)
    first = await next_batch()
    for n, client in enumerate(clients[3:], start=3):
        await client.send_to(text_data=reading(f"r-{n}"))
        assert json.loads(await client.receive_from()) == busy(f"r-{n}")
    batcher = frame_batcher(get_channel_layer())
    assert (batcher.held, len(batcher.waiting), waiting_gauge()) == (3, 2, 3)

    worker = await rate_message(first)
    assert json.loads(await clients[0].receive_from(timeout=5))["ids"] == ["r-0"]
    worker.stop()
    worker = await rate_message(await next_batch())  # r-1 and r-2 together
    for n in (1, 2):
        assert json.loads(await clients[n].receive_from(timeout=5))["ids"] == [f"r-{n}"]
    worker.stop()
    for n in (3, 4):  # resent, now that there is room
        await clients[n].send_to(text_data=reading(f"r-{n}"))
    worker = await rate_message(await next_batch())
    for n in (3, 4):
        assert json.loads(await clients[n].receive_from(timeout=5))["ids"] == [f"r-{n}"]
    worker.stop()
    assert (batcher.held, waiting_gauge()) == (0, 0)
    assert await charged_ids() == [f"r-{n}" for n in range(5)]
    for client in clients:
        await client.disconnect()


async def test_a_frame_counts_against_its_connection_while_it_waits_past_the_layer_expiry(
    settings, monkeypatch
):
    settings.METERLINE_BATCHES_IN_FLIGHT = 1
    settings.METERLINE_MAX_IN_FLIGHT = 1
    layer_expiry(monkeypatch, 0.1)
    [(_, out_token)] = await new_meters(1)
    [(_, waiting_token)] = await new_meters(1)  # another account
    out, waits = device(out_token), device(waiting_token)
    for client in (out, waits):
        assert (await client.connect())[0]
    await out.send_to(text_data=reading("out"))
    first = await next_batch()  # the only place, taken: no worker answers yet
    await waits.send_to(text_data=reading("waits-1"))
    assert await waits.receive_nothing(timeout=0.3)  # still waiting, past the layer's expiry
    await waits.send_to(text_data=reading("waits-2"))
    assert json.loads(await waits.receive_from()) == busy("waits-2")

    worker = await rate_message(first)
    assert json.loads(await out.receive_from(timeout=5))["ids"] == ["out"]
    worker.stop()
    worker = await rate_message(await next_batch())
    assert json.loads(await waits.receive_from(timeout=5))["ids"] == ["waits-1"]
    worker.stop()
    assert await charged_ids() == ["out", "waits-1"]
    for client in (out, waits):
        await client.disconnect()


async def test_a_frame_whose_answer_can_no_longer_come_is_answered_busy(settings, monkeypatch):
    settings.METERLINE_MAX_IN_FLIGHT = 1
    monkeypatch.setattr(batching, "BATCH_EXPIRY_SECONDS", 0.1)
    layer_expiry(monkeypatch, 0.2)
    [client] = await connected_devices(1)
    await client.send_to(text_data=reading("lost"))
    lost = await next_batch()  # taken by a worker that stalls past the layer's expiry
    assert json.loads(await client.receive_from(timeout=5)) == busy("lost")
    assert frame_batcher(get_channel_layer()).held == 0
    await client.send_to(text_data=reading("next"))  # its place in the window came back
    later = await next_batch()
    assert [frame["readings"][0]["id"] for frame in later["frames"]] == ["next"]
    worker = await rate_message(later)
    assert json.loads(await client.receive_from(timeout=5))["ids"] == ["next"]
    worker.stop()
    # The stalled worker answers at last: nobody waits for it; a resend hears "duplicates".
    worker = await rate_message(lost)
    assert await client.receive_nothing(timeout=0.3)
    worker.stop()
    await client.send_to(text_data=reading("lost"))
    worker = await rate_message(await next_batch())
    answer = json.loads(await client.receive_from(timeout=5))
    assert answer == {"type": "ack", "ids": [], "duplicates": ["lost"]}
    worker.stop()
    await client.disconnect()
