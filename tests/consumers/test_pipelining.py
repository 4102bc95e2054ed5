"""Pipelining (metering/batching.py): an account may have several batches out at once
(METERLINE_ACCOUNT_BATCHES_IN_FLIGHT), they may commit in either order, and a meter that
sends registers still has one batch out at a time."""

import asyncio
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from billing.models import Charge
from metering import batching
from protocol import RATING_CHANNEL
from tests.consumers.conftest import dashboard, device, rate_message
from tests.factories import make_account, make_dashboard_key, make_meter, make_tariff

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def batches_never_expire(monkeypatch):
    """An unanswered batch frees its place only after the tests' longest wait."""
    monkeypatch.setattr(batching, "BATCH_EXPIRY_SECONDS", 60.0)


@database_sync_to_async
def one_account(*kinds):
    """An account with a meter of each kind (per unit 0.30), their tokens, a dashboard key."""
    account, tariff = make_account(), make_tariff()
    tokens = [make_meter(account, tariff, kind=kind)[1] for kind in kinds]
    return account, tokens, make_dashboard_key(account)


def delta(reading_id, quantity="1"):
    now = timezone.now().isoformat()
    return json.dumps({"type": "reading", "id": reading_id, "ts": now, "quantity": quantity})


def register(reading_id, value, seconds):
    ts = (timezone.now() - timedelta(minutes=5) + timedelta(seconds=seconds)).isoformat()
    return json.dumps({"type": "reading", "id": reading_id, "ts": ts, "value": value})


async def next_batch(timeout=2):
    return await asyncio.wait_for(get_channel_layer().receive(RATING_CHANNEL), timeout)


async def no_batch():
    """Nothing more is sent to the workers (for now)."""
    try:
        message = await next_batch(timeout=0.3)
    except TimeoutError:
        return True
    raise AssertionError(f"a batch went out: {message}")


def ids(batch):
    return [reading["id"] for frame in batch["frames"] for reading in frame["readings"]]


async def rated(message, client):
    """Rate a batch and hear its device's ack."""
    worker = await rate_message(message)
    answer = json.loads(await client.receive_from(timeout=5))
    worker.stop()
    return answer


async def test_an_account_keeps_two_batches_out_and_they_may_commit_in_either_order(settings):
    settings.METERLINE_BATCHES_IN_FLIGHT = 3
    settings.METERLINE_ACCOUNT_BATCHES_IN_FLIGHT = 2
    account, [token], key = await one_account("delta")
    watcher = dashboard(account.id, key)
    assert (await watcher.connect())[0]
    assert (await watcher.receive_json_from())["seq"] == 0
    me = device(token)
    assert (await me.connect())[0]
    await me.send_to(text_data=delta("r-1", "1"))
    first = await next_batch()
    await me.send_to(text_data=delta("r-2", "2"))  # goes beside the first: pipelined
    second = await next_batch()
    await me.send_to(text_data=delta("r-3", "4"))  # the account's two places are taken
    assert (ids(first), ids(second)) == (["r-1"], ["r-2"])
    assert await no_batch()

    # The second commits first (a second worker took the account lock first).
    assert (await rated(second, me))["ids"] == ["r-2"]
    third = await next_batch()
    assert ids(third) == ["r-3"]
    assert (await rated(first, me))["ids"] == ["r-1"]
    assert (await rated(third, me))["ids"] == ["r-3"]

    # Dashboards see commit order: each total counts exactly the charges before it.
    charges = []
    while len(charges) < 3:
        event = await watcher.receive_json_from(timeout=5)
        if event["type"] == "charge":  # not the meter's status
            charges.append(event)
    assert [(e["seq"], e["reading_ids"], e["period_total"]) for e in charges] == [
        (1, ["r-2"], "0.600000"),
        (2, ["r-1"], "0.900000"),
        (3, ["r-3"], "2.100000"),
    ]
    amounts = await database_sync_to_async(
        lambda: list(Charge.objects.values_list("amount", flat=True))
    )()
    assert sum(amounts, Decimal(0)) == Decimal("2.100000")
    for client in (me, watcher):
        await client.disconnect()


async def test_a_meter_sending_registers_keeps_one_batch_out_while_its_account_goes_on(settings):
    settings.METERLINE_BATCHES_IN_FLIGHT = 3
    settings.METERLINE_ACCOUNT_BATCHES_IN_FLIGHT = 3
    _, [cumulative_token, delta_token], _ = await one_account("cumulative", "delta")
    registers, deltas = device(cumulative_token), device(delta_token)
    for client in (registers, deltas):
        assert (await client.connect())[0]
    await registers.send_to(text_data=register("c-1", "100", 1))
    first = await next_batch()
    await registers.send_to(text_data=register("c-2", "110", 2))  # waits for c-1's answer
    await registers.send_to(text_data=register("c-3", "105", 3))  # and after c-2
    await deltas.send_to(text_data=delta("d-1"))  # the account has places: goes on
    beside = await next_batch()
    assert (ids(first), ids(beside)) == (["c-1"], ["d-1"])
    assert await no_batch()

    assert (await rated(beside, deltas))["ids"] == ["d-1"]
    assert await no_batch()
    assert (await rated(first, registers))["ids"] == ["c-1"]
    then = await next_batch()
    assert ids(then) == ["c-2", "c-3"]  # in the order they came, so the decrease is refused
    worker = await rate_message(then)
    assert json.loads(await registers.receive_from(timeout=5))["ids"] == ["c-2"]
    error = json.loads(await registers.receive_from(timeout=5))
    assert (error["id"], error["code"]) == ("c-3", "register_decreased")
    worker.stop()
    for client in (registers, deltas):
        await client.disconnect()
