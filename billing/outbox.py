"""The outbox: events written in the transaction that decided them, told once it commits.

`event_record` adds an event to the current transaction. After the commit, whoever
wrote it tells the live listeners (dashboards, device connections) and calls
`events_told`; webhook deliveries are made from the events by the webhooks app
(`fanned_out_at`). A sweeper tells what a dead process left (`events_untold`): at
least once, each event carrying its `public_id` to dedupe on.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from billing.models import Event

# An event not told this long after it was written was left by a process that died.
UNTOLD_AFTER = timedelta(seconds=5)


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
    return Event.objects.create(
        type=type,
        account_id=account_id,
        data=data,
        created_at=at,
        published_at=None if live else at,
    )


def events_told(events: Iterable[Event]) -> None:
    """Mark events told to their live listeners (after the commit that wrote them)."""
    ids = [event.pk for event in events]
    if ids:
        Event.objects.filter(pk__in=ids, published_at__isnull=True).update(
            published_at=timezone.now()
        )


def events_untold(*, now: datetime | None = None, limit: int = 500) -> list[Event]:
    """Events written a while ago and never told: the sweeper's work, oldest first."""
    before = (now or timezone.now()) - UNTOLD_AFTER
    return list(
        Event.objects.filter(published_at__isnull=True, created_at__lt=before).order_by("id")[
            :limit
        ]
    )
