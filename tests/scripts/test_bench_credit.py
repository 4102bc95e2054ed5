"""scripts/bench_credit.py's replay of credit control's rules (CONTRACT.md section 6).

The bench matches every alert and cut-off it hears to the crossing its replay says
was due, so the replay must be right: worked cases, and for any run of charges and
credits the same crossings as billing/credit.py's own rules, applied charge by charge.
"""

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from billing.credit import BALANCE_BELOW, AlertRule, Totals, Watch, credit_rearms, cut_off_state

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from bench_credit import crossings  # scripts/bench_credit.py

C = Decimal(100)
HALF = Decimal(50)
PERIOD = datetime(2026, 12, 1, tzinfo=UTC)


def test_a_prompt_top_up_rearms_the_alert_and_restores():
    due = crossings(charges=300, credited_after=[0, 103], credit=C, alert_at=HALF)
    # 100 - 50, 100 - 100; then 200 - 150 = 50 and 200 - 200 = 0: balance C/2 and 0 again.
    assert due.alerts == [(50, HALF), (150, HALF)]
    assert due.cutoffs == [(100, 0), (200, 0)]
    assert due.unarmed == 0


def test_a_late_top_up_restores_but_leaves_the_alert_unarmed():
    # Made after 160 charges: the balance is 40, not above the alert's 50.
    due = crossings(charges=300, credited_after=[0, 160], credit=C, alert_at=HALF)
    assert due.alerts == [(50, HALF)]
    assert due.cutoffs == [(100, 0), (200, 0)]
    assert due.unarmed == 1


def test_a_top_up_to_exactly_the_threshold_does_not_rearm():
    due = crossings(charges=300, credited_after=[0, 150], credit=C, alert_at=HALF)
    assert due.alerts == [(50, HALF)]
    assert due.unarmed == 1


def test_a_top_up_that_leaves_the_balance_at_or_below_zero_does_not_restore():
    due = crossings(charges=300, credited_after=[0, 200], credit=C, alert_at=HALF)
    assert due.cutoffs == [(100, 0)]  # -100 + 100 = 0: still cut off, no second crossing


def test_a_credit_before_any_charge_counts_from_the_start():
    due = crossings(charges=120, credited_after=[0, 0], credit=C, alert_at=C)
    assert due.alerts == [(100, C)]  # 200 - 100
    assert due.cutoffs == []


def billing_rules(*, charges: int, credited_after: list[int], credit: Decimal, alert_at: Decimal):
    """The same run through billing/credit.py: one Watch per charge (a batch of one), a
    credit re-arming and restoring as billing/credit_services.py does."""
    alert = AlertRule("alert", BALANCE_BELOW, alert_at)
    balance, cut_off = Decimal(0), False
    alerts, cutoffs = [], []
    later = sorted(credited_after)
    for number in range(1, charges + 1):
        while later and later[0] < number:
            later.pop(0)
            balance += credit
            alert.armed = alert.armed or credit_rearms(alert, balance=balance)
            cut_off = cut_off_state(balance=balance, cutoff_at=Decimal(0))
        watch = Watch(balance=balance, cutoff_at=Decimal(0), cut_off=cut_off, alerts=[alert])
        one = Decimal(1)
        watch.charged(meter_id="m", period_start=PERIOD, amount=one, usage=one, meter=Totals())
        balance, cut_off = watch.balance, watch.cut_off
        alerts += [(number, fired.value) for fired in watch.fired]
        if watch.cut_off_now:
            cutoffs.append((number, watch.cut_off_balance))
    return alerts, cutoffs


@given(
    charges=st.integers(min_value=0, max_value=400),
    top_ups=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    credit=st.sampled_from([Decimal(10), Decimal(100), Decimal("7.5")]),
)
def test_the_replay_agrees_with_the_billing_rules(charges, top_ups, credit):
    credited_after = [0, *sorted(min(n, charges) for n in top_ups)]
    due = crossings(
        charges=charges, credited_after=credited_after, credit=credit, alert_at=credit / 2
    )
    expected = billing_rules(
        charges=charges, credited_after=credited_after, credit=credit, alert_at=credit / 2
    )
    assert (due.alerts, due.cutoffs) == expected
