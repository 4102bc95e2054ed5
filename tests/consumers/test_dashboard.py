"""Who may watch an account's dashboard socket."""

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from billing.models import Account
from tests.consumers.conftest import closed_with, dashboard
from tests.factories import make_account, make_dashboard_key, make_operator_key

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def two_accounts_and_keys():
    mine, theirs = make_account(), make_account()
    return mine, theirs, make_dashboard_key(mine), make_dashboard_key(theirs), make_operator_key()


async def test_dashboard_refusals():
    mine, _, _, their_key, _ = await two_accounts_and_keys()
    assert await closed_with(dashboard(mine.id)) == 4401
    assert await closed_with(dashboard(mine.id, "dbk_not_a_key")) == 4401
    assert await closed_with(dashboard(mine.id, their_key)) == 4403
    assert await closed_with(dashboard("acc_missing", their_key)) == 4404


@pytest.mark.parametrize("whose", ["dashboard", "operator"])
async def test_dashboard_and_operator_keys_get_a_snapshot(whose):
    mine, _, my_key, _, operator_key = await two_accounts_and_keys()
    if whose == "dashboard":
        watcher = dashboard(mine.id, my_key)
    else:
        watcher = dashboard(mine.id, operator_key, via="header")
    assert (await watcher.connect())[0]
    snapshot = await watcher.receive_json_from()
    assert (snapshot["type"], snapshot["account"], snapshot["total"]) == (
        "snapshot",
        mine.id,
        "0.000000",
    )
    assert snapshot["currency"] == "EUR"
    await watcher.disconnect()


async def test_charge_events_are_released_in_sequence_and_snapshot_ones_dropped():
    mine, _, my_key, _, _ = await two_accounts_and_keys()
    watcher = dashboard(mine.id, my_key)
    await watcher.connect()
    assert (await watcher.receive_json_from())["seq"] == 0
    layer = get_channel_layer()

    async def publish(seq):
        event = {"type": "charge", "seq": seq, "amount": f"{seq}.000000"}
        await layer.group_send(
            f"account-{mine.id}", {"type": "dashboard.events", "events": [event]}
        )

    await publish(2)
    await publish(3)
    await publish(1)
    assert [(await watcher.receive_json_from())["seq"] for _ in range(3)] == [1, 2, 3]
    await publish(3)  # a repeat
    # Events 4 and 5 commit; 4's message is lost. After the patience, a fresh
    # snapshot counts both, and 5 is not shown twice.
    await database_sync_to_async(Account.objects.filter(pk=mine.pk).update)(event_seq=5)
    await publish(5)
    resync = await watcher.receive_json_from(timeout=3)
    assert (resync["type"], resync["seq"]) == ("snapshot", 5)
    assert await watcher.receive_nothing(timeout=0.3)
    await watcher.disconnect()


async def test_a_dashboard_dropped_from_its_group_rejoins_and_catches_up(monkeypatch):
    """A restarted Redis shard forgets the account's group: the dashboard rejoins it, and
    what committed while it was out comes as a fresh snapshot."""
    monkeypatch.setattr("metering.consumers.dashboards.GROUP_REFRESH_SECONDS", 0.2)
    mine, _, my_key, _, _ = await two_accounts_and_keys()
    watcher = dashboard(mine.id, my_key)
    await watcher.connect()
    assert (await watcher.receive_json_from())["seq"] == 0
    layer = get_channel_layer()
    layer.groups.pop(f"account-{mine.id}")  # the shard restart: the group is gone
    await database_sync_to_async(Account.objects.filter(pk=mine.pk).update)(event_seq=2)

    resync = await watcher.receive_json_from(timeout=3)
    assert (resync["type"], resync["seq"]) == ("snapshot", 2)
    event = {"type": "charge", "seq": 3, "amount": "3.000000"}
    await layer.group_send(f"account-{mine.id}", {"type": "dashboard.events", "events": [event]})
    assert (await watcher.receive_json_from(timeout=3))["seq"] == 3
    await watcher.disconnect()
