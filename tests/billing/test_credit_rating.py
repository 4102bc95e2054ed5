"""Credit control decided in the rating transaction: alerts, the balance, the cut-off."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.credit_services import account_cutoff_set, alert_create, credit_add
from billing.invoicing import account_periods_close
from billing.models import Account, Alert, Charge, Event
from metering.rating import FrameIn, frames_rate
from protocol import ReadingIn
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db
D = Decimal


def reading(rid: str, quantity: str, ts=None) -> ReadingIn:
    return ReadingIn(id=rid, ts=ts or timezone.now(), quantity=D(quantity))


def rate(meter, *quantities: str, prefix="r"):
    frame = [reading(f"{prefix}-{n}", q) for n, q in enumerate(quantities)]
    return frames_rate([FrameIn(meter.id, frame)])


def events(account, kind=None) -> list[Event]:
    found = Event.objects.filter(account=account).order_by("id")
    return list(found.filter(type=kind) if kind else found)


@pytest.fixture
def meter():
    meter, _ = make_meter(make_account(), make_tariff(unit_price="1"))
    return meter


def test_a_spend_alert_fires_once_at_the_crossing_charge(meter):
    alert = alert_create(
        account=meter.account, kind="spend_above", threshold=D("10"), meter_id=None
    )
    batch = rate(meter, "4", "4", "4", "4")  # 4, 8, 12 (crosses), 16
    fired = events(meter.account, "alert.triggered")
    assert [e.data["value"] for e in fired] == ["12.000000"]
    assert batch.outbox == fired
    rate(meter, "5", prefix="s")
    assert len(events(meter.account, "alert.triggered")) == 1
    alert.refresh_from_db()
    assert alert.last_fired_at is not None and alert.fired_period_start is not None


def test_alerts_of_a_meter_and_of_usage(meter):
    account = meter.account
    other, _ = make_meter(account, make_tariff(unit_price="1"))
    alert_create(account=account, kind="usage_above", threshold=D("3"), meter_id=other.id)
    alert_create(account=account, kind="usage_above", threshold=D("5"), meter_id=None)
    frames_rate(
        [
            FrameIn(meter.id, [reading("a", "4")]),
            FrameIn(other.id, [reading("b", "2")]),
            FrameIn(other.id, [reading("c", "1")]),
        ]
    )
    fired = {(e.data["meter"], e.data["value"]) for e in events(account, "alert.triggered")}
    assert fired == {(None, "6"), (other.id, "3")}


def test_the_queries_of_a_batch_do_not_grow_with_its_alerts():
    def queries(alerts: int) -> int:
        meter, _ = make_meter(make_account(), make_tariff(unit_price="1"))
        for n in range(alerts):
            alert_create(
                account=meter.account, kind="spend_above", threshold=D(n + 1), meter_id=None
            )
        credit_add(account_id=meter.account_id, amount=D(100), description="", idempotency_key="k")
        with CaptureQueriesContext(connection) as captured:
            rate(meter, "1", "1", "1")
        return len(captured)

    assert queries(1) == queries(30)


def test_every_charge_event_of_an_account_with_credits_carries_its_balance(meter):
    plain = rate(meter, "1")
    assert "balance" not in plain.events[meter.account_id][0]
    credit_add(account_id=meter.account_id, amount=D("10"), description="", idempotency_key="k")
    batch = rate(meter, "2", "1.5", prefix="s")
    assert batch.events[meter.account_id][0]["balance"] == "6.500000"
    account = Account.objects.get(pk=meter.account_id)
    assert (account.credited, account.consumed, account.balance) == (D(10), D("3.5"), D("6.5"))


def test_the_cut_off_at_the_charge_that_crosses_and_readings_still_charged(meter):
    credit_add(account_id=meter.account_id, amount=D("5"), description="", idempotency_key="k")
    Account.objects.filter(pk=meter.account_id).update(cutoff_at=D("0"))
    first = rate(meter, "2", "2")
    assert first.outbox == []
    crossing = rate(meter, "1", "3", prefix="s")  # 1 left: 0 (cut off at 0), then -3
    assert crossing.frames[0].ids == ["s-0", "s-1"]
    [depleted] = crossing.outbox
    assert depleted.type == "balance.depleted" and depleted.data["balance"] == "0.000000"
    later = rate(meter, "1", prefix="t")
    assert later.outbox == [] and later.frames[0].ids == ["t-0"]
    assert Account.objects.get(pk=meter.account_id).cut_off


def test_a_balance_alert_fires_again_only_after_a_credit_lifts_the_balance(meter):
    account_id = meter.account_id
    credit_add(account_id=account_id, amount=D("10"), description="", idempotency_key="k1")
    alert_create(account=meter.account, kind="balance_below", threshold=D("5"), meter_id=None)
    rate(meter, "6", prefix="a")
    rate(meter, "1", prefix="b")
    assert [e.data["value"] for e in events(meter.account, "alert.triggered")] == ["4.000000"]
    credit_add(account_id=account_id, amount=D("1"), description="", idempotency_key="k2")
    rate(meter, "1", prefix="c")  # 4 again: not re-armed (the credit left it at 4, not above 5)
    credit_add(account_id=account_id, amount=D("5"), description="", idempotency_key="k3")
    rate(meter, "5", prefix="d")  # 8, then 3: re-armed, fires
    values = [e.data["value"] for e in events(meter.account, "alert.triggered")]
    assert values == ["4.000000", "3.000000"]


def test_a_rolled_back_batch_decides_nothing(meter):
    alert_create(account=meter.account, kind="spend_above", threshold=D("1"), meter_id=None)
    credit_add(account_id=meter.account_id, amount=D("1"), description="", idempotency_key="k")
    Account.objects.filter(pk=meter.account_id).update(cutoff_at=D("0"))
    with pytest.raises(RuntimeError), transaction.atomic():
        batch = rate(meter, "5")
        assert {e.type for e in batch.outbox} == {"alert.triggered", "balance.depleted"}
        raise RuntimeError("the transaction fails after rating")
    assert events(meter.account) == []
    account = Account.objects.get(pk=meter.account_id)
    assert (account.consumed, account.cut_off) == (D(0), False)
    assert Alert.objects.get(account=account).last_fired_at is None


def test_a_spend_alert_fires_again_in_the_next_period(meter):
    account = meter.account
    alert_create(account=account, kind="spend_above", threshold=D("3"), meter_id=None)
    rate(meter, "5", prefix="a")
    account_periods_close(account_id=account.id, until=timezone.now(), close_open=True)
    rate(meter, "2", prefix="b")  # the new period: 2, under the threshold
    late = timezone.now() - timedelta(days=1)  # dated in the invoiced period: charged now, late
    frames_rate([FrameIn(meter.id, [reading("c", "2", ts=late)])])
    fired = events(account, "alert.triggered")
    assert [e.data["value"] for e in fired] == ["5.000000", "4.000000"]
    assert fired[0].data["period_start"] != fired[1].data["period_start"]


# Steps of an account's life: a credit of an amount, or a batch of readings of quantities.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("credit"), st.decimals(min_value=D("0.01"), max_value=D("80"), places=2)),
        st.tuples(
            st.just("batch"),
            st.lists(
                st.decimals(min_value=D("-3"), max_value=D("20"), places=3), min_size=1, max_size=5
            ),
        ),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=steps, price=st.sampled_from(["1", "0.37", "1.234567"]))
def test_the_balance_is_credited_minus_consumed_for_any_mix_of_credits_and_batches(steps, price):
    """On the database, through the rating transaction and the credit service: whatever the
    order of credits and batches, the balance is the credits less every charge rated since
    the first of them, to the last decimal (charges before it are postpaid usage)."""
    meter, _ = make_meter(make_account(), make_tariff(unit_price=price))
    account_cutoff_set(account_id=meter.account_id, cutoff_at=D("0"))
    for n, (kind, value) in enumerate(steps):
        if kind == "credit":
            credit_add(
                account_id=meter.account_id, amount=value, description="", idempotency_key=f"k{n}"
            )
        else:
            rate(meter, *(str(quantity) for quantity in value), prefix=f"b{n}")
    account = Account.objects.get(pk=meter.account_id)
    credited = sum((value for kind, value in steps if kind == "credit"), D(0))
    since = Charge.objects.filter(meter=meter)
    if account.credit_since is not None:
        since = since.filter(rated_at__gte=account.credit_since)
    else:
        since = since.none()
    consumed = sum(since.values_list("amount", flat=True), D(0))
    assert (account.credited, account.consumed) == (credited, consumed)
    assert account.balance == credited - consumed
