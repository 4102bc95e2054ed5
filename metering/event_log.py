"""The log of each account's numbered charge events, so that no dashboard misses a charge.

The channel layer delivers at most once. A rating batch therefore writes the events
it numbers into the database in its own transaction (one row per account and batch,
COPY with its readings), and a dashboard that sees a gap in the numbers it cannot
fill from the channel reads the missing events here (metering/consumers/dashboards.py).
Rows older than METERLINE_DASHBOARD_EVENTS_KEEP_SECONDS are deleted by beat
(metering/tasks.py); a dashboard whose gap reaches back further takes a fresh
snapshot instead, as it would after a reconnect.
"""

from datetime import datetime
from typing import Any

from billing.bulk import rows_insert
from billing.models import Account
from metering.models import DashboardEventBatch

EVENT_BATCH_FIELDS = ("account_id", "first_seq", "last_seq", "events", "created_at")
# Events one catch-up reads at most; a dashboard further behind takes a snapshot.
MAX_CATCH_UP_EVENTS = 2000


def events_keep(*, events: dict[str, list[dict[str, Any]]], at: datetime) -> None:
    """Write a batch's numbered events, by account (inside the batch's transaction)."""
    rows = [
        (account_id, numbered[0]["seq"], numbered[-1]["seq"], numbered, at)
        for account_id, numbered in events.items()
        if numbered
    ]
    rows_insert(DashboardEventBatch, EVENT_BATCH_FIELDS, rows)


def account_events_between(*, account_id: str, after: int, upto: int) -> list[dict] | None:
    """The account's events numbered after `after` up to `upto`, in order; None when the
    log does not hold every one of them (pruned, or too many to catch up with)."""
    if upto <= after:
        return []
    if upto - after > MAX_CATCH_UP_EVENTS:
        return None
    batches = (
        DashboardEventBatch.objects.filter(
            account_id=account_id, last_seq__gt=after, first_seq__lte=upto
        )
        .order_by("last_seq")
        .values_list("events", flat=True)
    )
    events = [event for batch in batches for event in batch if after < event["seq"] <= upto]
    if [event["seq"] for event in events] != list(range(after + 1, upto + 1)):
        return None
    return events


def account_event_seqs(*, account_ids: set[str]) -> dict[str, int]:
    """Each account's latest committed event number (what its dashboards should have)."""
    return dict(Account.objects.filter(pk__in=account_ids).values_list("id", "event_seq"))


def event_log_prune(*, before: datetime) -> int:
    """Delete the events written before `before`; how many batches' rows went."""
    deleted, _ = DashboardEventBatch.objects.filter(created_at__lt=before).delete()
    return deleted
