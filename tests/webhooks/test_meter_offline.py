"""meter.offline: written in the transaction that marks a meter offline, by a device's
disconnect or by the sweep of a dead web process, and only when it really went offline."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Event
from metering.connections import meter_connection_close, meter_connection_open
from metering.models import Meter, WebProcess
from metering.presence import connections_of_dead_processes_close, web_process_beat
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db(transaction=True)


def offline_events() -> list[dict]:
    return list(
        Event.objects.filter(type="meter.offline").order_by("id").values_list("data", flat=True)
    )


def test_a_disconnect_writes_meter_offline_once_and_a_replaced_connection_none():
    account = make_account()
    meter, _ = make_meter(account, make_tariff())
    meter_connection_open(meter_id=meter.id, channel_name="specific.a!1")
    meter_connection_open(meter_id=meter.id, channel_name="specific.a!2")  # the device came back

    assert not meter_connection_close(meter_id=meter.id, channel_name="specific.a!1")
    assert offline_events() == []
    assert meter_connection_close(meter_id=meter.id, channel_name="specific.a!2")
    assert not meter_connection_close(meter_id=meter.id, channel_name="specific.a!2")

    assert offline_events() == [
        {"account": account.id, "meter": meter.id, "reason": "disconnected"}
    ]
    event = Event.objects.get(type="meter.offline")
    assert event.account_id == account.id and event.published_at is not None  # nobody to tell live
    assert event.fanned_out_at is None  # for the webhooks


def test_the_sweep_of_a_dead_process_writes_meter_offline():
    account = make_account()
    meter, _ = make_meter(account, make_tariff())
    web_process_beat(process_id="host:1:dead")
    WebProcess.objects.filter(pk="host:1:dead").update(seen_at=timezone.now() - timedelta(60))
    Meter.objects.filter(pk=meter.pk).update(
        connection="specific.dead!1", connection_process="host:1:dead"
    )

    assert connections_of_dead_processes_close() == [meter.id]

    assert offline_events() == [
        {"account": account.id, "meter": meter.id, "reason": "process_lost"}
    ]
