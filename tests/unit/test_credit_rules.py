"""Credit control's firing rules (billing/credit.py), charge by charge, with no database."""

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.credit import (
    BALANCE_BELOW,
    SPEND_ABOVE,
    USAGE_ABOVE,
    AlertRule,
    Totals,
    Watch,
    credit_rearms,
    cut_off_state,
)

NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
D = Decimal


def watch(*alerts: AlertRule, balance=None, cutoff_at=None, cut_off=False) -> Watch:
    return Watch(balance=balance, cutoff_at=cutoff_at, cut_off=cut_off, alerts=list(alerts))


def charge(w: Watch, amount: str, *, usage: str = "1", meter="m1", period=NOV) -> None:
    """A charge; the meter's totals are kept here, as the rating batch keeps its period rows."""
    totals = w.__dict__.setdefault("meter_rows", {}).setdefault((meter, period), Totals())
    totals.amount += D(amount)
    totals.usage += D(usage)
    w.charged(meter_id=meter, period_start=period, amount=D(amount), usage=D(usage), meter=totals)


def fired(w: Watch) -> list[tuple[str, Decimal]]:
    return [(f.alert.id, f.value) for f in w.fired]


def test_spend_fires_exactly_at_the_threshold_with_the_total_after_the_charge():
    w = watch(AlertRule("a", SPEND_ABOVE, D("10")))
    charge(w, "9.999999")
    assert fired(w) == []
    charge(w, "0.000001")
    assert fired(w) == [("a", D("10.000000"))]


def test_a_batch_that_crosses_twice_fires_once_per_period():
    """A volume tariff's repricing takes the total back under, then over again."""
    w = watch(AlertRule("a", SPEND_ABOVE, D("10")))
    charge(w, "12")
    charge(w, "-4")  # back under the threshold: does not re-arm
    charge(w, "5")
    assert fired(w) == [("a", D("12"))]


def test_a_new_period_fires_again():
    rule = AlertRule("a", SPEND_ABOVE, D("10"))
    w = watch(rule)
    charge(w, "11")
    charge(w, "11", period=DEC)
    assert [(f.alert.id, f.period_start) for f in w.fired] == [("a", NOV), ("a", DEC)]


def test_the_period_carries_over_batches_through_the_rule_state():
    rule = AlertRule("a", SPEND_ABOVE, D("10"), fired_period_start=NOV)  # fired in a batch before
    w = watch(rule)
    w.account_totals[NOV].amount = D("15")
    charge(w, "1")
    assert fired(w) == []


def test_late_readings_count_in_the_period_they_are_charged_to():
    """A late reading is charged in the open period: the caller passes that period."""
    w = watch(AlertRule("a", USAGE_ABOVE, D("3")))
    w.account_totals[DEC].usage = D("2")
    charge(w, "0.1", usage="1", period=DEC)
    assert [(f.value, f.period_start) for f in w.fired] == [(D("3"), DEC)]


def test_a_meter_alert_watches_only_its_meter():
    w = watch(AlertRule("a", USAGE_ABOVE, D("2"), meter_id="m2"))
    charge(w, "1", usage="5", meter="m1")
    assert fired(w) == []
    charge(w, "1", usage="2", meter="m2")
    assert fired(w) == [("a", D("2"))]


def test_balance_below_fires_once_until_a_credit_rearms_it():
    rule = AlertRule("b", BALANCE_BELOW, D("5"))
    w = watch(rule, balance=D("10"))
    charge(w, "5")
    charge(w, "1")
    assert fired(w) == [("b", D("5"))]
    assert not rule.armed
    assert not credit_rearms(rule, balance=D("5"))  # not above the threshold
    assert credit_rearms(rule, balance=D("5.000001"))


def test_no_balance_before_the_first_credit():
    w = watch(AlertRule("b", BALANCE_BELOW, D("100")), balance=None, cutoff_at=D("0"))
    charge(w, "1000")
    assert fired(w) == [] and not w.cut_off_now and w.consumed == 0


def test_cut_off_at_the_crossing_charge_once():
    w = watch(balance=D("1"), cutoff_at=D("0"))
    charge(w, "0.5")
    assert not w.cut_off_now
    charge(w, "0.5")
    assert w.cut_off_now and w.balance == 0 == w.cut_off_balance
    w.cut_off_now = False
    charge(w, "0.5")  # still cut off: not again
    assert not w.cut_off_now and w.balance == D("-0.5")


def test_an_account_already_cut_off_is_not_cut_off_again():
    w = watch(balance=D("-1"), cutoff_at=D("0"), cut_off=True)
    charge(w, "1")
    assert not w.cut_off_now


def test_cut_off_state():
    assert cut_off_state(balance=D("0"), cutoff_at=D("0"))
    assert not cut_off_state(balance=D("0.000001"), cutoff_at=D("0"))
    assert not cut_off_state(balance=D("-5"), cutoff_at=None)
    assert not cut_off_state(balance=None, cutoff_at=D("0"))


money = st.decimals(min_value=D("-5"), max_value=D("50"), places=6)


@given(st.lists(money, max_size=40), st.integers(min_value=1, max_value=5), money)
def test_the_balance_is_credited_minus_consumed_whatever_the_split(amounts, parts, credited):
    """Split the same charges into any number of batches: the same balance, to the last place."""
    balance, consumed = credited, D(0)
    size = max(1, len(amounts) // parts)
    for start in range(0, len(amounts), size):
        w = watch(balance=balance, cutoff_at=D("0"))
        for amount in amounts[start : start + size]:
            charge(w, str(amount))
        balance, consumed = w.balance, consumed + w.consumed
    assert balance == credited - consumed == credited - sum(amounts, D(0))


@given(st.lists(money, min_size=1, max_size=40), st.integers(min_value=1, max_value=5))
def test_spend_alerts_fire_at_the_same_charge_whatever_the_split(amounts, parts):
    def run(size: int) -> list[Decimal]:
        rule, totals, values = AlertRule("a", SPEND_ABOVE, D("20")), D(0), []
        for start in range(0, len(amounts), size):
            w = watch(rule)
            w.account_totals[NOV].amount = totals
            for amount in amounts[start : start + size]:
                charge(w, str(amount))
            totals = w.account_totals[NOV].amount
            values += [f.value for f in w.fired]
        return values

    assert run(len(amounts)) == run(max(1, len(amounts) // parts))
