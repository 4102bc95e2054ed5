"""The dashboards' event log (metering/event_log.py): what a rating batch numbers is kept in
its transaction, read back by number, and pruned by age."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from metering import event_log
from metering.event_log import account_events_between, event_log_prune
from metering.models import DashboardEventBatch
from metering.rating import FrameIn, frames_rate
from metering.tasks import prune_event_log
from protocol import ReadingIn
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db


def batch_of(meters, prefix):
    now = timezone.now()
    return [
        FrameIn(meter.id, [ReadingIn(id=f"{prefix}-{n}", ts=now, quantity=Decimal(n + 1))])
        for n, meter in enumerate(meters)
    ]


@pytest.fixture
def meters():
    account, tariff = make_account(), make_tariff()
    return [make_meter(account, tariff)[0] for _ in range(3)]


def test_every_numbered_event_is_kept_as_it_was_sent(meters):
    account_id = meters[0].account_id
    sent = []
    for prefix in ("a", "b", "c"):
        sent += frames_rate(batch_of(meters, prefix)).events[account_id]
    assert [event["seq"] for event in sent] == list(range(1, 10))
    assert account_events_between(account_id=account_id, after=0, upto=9) == sent
    assert account_events_between(account_id=account_id, after=2, upto=7) == sent[2:7]
    assert account_events_between(account_id=account_id, after=9, upto=9) == []
    assert DashboardEventBatch.objects.count() == 3  # one row per account and batch


def test_events_of_other_accounts_and_beyond_the_log_are_not_given(meters, monkeypatch):
    account_id = meters[0].account_id
    other = make_meter(make_account(), make_tariff())[0]
    frames_rate(batch_of(meters, "a"))
    frames_rate(batch_of([other], "o"))
    assert account_events_between(account_id=other.account_id, after=0, upto=1)[0]["meter"] == (
        other.id
    )
    assert account_events_between(account_id=account_id, after=0, upto=4) is None  # not yet
    monkeypatch.setattr(event_log, "MAX_CATCH_UP_EVENTS", 2)
    assert account_events_between(account_id=account_id, after=0, upto=3) is None  # too many
    assert len(account_events_between(account_id=account_id, after=1, upto=3)) == 2


def test_old_events_are_pruned_and_then_no_longer_given(meters, settings):
    account_id = meters[0].account_id
    frames_rate(batch_of(meters, "old"))
    DashboardEventBatch.objects.update(created_at=timezone.now() - timedelta(hours=1))
    frames_rate(batch_of(meters, "new"))
    settings.METERLINE_DASHBOARD_EVENTS_KEEP_SECONDS = 900
    assert prune_event_log() == 1
    assert account_events_between(account_id=account_id, after=0, upto=6) is None
    assert [e["seq"] for e in account_events_between(account_id=account_id, after=3, upto=6)] == [
        4,
        5,
        6,
    ]
    assert event_log_prune(before=timezone.now() + timedelta(seconds=1)) == 1
