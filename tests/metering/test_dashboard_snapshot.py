"""The dashboard's snapshot on PostgreSQL: it waits for no lock rating holds, and its totals
count exactly the events up to its `seq`, even when a charge commits while it reads."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

import metering.dashboard
from billing.models import Account
from metering.dashboard import account_snapshot
from metering.parsing import ReadingIn
from metering.rating import readings_rate
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 10  # seconds a helper thread waits for the test before giving up


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes its writers: a snapshot waits for the one writing")


def charge(meter_id: str, reading_id: str, quantity: str = "1") -> None:
    reading = ReadingIn(id=reading_id, ts=timezone.now(), quantity=Decimal(quantity))
    assert readings_rate(meter_id=meter_id, readings=[reading]).ids == [reading_id]


def in_thread(work) -> threading.Thread:
    """`work` on a connection of its own (Django's connections are per thread)."""

    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_snapshot_does_not_wait_for_the_accounts_lock():
    account = make_account()
    meter, _ = make_meter(account, make_tariff(unit_price="0.5"))
    charge(meter.id, "r-1", "4")
    locked, release, released = threading.Event(), threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        # What rating and period closing do first: the account's row lock, held a while.
        with transaction.atomic():
            Account.objects.select_for_update().get(pk=account.pk)
            locked.set()
            release.wait(WAIT)
        released.set()

    holder = in_thread(hold_the_lock)
    assert locked.wait(WAIT)
    try:
        snapshot = account_snapshot(account_id=account.id)
        assert not released.is_set(), "the snapshot waited until the lock was let go"
    finally:
        release.set()
        holder.join(WAIT)
    assert (snapshot["seq"], snapshot["total"]) == (1, "2.000000")
    assert snapshot["meters"][0]["usage"] == "4"


def test_a_charge_committed_while_the_snapshot_reads_is_after_its_seq(monkeypatch):
    account = make_account()
    meter, _ = make_meter(account, make_tariff(unit_price="0.5"))
    charge(meter.id, "r-1", "4")
    read_totals = metering.dashboard.account_usage

    def charge_then_read_totals(**kwargs):
        # Between the snapshot's read of `seq` and of the totals, a charge commits.
        other = in_thread(lambda: charge(meter.id, "r-2", "6"))
        other.join(WAIT)
        assert not other.is_alive(), "the charge waited for the snapshot"
        return read_totals(**kwargs)

    monkeypatch.setattr(metering.dashboard, "account_usage", charge_then_read_totals)
    snapshot = account_snapshot(account_id=account.id)
    # It counts event 1 and not event 2, whose charge event will follow it.
    assert (snapshot["seq"], snapshot["total"], snapshot["meters"][0]["usage"]) == (
        1,
        "2.000000",
        "4",
    )
    monkeypatch.undo()
    after = account_snapshot(account_id=account.id)
    assert (after["seq"], after["total"], after["meters"][0]["usage"]) == (2, "5.000000", "10")
