"""A meter held by a web process that stopped stamping its presence goes offline, and only then."""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from metering.connections import meter_connection_open
from metering.models import Meter, WebProcess
from metering.presence import PROCESS_ID, connections_of_dead_processes_close, web_process_beat
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db(transaction=True)


def _meters(count: int):
    account, tariff = make_account(), make_tariff()
    return account, [make_meter(account, tariff)[0] for _ in range(count)]


def _dashboard_channel(account_id: str) -> str:
    """A channel in the account's group: it hears what the dashboards hear."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(f"account-{account_id}", channel)
    return channel


def test_a_live_process_keeps_its_meters_online():
    _, (meter,) = _meters(1)
    meter_connection_open(meter_id=meter.id, channel_name="specific.a!1")
    assert connections_of_dead_processes_close() == []
    meter.refresh_from_db()
    assert (meter.connection, meter.connection_process) == ("specific.a!1", PROCESS_ID)


def test_meters_of_a_silent_process_go_offline_and_dashboards_hear_it():
    account, (dead_meter, live_meter) = _meters(2)
    web_process_beat(process_id="host:1:dead")
    WebProcess.objects.filter(pk="host:1:dead").update(seen_at=timezone.now() - timedelta(60))
    Meter.objects.filter(pk=dead_meter.pk).update(
        connection="specific.dead!1", connection_process="host:1:dead"
    )
    meter_connection_open(meter_id=live_meter.id, channel_name="specific.live!1")
    channel = _dashboard_channel(account.id)

    assert connections_of_dead_processes_close() == [dead_meter.id]

    assert Meter.objects.get(pk=dead_meter.pk).connection == ""
    assert Meter.objects.get(pk=live_meter.pk).connection == "specific.live!1"
    message = async_to_sync(get_channel_layer().receive)(channel)
    assert message["events"] == [{"type": "meter_status", "meter": dead_meter.id, "online": False}]
    # Swept once: a second sweep finds nothing more.
    assert connections_of_dead_processes_close() == []


def test_a_process_that_never_stamped_counts_as_dead():
    _, (meter,) = _meters(1)
    Meter.objects.filter(pk=meter.pk).update(connection="specific.x!1", connection_process="gone")
    assert connections_of_dead_processes_close() == [meter.id]


def test_a_reconnect_to_a_live_process_is_not_swept():
    """The device moved to a live process between the sweep's read and its update."""
    _, (meter,) = _meters(1)
    Meter.objects.filter(pk=meter.pk).update(connection="specific.old!1", connection_process="gone")
    meter_connection_open(meter_id=meter.id, channel_name="specific.new!1")
    assert connections_of_dead_processes_close() == []
    assert Meter.objects.get(pk=meter.pk).connection == "specific.new!1"
