"""Dashboards through their process's hub (metering/fanout.py): one channel-layer membership
per group for all of them, every charge shown in order, and what the channel layer loses
read back from the event log (metering/event_log.py) instead of a fresh snapshot."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from metering import fanout
from metering.models import DashboardEventBatch
from tests.consumers.conftest import dashboard, device, frames_handed_on, rate_next_frame
from tests.factories import make_account, make_dashboard_key, make_meter, make_tariff

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def an_account(keys=1):
    account = make_account()
    _, token = make_meter(account, make_tariff())
    return account, token, [make_dashboard_key(account) for _ in range(keys)]


def charge_seqs(message) -> set:
    """The event numbers a dashboard message carries, whichever way it was sent."""
    if message.get("type") == "dashboard.batch":
        events = [event for batch in message["accounts"].values() for event in batch]
    else:
        events = message.get("events", [])
    return {event.get("seq") for event in events}


def losing(monkeypatch, lost) -> None:
    """The layer loses the messages carrying a charge event whose number `lost(seq)`
    says, sent to groups or to a process (as channels-redis may: at most once)."""
    layer = get_channel_layer()
    send, group_send = layer.send, layer.group_send

    async def send_losing(channel, message):
        if not any(lost(seq) for seq in charge_seqs(message)):
            await send(channel, message)

    async def group_send_losing(group, message):
        if not any(lost(seq) for seq in charge_seqs(message)):
            await group_send(group, message)

    monkeypatch.setattr(layer, "send", send_losing)
    monkeypatch.setattr(layer, "group_send", group_send_losing)


@pytest.fixture
def lossy_layer(monkeypatch):
    """The layer loses the charge events numbered in the set returned."""
    lose: set[int] = set()
    losing(monkeypatch, lambda seq: seq in lose)
    return lose


async def opened(communicator):
    assert (await communicator.connect())[0]
    snapshot = await communicator.receive_json_from()
    assert snapshot["type"] == "snapshot"
    return communicator


async def charged(meter_device, count, prefix="r"):
    """`count` frames of one reading, each rated in a batch of its own (an event each)."""
    for n in range(count):
        reading = {"type": "reading", "id": f"{prefix}-{n}", "ts": timezone.now().isoformat()}
        await meter_device.send_to(text_data=json.dumps(reading | {"quantity": "1"}))
        worker = await rate_next_frame()
        assert json.loads(await meter_device.receive_from(timeout=5))["type"] == "ack"
        worker.stop()


async def shown(watcher, count, timeout=5):
    """The next `count` charge events (skipping meter status), and any snapshot among them."""
    charges, snapshots = [], []
    while len(charges) < count:
        message = await watcher.receive_json_from(timeout=timeout)
        if message["type"] == "charge":
            charges.append(message)
        elif message["type"] == "snapshot":
            snapshots.append(message)
    return charges, snapshots


async def test_charges_the_layer_lost_come_from_the_event_log_in_order(lossy_layer):
    account, token, [key] = await an_account()
    watchers = [await opened(dashboard(account.id, key)) for _ in range(3)]
    meter_device = device(token)
    assert (await meter_device.connect())[0]
    lossy_layer.update({2, 3, 6})
    await charged(meter_device, 8)
    for watcher in watchers:
        charges, snapshots = await shown(watcher, 8)
        assert [event["seq"] for event in charges] == list(range(1, 9))
        assert [event["reading_ids"] for event in charges] == [[f"r-{n}"] for n in range(8)]
        assert [event["period_total"] for event in charges][-1] == "2.400000"
        assert snapshots == []  # caught up, not resynced
        assert await watcher.receive_nothing(timeout=0.3)
    for communicator in (*watchers, meter_device):
        await communicator.disconnect()


async def test_the_last_charges_lost_come_at_the_refresh(lossy_layer, monkeypatch):
    """No later event shows the gap: the hub's refresh tells the latest number."""
    monkeypatch.setattr("metering.consumers.dashboards.GROUP_REFRESH_SECONDS", 0.2)
    account, token, [key] = await an_account()
    watcher = await opened(dashboard(account.id, key))
    meter_device = device(token)
    assert (await meter_device.connect())[0]
    lossy_layer.update({4, 5})
    await charged(meter_device, 5)
    charges, snapshots = await shown(watcher, 5)
    assert ([event["seq"] for event in charges], snapshots) == ([1, 2, 3, 4, 5], [])
    for communicator in (watcher, meter_device):
        await communicator.disconnect()


async def test_a_gap_the_log_no_longer_holds_takes_a_fresh_snapshot(lossy_layer):
    account, token, [key] = await an_account()
    watcher = await opened(dashboard(account.id, key))
    meter_device = device(token)
    assert (await meter_device.connect())[0]
    lossy_layer.add(2)
    await charged(meter_device, 2)
    await database_sync_to_async(DashboardEventBatch.objects.all().delete)()  # pruned
    await charged(meter_device, 1, prefix="later")
    first, _ = await shown(watcher, 1)
    resync = await watcher.receive_json_from(timeout=3)
    assert (first[0]["seq"], resync["type"], resync["seq"], resync["total"]) == (
        1,
        "snapshot",
        3,
        "0.900000",
    )
    assert await watcher.receive_nothing(timeout=0.3)  # 3 is in the snapshot
    for communicator in (watcher, meter_device):
        await communicator.disconnect()


async def test_a_process_joins_each_group_once_for_all_its_dashboards(monkeypatch):
    account, token, keys = await an_account(keys=2)
    watchers = [await opened(dashboard(account.id, keys[n % 2])) for n in range(20)]
    layer = get_channel_layer()
    groups = {name: set(members) for name, members in layer.groups.items()}
    assert len(groups[f"account-{account.id}"]) == 1
    assert sorted(len(members) for name, members in groups.items() if "dashboard-key" in name) == [
        1,
        1,
    ]

    reads = []
    real_read = fanout.account_events_between

    def counted_read(**kwargs):
        reads.append(kwargs)
        return real_read(**kwargs)

    monkeypatch.setattr(fanout, "account_events_between", counted_read)
    losing(monkeypatch, lambda seq: seq == 1)
    meter_device = device(token)
    assert (await meter_device.connect())[0]
    await charged(meter_device, 2)
    for watcher in watchers:
        charges, _ = await shown(watcher, 2)
        assert [event["seq"] for event in charges] == [1, 2]
    assert len(reads) == 1  # one read of the log for the twenty dashboards missing event 1

    for communicator in (*watchers, meter_device):
        await communicator.disconnect()
    await watchers[0].receive_nothing(timeout=0.1)  # the hub leaves the groups meanwhile
    assert not layer.groups.get(f"account-{account.id}")


async def test_a_batch_of_many_accounts_reaches_a_process_in_one_message(monkeypatch, settings):
    """Each dashboard still sees its own account's events, and only those."""
    settings.METERLINE_BATCHES_IN_FLIGHT = 1
    accounts = [await an_account() for _ in range(3)]
    watchers = [await opened(dashboard(account.id, keys[0])) for account, _, keys in accounts]
    # Another account's frame goes first: while its batch is out, the three wait together.
    _, blocker_token, _ = await an_account()
    devices = [device(token) for token in (blocker_token, *(t for _, t, _ in accounts))]
    for meter_device in devices:
        assert (await meter_device.connect())[0]
    layer = get_channel_layer()
    sent = []
    send = layer.send

    async def counted(channel, message):
        if message.get("type") == "dashboard.batch":
            sent.append(sorted(message["accounts"]))
        await send(channel, message)

    monkeypatch.setattr(layer, "send", counted)
    for n, meter_device in enumerate(devices):
        reading = {"type": "reading", "id": f"r-{n}", "ts": timezone.now().isoformat()}
        await meter_device.send_to(text_data=json.dumps(reading | {"quantity": "1"}))
        if n == 0:
            await meter_device.receive_nothing(timeout=0.1)  # its frame is with the batcher
            await frames_handed_on()
    for waiting in (devices[:1], devices[1:]):  # the blocker's batch, then the three's
        worker = await rate_next_frame()
        for meter_device in waiting:
            assert json.loads(await meter_device.receive_from(timeout=5))["type"] == "ack"
        worker.stop()
    for n, (watcher, (account, _, _)) in enumerate(zip(watchers, accounts, strict=True), 1):
        [charge], _ = await shown(watcher, 1)
        assert (charge["account"], charge["reading_ids"]) == (account.id, [f"r-{n}"])
        assert await watcher.receive_nothing(timeout=0.2)
    assert sent == [sorted(account.id for account, _, _ in accounts)]  # the blocker's: no one
    for communicator in (*watchers, *devices):
        await communicator.disconnect()
