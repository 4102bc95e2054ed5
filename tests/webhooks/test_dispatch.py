"""The Celery worker's delivery threads (webhooks/dispatch.py): a slow endpoint holds up
nobody else, and each endpoint has one request in flight however often it is kicked."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Event
from billing.outbox import event_record
from tests.factories import make_account
from tests.webhooks.conftest import endpoint_for
from webhooks.dispatch import (
    deliveries_pump,
    dispatch_stop,
    endpoints_due,
    endpoints_kick,
    pump_start,
)
from webhooks.fanout import events_fan_out
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def threads_stopped():
    yield
    dispatch_stop()


def held_until(released: threading.Event):
    def answer(received) -> int:
        assert released.wait(timeout=30), "never released"
        return 200

    return answer


def test_a_slow_endpoint_delays_no_other_and_gets_one_request_at_a_time(receiver):
    released = threading.Event()
    slow = receiver(answers=held_until(released))
    fast = receiver()
    endpoint = endpoint_for(slow, [Event.Type.METER_OFFLINE])
    endpoint_for(fast, [Event.Type.METER_OFFLINE])
    account = make_account()
    events = [
        event_record(type=Event.Type.METER_OFFLINE, account_id=account.id, data={}, live=False)
        for _ in range(3)
    ]

    deliveries_pump(sweep=False)
    for _ in range(5):  # the wake and the sweeper kick it again and again meanwhile
        deliveries_pump(sweep=True)
        endpoints_kick([endpoint.id])

    fast.wait_for(3)  # while the slow one still holds its first request
    assert slow.received == [] and slow.in_hand == 1
    released.set()
    slow.wait_for(3)
    expected = [event.public_id for event in events]
    assert [r.webhook_id for r in slow.received] == expected
    assert [r.webhook_id for r in fast.received] == expected
    assert slow.most_at_once == 1
    dispatch_stop()
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_the_sweep_finds_endpoints_with_something_due_and_no_live_lease(receiver):
    account = make_account()
    due, leased, disabled, waiting = (
        endpoint_for(receiver(), [Event.Type.METER_OFFLINE]) for _ in range(4)
    )
    event_record(type=Event.Type.METER_OFFLINE, account_id=account.id, data={}, live=False)
    events_fan_out()
    later = timezone.now() + timedelta(minutes=1)
    WebhookEndpoint.objects.filter(pk=leased.pk).update(lease_owner="other", lease_until=later)
    WebhookEndpoint.objects.filter(pk=disabled.pk).update(active=False)
    WebhookDelivery.objects.filter(endpoint=waiting).update(next_attempt_at=later)

    assert endpoints_due() == {due.id}


def test_the_worker_sweeps_on_its_own_whatever_celery_is_busy_with(receiver, settings):
    """No task runs here after pump_start: the process's own sweep delivers the event."""
    settings.METERLINE_WEBHOOK_SWEEP_SECONDS = 0.2
    hooks = receiver()
    endpoint_for(hooks, [Event.Type.METER_OFFLINE])
    pump_start()
    account = make_account()
    event = event_record(type=Event.Type.METER_OFFLINE, account_id=account.id, data={}, live=False)

    hooks.wait_for(1)

    assert [r.webhook_id for r in hooks.delivered()] == [event.public_id]
