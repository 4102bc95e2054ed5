"""Sending an endpoint's deliveries: in event order, one in flight, under the endpoint's lease.

A process delivers to an endpoint only while it holds the endpoint's lease
(`lease_owner`, `lease_until`: taken by one conditional UPDATE, renewed as it goes), so
there is one request in flight per endpoint whichever worker runs it. It is a row field,
not a row lock held in a transaction, so that each attempt commits on its own, at once:
a receiver's 2xx is recorded before the next request goes out, and a crash loses the
record of the one attempt in flight at most (its receiver then sees that event again:
at least once, deduped on `webhook-id`). A dead process keeps its leases until they
expire (LEASE); then the sweeper hands the endpoint to whoever takes it.

The head of an endpoint's queue is its pending delivery with the lowest event id; while
the head waits for a retry, those behind it wait too (events in committed order). A run
reads the queue BATCH deliveries at a time and sends them over one kept-alive connection
(webhooks/sending.py's Courier).
"""

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from billing.models import Event
from billing.periods import isoformat
from project.metrics import WEBHOOK_DELIVERED, WEBHOOK_FAILED
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.schedule import retry_delay
from webhooks.sealing import secret_unseal
from webhooks.sending import Answer, Courier
from webhooks.signing import webhook_headers

logger = logging.getLogger(__name__)

# At least three times as long as one attempt may take (METERLINE_WEBHOOK_TIMEOUT_SECONDS),
# renewed before an attempt once a third of it has passed.
LEASE = timedelta(seconds=30)
# Deliveries read from an endpoint's queue at once, then sent in order while each succeeds.
BATCH = 20


def endpoint_deliver(
    *,
    endpoint_id: str,
    owner: str,
    stop: threading.Event | None = None,
    more: Callable[[], bool] | None = None,
) -> int:
    """Send the endpoint's due deliveries in order, unless another holds its lease;
    returns the attempts made. `stop` set: finish the attempt in hand, start no other.
    `more()` true once the queue is empty: new deliveries came meanwhile (the fan-out of
    this process said so), so the queue is read again, the lease kept."""
    attempts = 0
    while _lease_take(endpoint_id=endpoint_id, owner=owner):
        try:
            attempts += _due_send(endpoint_id=endpoint_id, owner=owner, stop=stop)
            while more is not None and more() and not (stop is not None and stop.is_set()):
                attempts += _due_send(endpoint_id=endpoint_id, owner=owner, stop=stop)
        finally:
            _lease_release(endpoint_id=endpoint_id, owner=owner)
        # A fan-out that found the lease taken left its new deliveries to the holder,
        # which may have looked for them just before they committed: look once more.
        if (stop is not None and stop.is_set()) or not endpoint_due(endpoint_id, limit=1):
            break
    return attempts


def _due_send(*, endpoint_id: str, owner: str, stop: threading.Event | None) -> int:
    attempts = 0
    renewed = time.monotonic()
    courier = Courier(
        timeout=settings.METERLINE_WEBHOOK_TIMEOUT_SECONDS,
        allow_private=settings.METERLINE_WEBHOOK_ALLOW_PRIVATE,
    )
    try:
        while batch := endpoint_due(endpoint_id, owner=owner):
            for delivery in batch:
                if stop is not None and stop.is_set():
                    return attempts
                if time.monotonic() - renewed > _lease().total_seconds() / 3:
                    if not _lease_take(endpoint_id=endpoint_id, owner=owner):
                        return attempts
                    renewed = time.monotonic()
                attempts += 1
                # Not delivered: retried later, given up, maybe the endpoint disabled: the
                # queue is read again.
                if not delivery_attempt(delivery=delivery, courier=courier).delivered:
                    break
    finally:
        courier.close()
    return attempts


def endpoint_due(
    endpoint_id: str, *, owner: str | None = None, limit: int = BATCH
) -> list[WebhookDelivery]:
    """The endpoint's next deliveries in event order, as many as are due now (up to
    `limit`); none while it is disabled, or leased to another than `owner` (if given)."""
    queue = list(
        WebhookDelivery.objects.select_related("event", "endpoint")
        .filter(endpoint_id=endpoint_id, status=WebhookDelivery.Status.PENDING)
        .order_by("event_id")[:limit]
    )
    if not queue or not queue[0].endpoint.active:
        return []
    if owner is not None and queue[0].endpoint.lease_owner != owner:
        return []
    now = timezone.now()
    return list(itertools.takewhile(lambda delivery: delivery.next_attempt_at <= now, queue))


def _lease_take(*, endpoint_id: str, owner: str) -> bool:
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_owner=owner)
    taken = WebhookEndpoint.objects.filter(free, pk=endpoint_id, active=True).update(
        lease_owner=owner, lease_until=now + _lease()
    )
    return bool(taken)


def _lease() -> timedelta:
    return max(LEASE, 3 * timedelta(seconds=settings.METERLINE_WEBHOOK_TIMEOUT_SECONDS))


def _lease_release(*, endpoint_id: str, owner: str) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint_id, lease_owner=owner).update(
        lease_owner="", lease_until=None
    )


def envelope_body(event: Event) -> bytes:
    """The POST body: the same bytes on every attempt (the signature covers them)."""
    envelope = {"type": event.type, "timestamp": isoformat(event.created_at), "data": event.data}
    return json.dumps(envelope, separators=(",", ":")).encode()


def signing_secrets(endpoint: WebhookEndpoint, *, at: datetime) -> list[str]:
    """The endpoint's secret, and the one it replaced while that still signs."""
    secrets = [secret_unseal(endpoint.secret_sealed)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_sealed and expires is not None and at < expires:
        secrets.append(secret_unseal(endpoint.previous_secret_sealed))
    return secrets


def delivery_attempt(*, delivery: WebhookDelivery, courier: Courier) -> Answer:
    """POST the delivery's event once, signed, and record what came of it."""
    endpoint, event = delivery.endpoint, delivery.event
    body = envelope_body(event)
    started = timezone.now()
    headers = webhook_headers(
        secrets=signing_secrets(endpoint, at=started),
        msg_id=event.public_id,
        timestamp=int(started.timestamp()),
        body=body,
    )
    clock = time.perf_counter()
    answer = courier.post(url=endpoint.url, headers=headers, body=body)
    duration_ms = round((time.perf_counter() - clock) * 1000)
    attempt_record(delivery=delivery, answer=answer, attempted_at=started, duration_ms=duration_ms)
    return answer


def attempt_record(
    *, delivery: WebhookDelivery, answer: Answer, attempted_at: datetime, duration_ms: int
) -> None:
    """One attempt's outcome, committed: the attempt, the delivery's state, the endpoint's run."""
    now = timezone.now()
    number = delivery.attempts + 1
    changes, gave_up = _delivery_changes(delivery=delivery, answer=answer, number=number, at=now)
    with transaction.atomic():
        # Gone (its endpoint deleted meanwhile): nothing left to record.
        if not WebhookDelivery.objects.filter(
            pk=delivery.pk, status=WebhookDelivery.Status.PENDING
        ).update(attempts=number, **changes):
            return
        WebhookAttempt.objects.create(
            delivery=delivery,
            endpoint_id=delivery.endpoint_id,
            number=number,
            attempted_at=attempted_at,
            status_code=answer.status_code,
            error=answer.error,
            duration_ms=duration_ms,
            delivered_at=now if answer.delivered else None,
        )
        _endpoint_run(delivery=delivery, answer=answer, gave_up=gave_up, at=now)
    (WEBHOOK_DELIVERED if answer.delivered else WEBHOOK_FAILED).inc()


def _delivery_changes(
    *, delivery: WebhookDelivery, answer: Answer, number: int, at: datetime
) -> tuple[dict, bool]:
    """The delivery's new fields after its attempt `number`, and whether it was given up."""
    if answer.delivered:
        delivered = {"status": WebhookDelivery.Status.DELIVERED, "delivered_at": at}
        return {**delivered, "next_attempt_at": None}, False
    delay = retry_delay(
        failed_attempts=number,
        waited=at - delivery.scheduled_from,
        schedule=settings.METERLINE_WEBHOOK_RETRY_SECONDS,
    )
    if delay is None:
        return {"status": WebhookDelivery.Status.FAILED, "next_attempt_at": None}, True
    return {"next_attempt_at": at + delay}, False


def _endpoint_run(
    *, delivery: WebhookDelivery, answer: Answer, gave_up: bool, at: datetime
) -> None:
    """Count the events given up on in a row; disable the endpoint at the limit."""
    endpoints = WebhookEndpoint.objects.filter(pk=delivery.endpoint_id)
    if answer.delivered:
        if delivery.endpoint.consecutive_failures:  # as read with the delivery
            endpoints.update(consecutive_failures=0)
        return
    if not gave_up:
        return
    endpoints.update(consecutive_failures=F("consecutive_failures") + 1)
    limit = settings.METERLINE_WEBHOOK_DISABLE_AFTER
    reason = (
        f"disabled at {isoformat(at)}: {limit} events in a row failed after every retry "
        f"(the last, {delivery.event.public_id}: {answer.error})"
    )
    if endpoints.filter(active=True, consecutive_failures__gte=limit).update(
        active=False, disabled_reason=reason
    ):
        logger.warning("webhook endpoint %s %s", delivery.endpoint_id, reason)
