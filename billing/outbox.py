"""The outbox: events written in the transaction that decided them, told once it commits.

`event_record` adds an event to the current transaction. After the commit, whoever
wrote it tells the live listeners (dashboards, device connections) and calls
`events_told`; webhook deliveries are made from the events by the webhooks app
(`fanned_out_at`). A sweeper tells what a dead process left (`events_untold`): at
least once, each event carrying its `public_id` to dedupe on.

The commit also wakes the Celery worker, which makes and sends the webhook deliveries
at once (`webhooks_wake`, by task name: billing does not import the webhooks app). A
wake lost with its broker only costs latency: the beat sweeper fans out whatever is left.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.models import Event
from project.task_wake import task_wake

# An event not told this long after it was written was left by a process that died.
UNTOLD_AFTER = timedelta(seconds=5)
# The webhooks app's tasks: fan committed events out into deliveries and send them; and
# the sweeper's, which also sends whatever else is due.
FAN_OUT_TASK = "webhooks.fan_out"
SWEEP_TASK = "webhooks.sweep"


def event_record(
    *,
    type: str,
    account_id: str | None,
    data: dict[str, Any],
    at: datetime | None = None,
    live: bool = True,
) -> Event:
    """Write an event in the current transaction (it exists only if the transaction commits).

    `live=False`: nobody listens live (only webhooks), so there is nothing to tell.
    """
    at = at or timezone.now()
    event = Event.objects.create(
        type=type,
        account_id=account_id,
        data=data,
        created_at=at,
        published_at=None if live else at,
    )
    transaction.on_commit(webhooks_wake)
    return event


def webhooks_wake(task: str = FAN_OUT_TASK) -> None:
    """After a commit that wrote events: have the Celery worker deliver them now.

    Writers that bulk-create events call it after their commit (`events_told` does).
    Never blocks (project/task_wake.py); off with METERLINE_WEBHOOK_WAKE=0 (the unit tests,
    which have no broker).
    """
    if settings.METERLINE_WEBHOOK_WAKE:
        task_wake(task)


def events_told(events: Iterable[Event]) -> None:
    """Mark events told to their live listeners (after the commit that wrote them).

    It also wakes the webhooks: writers that bulk-create events (rating's credit control)
    call this after their commit, not event_record.
    """
    ids = [event.pk for event in events]
    if ids:
        Event.objects.filter(pk__in=ids, published_at__isnull=True).update(
            published_at=timezone.now()
        )
        webhooks_wake()


def events_untold(*, now: datetime | None = None, limit: int = 500) -> list[Event]:
    """Events written a while ago and never told: the sweeper's work, oldest first."""
    before = (now or timezone.now()) - UNTOLD_AFTER
    return list(
        Event.objects.filter(published_at__isnull=True, created_at__lt=before).order_by("id")[
            :limit
        ]
    )
