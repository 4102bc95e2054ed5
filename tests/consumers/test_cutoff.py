"""Credit control at the sockets: the cut-off reaches every device of the account, devices
connecting while it lasts hear it at once, a credit restores them, dashboards see alerts
and the balance."""

import json
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from billing.credit_services import alert_create, credit_add
from billing.models import Account
from tests.consumers.conftest import dashboard, device, rate_next_frame
from tests.factories import make_account, make_dashboard_key, make_meter, make_tariff

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def prepaid(credit: str, cutoff_at: str = "0", meters: int = 2):
    """An account with `meters` meters at 1 a unit, credited, with a cut-off line."""
    account = make_account()
    tariff = make_tariff(unit_price="1")
    made = [make_meter(account, tariff) for _ in range(meters)]
    credit_add(account_id=account.id, amount=Decimal(credit), description="", idempotency_key="k")
    Account.objects.filter(pk=account.pk).update(cutoff_at=Decimal(cutoff_at))
    return account, made


def reading(reading_id: str, quantity: str) -> str:
    ts = timezone.now().isoformat()
    return json.dumps({"type": "reading", "id": reading_id, "ts": ts, "quantity": quantity})


async def received(client) -> dict:
    """The next message, past a dashboard's meter status changes."""
    while (message := json.loads(await client.receive_from(timeout=5)))["type"] == "meter_status":
        pass
    return message


async def rated(client, reading_id: str, quantity: str) -> dict:
    await client.send_to(text_data=reading(reading_id, quantity))
    worker = await rate_next_frame()
    ack = await received(client)
    worker.stop()
    return ack


async def test_the_charge_that_crosses_cuts_off_every_device_of_the_account():
    _, [(_, streaming), (_, idle)] = await prepaid("3")
    sender, other = device(streaming), device(idle)
    for client in (sender, other):
        assert (await client.connect())[0]
    assert (await rated(sender, "r-1", "2"))["ids"] == ["r-1"]
    assert await other.receive_nothing(timeout=0.2)
    ack = await rated(sender, "r-2", "2")  # 1 left, then -1: cut off
    assert ack["ids"] == ["r-2"]  # the energy was used: charged all the same
    cutoff = {"type": "cutoff", "reason": "balance_exhausted", "balance": "-1.000000"}
    assert await received(sender) == cutoff
    assert await received(other) == cutoff
    assert (await rated(sender, "r-3", "1"))["ids"] == ["r-3"]
    assert await other.receive_nothing(timeout=0.2)  # once, at the crossing
    for client in (sender, other):
        await client.disconnect()


async def test_a_device_connecting_while_cut_off_hears_it_then_a_credit_restores():
    account, [(_, token), _] = await prepaid("1")
    first = device(token)
    await first.connect()
    await rated(first, "r-1", "5")
    assert (await received(first))["type"] == "cutoff"
    await first.disconnect()
    later = device(token)
    assert (await later.connect())[0]
    assert await received(later) == {
        "type": "cutoff",
        "reason": "balance_exhausted",
        "balance": "-4.000000",
    }
    await database_sync_to_async(credit_add)(
        account_id=account.id, amount=Decimal("4"), description="", idempotency_key="k2"
    )
    assert await later.receive_nothing(timeout=0.2)  # 0 is not above the line
    await database_sync_to_async(credit_add)(
        account_id=account.id, amount=Decimal("0.000001"), description="", idempotency_key="k3"
    )
    assert await received(later) == {"type": "restore"}
    await later.disconnect()


async def test_dashboards_see_alerts_and_the_balance_counting_down():
    account, [(meter, token), _] = await prepaid("10", cutoff_at="-100")
    await database_sync_to_async(alert_create)(
        account=account, kind="spend_above", threshold=Decimal("3"), meter_id=meter.id
    )
    watcher = dashboard(account.id, await database_sync_to_async(make_dashboard_key)(account))
    assert (await watcher.connect())[0]
    assert (await received(watcher))["type"] == "snapshot"
    sender = device(token)
    await sender.connect()
    await sender.send_to(text_data=reading("r-1", "4"))
    worker = await rate_next_frame()  # it tells the dashboards after the ack: keep it running
    assert (await received(sender))["ids"] == ["r-1"]
    charge = await received(watcher)
    assert (charge["type"], charge["balance"]) == ("charge", "6.000000")
    alert = await received(watcher)
    assert {k: alert[k] for k in ("type", "kind", "threshold", "value", "meter")} == {
        "type": "alert",
        "kind": "spend_above",
        "threshold": "3",
        "value": "4.000000",
        "meter": meter.id,
    }
    assert alert["id"].startswith("evt_") and alert["alert"].startswith("alr_")
    worker.stop()
    await database_sync_to_async(credit_add)(
        account_id=account.id, amount=Decimal("1"), description="", idempotency_key="k2"
    )
    assert await received(watcher) == {"type": "balance", "balance": "7.000000", "cut_off": False}
    for client in (sender, watcher):
        await client.disconnect()
