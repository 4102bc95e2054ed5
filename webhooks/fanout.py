"""Fan-out: each committed outbox event becomes one delivery per endpoint that wants it.

Endpoints belong to the operator: each receives the events of every account whose type
it subscribed to, from its creation on, while it is active. Fan-out runs in the Celery
worker right after the event's commit (the wake in billing/outbox.py), and from the beat
sweeper for whatever a lost wake left behind.

Order: a fan-out takes the events not yet fanned out in id order and locks them (FOR
UPDATE), so a second one waits for those rows and then skips them: deliveries are never
made out of order. An account's events get ascending ids in commit order (written under
the account's lock), so a visible event has every earlier event of its account visible
too, and is fanned out in the same batch as them or after.
"""

from django.db import transaction
from django.utils import timezone

from billing.models import Event
from webhooks.models import WebhookDelivery, WebhookEndpoint

BATCH = 500


def events_fan_out(*, limit: int = BATCH) -> set[str]:
    """Fan out every committed event not fanned out yet; the endpoints given deliveries."""
    endpoint_ids: set[str] = set()
    while True:
        given, events = _batch_fan_out(limit)
        endpoint_ids |= given
        if events < limit:
            return endpoint_ids


def _batch_fan_out(limit: int) -> tuple[set[str], int]:
    now = timezone.now()
    with transaction.atomic():
        events = list(
            Event.objects.select_for_update()
            .filter(fanned_out_at__isnull=True)
            .order_by("id")
            .only("id", "type", "created_at")[:limit]
        )
        if not events:
            return set(), 0
        endpoints = list(
            WebhookEndpoint.objects.filter(active=True).only("id", "events", "created_at")
        )
        deliveries = [
            WebhookDelivery(
                endpoint_id=endpoint.id,
                event_id=event.id,
                next_attempt_at=now,
                scheduled_from=now,
                created_at=now,
            )
            for event in events
            for endpoint in endpoints
            if event.type in endpoint.events and endpoint.created_at <= event.created_at
        ]
        WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        Event.objects.filter(pk__in=[event.pk for event in events]).update(fanned_out_at=now)
    return {delivery.endpoint_id for delivery in deliveries}, len(events)
