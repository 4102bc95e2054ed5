"""Deliveries to a real receiver on 127.0.0.1 that verifies each request with the
standardwebhooks library: retries under the same webhook-id, order per endpoint, the
schedule given up and the endpoint disabled, what is never sent."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from billing.models import Event
from billing.outbox import event_record
from project.metrics import WEBHOOK_DELIVERED, WEBHOOK_FAILED
from tests.factories import make_account
from tests.webhooks.conftest import deliver_all, endpoint_for
from webhooks.delivery import endpoint_deliver
from webhooks.fanout import events_fan_out
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

OFFLINE = Event.Type.METER_OFFLINE
ALERT = Event.Type.ALERT_TRIGGERED


def offline_event(account, meter: str = "mtr_1") -> Event:
    return event_record(
        type=OFFLINE,
        account_id=account.id,
        data={"account": account.id, "meter": meter, "reason": "disconnected"},
        live=False,
    )


def attempts_of(event: Event) -> list[tuple[int, int | None, bool]]:
    return [
        (attempt.number, attempt.status_code, attempt.delivered_at is not None)
        for attempt in WebhookAttempt.objects.filter(delivery__event=event).order_by("number")
    ]


def test_retried_under_the_same_webhook_id_until_one_success(receiver):
    hooks = receiver(answers=[500, 500, 503, 200])
    endpoint_for(hooks, [OFFLINE])
    event = offline_event(make_account())
    delivered, failed = WEBHOOK_DELIVERED._value.get(), WEBHOOK_FAILED._value.get()

    assert deliver_all() == 4

    assert [r.status for r in hooks.received] == [500, 500, 503, 200]
    assert {r.webhook_id for r in hooks.received} == {event.public_id}
    assert all(r.verified for r in hooks.received)
    assert len({r.headers["webhook-timestamp"] for r in hooks.received}) >= 1
    payload = hooks.received[-1].payload
    assert payload["type"] == "meter.offline"
    assert payload["data"] == {
        "account": event.account_id,
        "meter": "mtr_1",
        "reason": "disconnected",
    }
    assert payload["timestamp"].endswith("Z")
    assert attempts_of(event) == [(1, 500, False), (2, 500, False), (3, 503, False), (4, 200, True)]
    assert WebhookDelivery.objects.get(event=event).status == "delivered"
    assert WEBHOOK_DELIVERED._value.get() - delivered == 1
    assert WEBHOOK_FAILED._value.get() - failed == 3
    # Delivered is delivered: nothing is sent again.
    assert deliver_all() == 0
    assert len(hooks.delivered()) == 1


def test_each_endpoint_gets_its_events_in_committed_order(receiver):
    flaky = receiver(answers=[500, 500, 200])
    steady = receiver()
    endpoint_for(flaky, [OFFLINE])
    endpoint_for(steady, [OFFLINE, ALERT])
    account = make_account()
    events = [offline_event(account, meter=f"mtr_{n}") for n in range(5)]

    deliver_all()

    expected = [event.public_id for event in events]
    assert [r.webhook_id for r in flaky.delivered()] == expected
    assert [r.webhook_id for r in steady.delivered()] == expected
    # The first event's retries came before anything of the second.
    assert [r.webhook_id for r in flaky.received][:3] == [expected[0]] * 3


def test_events_wait_behind_one_that_waits_for_its_retry(receiver, settings):
    settings.METERLINE_WEBHOOK_RETRY_SECONDS = [60, 60]
    hooks = receiver(answers=[500, 200])
    endpoint_for(hooks, [OFFLINE])
    account = make_account()
    first, second = offline_event(account), offline_event(account)

    deliver_all()
    assert [r.webhook_id for r in hooks.received] == [first.public_id]
    retry = WebhookDelivery.objects.get(event=first)
    assert timedelta(seconds=59) < retry.next_attempt_at - timezone.now() <= timedelta(seconds=60)

    deliver_all()  # not due yet: nothing goes out, not even the second event
    assert len(hooks.received) == 1

    # A minute later (the schedule is in the database: move it instead of waiting).
    WebhookDelivery.objects.filter(pk=retry.pk).update(next_attempt_at=timezone.now())
    deliver_all()
    assert [r.webhook_id for r in hooks.delivered()] == [first.public_id, second.public_id]


def test_given_up_after_the_schedule_and_the_endpoint_disabled_after_n_events(receiver):
    # Retries [0] * 5: six attempts an event; three events given up disable the endpoint.
    hooks = receiver(answers=[500])
    endpoint = endpoint_for(hooks, [OFFLINE])
    account = make_account()
    events = [offline_event(account) for _ in range(4)]

    deliver_all()

    assert len(hooks.received) == 3 * 6
    statuses = [WebhookDelivery.objects.get(event=event).status for event in events]
    assert statuses == ["failed", "failed", "failed", "pending"]
    endpoint.refresh_from_db()
    assert not endpoint.active
    assert endpoint.consecutive_failures == 3
    assert "3 events in a row failed after every retry" in endpoint.disabled_reason
    assert events[2].public_id in endpoint.disabled_reason
    assert "HTTP 500" in endpoint.disabled_reason
    # Disabled: the fourth is not tried, and new events get no delivery.
    offline_event(account)
    assert deliver_all() == 0
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 4


def test_a_success_between_failed_events_starts_the_count_again(receiver, settings):
    settings.METERLINE_WEBHOOK_RETRY_SECONDS = []  # one attempt, then given up
    hooks = receiver(answers=[500, 500, 200, 500, 500])
    endpoint = endpoint_for(hooks, [OFFLINE])
    account = make_account()
    for _ in range(5):
        offline_event(account)

    deliver_all()

    endpoint.refresh_from_db()
    assert (endpoint.active, endpoint.consecutive_failures) == (True, 2)


def test_an_event_queued_behind_a_day_of_retries_fails_at_its_first_attempt(receiver, settings):
    settings.METERLINE_WEBHOOK_RETRY_SECONDS = [60, 60]
    hooks = receiver(answers=[500])
    endpoint_for(hooks, [OFFLINE])
    event = offline_event(make_account())
    deliver_all()  # its first attempt
    delivery = WebhookDelivery.objects.get(event=event)
    # It has waited longer than the whole schedule (behind another, say).
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        scheduled_from=timezone.now() - timedelta(seconds=181), next_attempt_at=timezone.now()
    )

    deliver_all()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 2)


def test_a_timeout_and_a_refused_connection_are_retried(receiver, settings):
    settings.METERLINE_WEBHOOK_TIMEOUT_SECONDS = 1
    settings.METERLINE_WEBHOOK_RETRY_SECONDS = [60]
    slow = receiver(delay=2.5)
    endpoint_for(slow, [OFFLINE])
    gone = receiver()
    gone.stop()
    endpoint_for(gone, [OFFLINE], url=gone.url)
    event = offline_event(make_account())

    deliver_all()

    errors = dict(
        WebhookAttempt.objects.filter(delivery__event=event).values_list("endpoint__url", "error")
    )
    assert errors[slow.url] == "timed out after 1 s"
    assert errors[gone.url] == "connection refused"
    assert set(WebhookDelivery.objects.filter(event=event).values_list("status", "attempts")) == {
        ("pending", 1)
    }
    codes = WebhookAttempt.objects.filter(delivery__event=event).values_list(
        "status_code", flat=True
    )
    assert list(codes) == [None, None]


def test_a_redirect_is_an_answer_never_followed(receiver, settings):
    settings.METERLINE_WEBHOOK_RETRY_SECONDS = [60]
    target = receiver()
    redirecting = receiver(answers=[302], headers={"Location": target.url})
    endpoint_for(redirecting, [OFFLINE])
    event = offline_event(make_account())

    deliver_all()

    assert target.received == []
    [attempt] = WebhookAttempt.objects.filter(delivery__event=event)
    assert attempt.status_code == 302
    assert "not followed" in attempt.error and target.url in attempt.error
    assert WebhookDelivery.objects.get(event=event).status == "pending"


def test_a_rolled_back_event_is_never_sent(receiver):
    hooks = receiver()
    endpoint_for(hooks, [OFFLINE])
    account = make_account()
    with pytest.raises(RuntimeError), transaction.atomic():
        offline_event(account)
        raise RuntimeError("the charge failed")

    assert deliver_all() == 0
    assert hooks.received == []


def test_endpoints_get_their_types_of_every_account_from_their_creation_on(receiver):
    account, other = make_account(), make_account(name="Other")
    before = offline_event(account)
    hooks = receiver()
    alerts = receiver()
    endpoint_for(hooks, [OFFLINE])
    endpoint_for(alerts, [ALERT])
    disabled = receiver()
    WebhookEndpoint.objects.filter(pk=endpoint_for(disabled, [OFFLINE]).pk).update(active=False)
    after = [offline_event(account), offline_event(other)]

    deliver_all()

    assert [r.webhook_id for r in hooks.delivered()] == [e.public_id for e in after]
    assert before.public_id not in {r.webhook_id for r in hooks.received}
    assert alerts.received == [] and disabled.received == []


def test_a_run_keeps_one_connection_and_resends_once_on_one_the_receiver_hung_up(receiver):
    kept = receiver(keep_alive=True)
    hung_up = receiver(keep_alive=True, hang_up=True)
    endpoint_for(kept, [OFFLINE])
    endpoint_for(hung_up, [OFFLINE])
    account = make_account()
    events = [offline_event(account) for _ in range(4)]

    deliver_all()

    expected = [event.public_id for event in events]
    assert [r.webhook_id for r in kept.delivered()] == expected
    assert kept.connections == 1
    # Each answer closed its connection unannounced; each event still came exactly once.
    assert [r.webhook_id for r in hung_up.received] == expected
    assert hung_up.connections == 4
    assert set(WebhookAttempt.objects.values_list("number", flat=True)) == {1}


def test_only_the_holder_of_an_endpoints_lease_sends_to_it(receiver):
    hooks = receiver()
    endpoint = endpoint_for(hooks, [OFFLINE])
    offline_event(make_account())
    events_fan_out()
    # Another worker is sending to it (a process that died would hold it until it expires).
    later = timezone.now() + timedelta(seconds=30)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(lease_owner="other", lease_until=later)

    assert endpoint_deliver(endpoint_id=endpoint.id, owner="me") == 0
    assert hooks.received == []

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(lease_until=timezone.now())
    assert endpoint_deliver(endpoint_id=endpoint.id, owner="me") == 1
    assert len(hooks.delivered()) == 1
    endpoint.refresh_from_db()
    assert (endpoint.lease_owner, endpoint.lease_until) == ("", None)  # given back
