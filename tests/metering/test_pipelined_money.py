"""Pipelined batches of one account (metering/batching.py) commit one at a time under the
account lock, in either order: money stays exact whatever that order, and the dashboard
events are numbered in the order the batches committed."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Charge, MeterPeriodUsage
from billing.pricing import rate, round6
from billing.tariffs import pricing_model
from metering.rating import FrameIn, frames_rate
from protocol import ReadingIn
from tests.factories import make_account, make_meter, make_tariff

D = Decimal
# A volume tariff: each charge depends on everything charged before it in the period.
TIERS = [{"up_to": "5", "unit_price": "0.30"}, {"up_to": None, "unit_price": "0.25"}]
quantities = st.decimals(min_value=0, max_value=4, places=3, allow_nan=False)


def price_of(total: Decimal) -> Decimal:
    """The tariff's price of a period's whole usage, rounded as a charge is."""
    model = pricing_model("volume", {"tiers": TIERS})
    priced = rate(
        model, usage_before=D(0), exact_before=D(0), quantity=total, local_time=timezone.now()
    )
    return round6(priced.exact_after)


def an_account_with_meters(count: int):
    account = make_account()
    tariff = make_tariff("volume", tiers=TIERS)
    return account, [make_meter(account, tariff)[0] for _ in range(count)]


def batches_of(meters, readings: list[tuple[int, Decimal]], cuts: int) -> list[list[FrameIn]]:
    """The readings (meter index, quantity) as frames of one reading, cut into batches."""
    now = timezone.now() - timedelta(minutes=1)
    frames = [
        FrameIn(meters[m].id, [ReadingIn(id=f"r-{n}", ts=now, quantity=quantity)])
        for n, (m, quantity) in enumerate(readings)
    ]
    size = max(1, len(frames) // cuts)
    return [frames[start : start + size] for start in range(0, len(frames), size)]


def assert_exact(account, meters, readings, batches: list[list[dict]]) -> None:
    """Each meter's charges add up to the price of its usage; the events number 1, 2, 3...
    and each carries the account's total after its batch, counting the batches before it."""
    for index, meter in enumerate(meters):
        usage = sum((q for m, q in readings if m == index), D(0))
        charged = sum(Charge.objects.filter(meter=meter).values_list("amount", flat=True), D(0))
        assert charged == price_of(usage)
        row = MeterPeriodUsage.objects.filter(meter=meter).first()
        assert (row.usage if row else D(0), row.amount if row else D(0)) == (usage, charged)
    committed = sorted((events for events in batches if events), key=lambda e: e[0]["seq"])
    seqs = [event["seq"] for events in committed for event in events]
    assert seqs == list(range(1, len(seqs) + 1))
    running = D(0)
    for events in committed:
        running += sum((D(event["amount"]) for event in events), D(0))
        assert {D(event["period_total"]) for event in events} == {running}
    account.refresh_from_db()
    assert account.event_seq == len(seqs)


@pytest.mark.django_db
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    readings=st.lists(st.tuples(st.integers(0, 1), quantities), min_size=1, max_size=12),
    cuts=st.integers(1, 4),
    order=st.randoms(use_true_random=False),
)
def test_batches_committing_in_any_order_charge_the_price_of_the_usage(readings, cuts, order):
    account, meters = an_account_with_meters(2)
    batches = batches_of(meters, readings, cuts)
    order.shuffle(batches)
    events = [frames_rate(batch).events.get(account.id, []) for batch in batches]
    assert_exact(account, meters, readings, events)


@pytest.mark.django_db(transaction=True)
def test_two_workers_rating_one_accounts_batches_at_once_stay_exact():
    """Two threads (two workers) rate batches of one account at the same moment, round
    after round: one waits for the other's account lock, neither deadlocks, nothing is
    lost, and the events number the commits."""
    account, meters = an_account_with_meters(3)
    readings = [(n % 3, D(n % 7) + D("0.125")) for n in range(240)]
    batches = batches_of(meters, readings, 40)  # 40 batches of 6 readings, in 20 rounds
    events: list[list[dict]] = []
    failures: list[BaseException] = []

    def worker(batch, start: threading.Barrier) -> None:
        try:
            start.wait(timeout=10)
            events.append(frames_rate(batch).events.get(account.id, []))
        except BaseException as error:  # reported below, in the test's thread
            failures.append(error)
        finally:
            connection.close()

    for first, second in zip(batches[::2], batches[1::2], strict=True):
        start = threading.Barrier(2)
        threads = [threading.Thread(target=worker, args=(b, start)) for b in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads), "a worker hangs"
        assert not failures, failures
    assert_exact(account, meters, readings, events)
