"""The rating service: one frame, one transaction, exactly once."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.events import events_publish
from billing.models import Account, Charge, MeterPeriodUsage
from metering.models import MeterTariff, Reading
from metering.parsing import ReadingIn
from metering.rating import FrameIn, frames_rate, readings_rate
from tests.factories import make_account, make_meter, make_tariff


def dashboard_messages(callbacks) -> list:
    """The dashboard messages the on-commit callbacks send: one per account published."""
    return [
        account_events
        for callback in callbacks
        if getattr(callback, "func", None) is events_publish
        for account_events in callback.args[0].values()
    ]


pytestmark = pytest.mark.django_db
D = Decimal


def delta(reading_id, quantity, ts=None):
    return ReadingIn(id=reading_id, ts=ts or timezone.now(), quantity=D(quantity))


def register(reading_id, value, ts):
    return ReadingIn(id=reading_id, ts=ts, value=D(value))


def charged(meter):
    return sum(Charge.objects.filter(meter=meter).values_list("amount", flat=True), D(0))


@pytest.fixture
def account():
    return make_account()


def test_a_resent_reading_is_never_charged_twice(account):
    meter, _ = make_meter(account, make_tariff())
    first = readings_rate(meter_id=meter.id, readings=[delta("r-1", "10")])
    again = readings_rate(meter_id=meter.id, readings=[delta("r-1", "10"), delta("r-2", "1")])
    assert (first.ids, first.duplicates) == (["r-1"], [])
    assert (again.ids, again.duplicates) == (["r-2"], ["r-1"])
    assert charged(meter) == D("3.300000")


def test_a_reading_twice_in_one_frame_counts_once(account):
    meter, _ = make_meter(account, make_tariff())
    result = readings_rate(meter_id=meter.id, readings=[delta("r-1", "10"), delta("r-1", "10")])
    assert (result.ids, result.duplicates) == (["r-1"], ["r-1"])
    assert Reading.objects.filter(meter=meter).count() == 1


def test_graduated_split_and_running_totals(account):
    meter, _ = make_meter(account, make_tariff("graduated"))
    readings_rate(meter_id=meter.id, readings=[delta("a", "90")])
    batch = frames_rate([FrameIn(meter.id, [delta("b", "20")])])
    assert Charge.objects.get(reading__reading_id="b").amount == D("5.500000")
    period = MeterPeriodUsage.objects.get(meter=meter)
    assert (period.usage, period.amount) == (D("110"), D("32.500000"))
    [event] = batch.events[account.id]
    assert event["meter_usage"] == "110"
    assert event["amount"] == "5.500000"
    assert event["period_total"] == "32.500000"


def test_period_total_counts_every_meter_of_the_account(account):
    tariff = make_tariff()
    first, _ = make_meter(account, tariff)
    second, _ = make_meter(account, tariff)
    readings_rate(meter_id=first.id, readings=[delta("a", "10")])
    batch = frames_rate([FrameIn(second.id, [delta("a", "1")])])
    [event] = batch.events[account.id]
    assert event["period_total"] == "3.300000"
    assert event["reading_ids"] == ["a"]


def test_dashboards_hear_only_after_commit(account, django_capture_on_commit_callbacks):
    meter, _ = make_meter(account, make_tariff())
    with django_capture_on_commit_callbacks() as callbacks:
        readings_rate(meter_id=meter.id, readings=[delta("a", "1")])
    assert len(dashboard_messages(callbacks)) == 1


def test_cumulative_baseline_increase_and_decrease(account):
    meter, _ = make_meter(account, make_tariff(), kind="cumulative")
    t0 = timezone.now() - timedelta(minutes=10)
    base = readings_rate(meter_id=meter.id, readings=[register("c0", "100", t0)])
    assert base.ids == ["c0"]
    readings_rate(meter_id=meter.id, readings=[register("c1", "110", t0 + timedelta(minutes=1))])
    down = readings_rate(
        meter_id=meter.id, readings=[register("c2", "105", t0 + timedelta(minutes=2))]
    )
    assert [(e.id, e.code) for e in down.errors] == [("c2", "register_decreased")]
    assert down.ids == []
    assert MeterPeriodUsage.objects.get(meter=meter).usage == D("10")
    assert charged(meter) == D("3.000000")


def test_cumulative_rollover(account):
    meter, _ = make_meter(account, make_tariff(), kind="cumulative", rollover_at=D("1000"))
    t0 = timezone.now() - timedelta(minutes=10)
    readings_rate(meter_id=meter.id, readings=[register("c0", "990", t0)])
    readings_rate(meter_id=meter.id, readings=[register("c1", "10", t0 + timedelta(minutes=1))])
    too_big = readings_rate(
        meter_id=meter.id, readings=[register("c2", "1000", t0 + timedelta(minutes=2))]
    )
    assert MeterPeriodUsage.objects.get(meter=meter).usage == D("20")
    assert [e.code for e in too_big.errors] == ["invalid_reading"]


def test_an_older_cumulative_register_adds_no_usage(account):
    meter, _ = make_meter(account, make_tariff(), kind="cumulative")
    t0 = timezone.now() - timedelta(minutes=10)
    readings_rate(meter_id=meter.id, readings=[register("c0", "100", t0)])
    readings_rate(meter_id=meter.id, readings=[register("c2", "120", t0 + timedelta(minutes=2))])
    late = readings_rate(
        meter_id=meter.id, readings=[register("c1", "110", t0 + timedelta(minutes=1))]
    )
    assert late.ids == ["c1"]
    assert MeterPeriodUsage.objects.get(meter=meter).usage == D("20")


def test_readings_rate_on_the_tariff_in_force_at_their_timestamp(account):
    created = timezone.now() - timedelta(days=1)
    meter, _ = make_meter(account, make_tariff(unit_price="1"), effective_from=created)
    change = created + timedelta(hours=12)
    MeterTariff.objects.create(
        meter=meter, tariff=make_tariff(unit_price="2"), effective_from=change
    )
    readings_rate(
        meter_id=meter.id,
        readings=[
            delta("before-creation", "1", created - timedelta(hours=1)),
            delta("old", "1", change - timedelta(seconds=1)),
            delta("new", "1", change),
        ],
    )
    amounts = dict(Charge.objects.values_list("reading__reading_id", "amount"))
    assert amounts == {"before-creation": D("1"), "old": D("1"), "new": D("2")}


def test_readings_land_in_the_period_of_their_timestamp_in_the_account_timezone(account):
    # Made before the reading, however long ago that is: older ones are refused (too_old).
    Account.objects.filter(pk=account.pk).update(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    meter, _ = make_meter(account, make_tariff(), effective_from=datetime(2026, 1, 1, tzinfo=UTC))
    # 23:30 UTC on 31 October is already November in Berlin.
    readings_rate(
        meter_id=meter.id, readings=[delta("nov", "1", datetime(2026, 10, 31, 23, 30, tzinfo=UTC))]
    )
    period = MeterPeriodUsage.objects.get(meter=meter)
    assert period.period_start == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)


def test_a_disabled_meter_records_nothing(account):
    meter, _ = make_meter(account, make_tariff())
    meter.active = False
    meter.save()
    result = readings_rate(meter_id=meter.id, readings=[delta("a", "1")])
    assert [e.code for e in result.errors] == ["meter_disabled"]
    assert not Reading.objects.exists()


def test_volume_tiers_charge_a_correction_when_usage_crosses_into_a_cheaper_tier(account):
    tiers = [{"up_to": "100", "unit_price": "0.30"}, {"up_to": None, "unit_price": "0.25"}]
    meter, _ = make_meter(account, make_tariff("volume", tiers=tiers))
    readings_rate(meter_id=meter.id, readings=[delta("a", "90")])
    batch = frames_rate([FrameIn(meter.id, [delta("b", "20")])])
    charge = Charge.objects.get(reading__reading_id="b")
    assert charge.amount == D("0.500000")  # 110 x 0.25 - 90 x 0.30
    assert [line["amount"] for line in charge.lines] == ["5.000000", "-4.500000"]
    assert batch.events[account.id][0]["period_total"] == "27.500000"


def test_time_of_use_prices_by_the_local_time_of_the_reading(account):
    bands = [
        {
            "name": "peak",
            "days": [0, 1, 2, 3, 4],
            "start": "07:00",
            "end": "22:00",
            "unit_price": "0.40",
        }
    ]
    tariff = make_tariff("time_of_use", bands=bands, default_unit_price="0.10")
    meter, _ = make_meter(account, tariff, effective_from=datetime(2026, 1, 1, tzinfo=UTC))
    readings_rate(
        meter_id=meter.id,
        readings=[
            delta("berlin-0700", "1", datetime(2026, 11, 23, 6, 0, tzinfo=UTC)),  # Monday 07:00 CET
            delta("berlin-0659", "1", datetime(2026, 11, 23, 5, 59, tzinfo=UTC)),
        ],
    )
    amounts = dict(Charge.objects.values_list("reading__reading_id", "amount"))
    assert amounts == {"berlin-0700": D("0.40"), "berlin-0659": D("0.10")}


def test_package_charges_when_a_package_opens(account):
    meter, _ = make_meter(account, make_tariff("package", package_size="10", package_price="5"))
    readings_rate(meter_id=meter.id, readings=[delta("a", "1"), delta("b", "9"), delta("c", "0.5")])
    amounts = dict(Charge.objects.values_list("reading__reading_id", "amount"))
    assert amounts == {"a": D(5), "b": D(0), "c": D(5)}


def test_the_lines_of_every_charge_add_up_to_it(account):
    meter, _ = make_meter(account, make_tariff("graduated"))
    readings_rate(meter_id=meter.id, readings=[delta(str(i), "33.333") for i in range(6)])
    for charge in Charge.objects.all():
        assert sum(D(line["amount"]) for line in charge.lines) == charge.amount
    period = MeterPeriodUsage.objects.get(meter=meter)
    assert period.amount == sum(Charge.objects.values_list("amount", flat=True))


def test_running_usage_beyond_sqlites_15_digits_stays_exact(account):
    meter, _ = make_meter(account, make_tariff(unit_price="0.000000000001"))
    big = "123456789012.123456789"  # 21 significant digits
    readings_rate(meter_id=meter.id, readings=[delta("a", big), delta("b", "0.000000001")])
    period = MeterPeriodUsage.objects.get(meter=meter)
    assert period.usage == D("123456789012.123456790")
    assert period.exact_amount == D("0.123456789012123456790")
    assert Reading.objects.get(reading_id="a").quantity == D(big)


def test_a_batch_rates_frames_of_several_meters_and_accounts_in_one_go(
    account, django_capture_on_commit_callbacks
):
    tariff = make_tariff()
    first, _ = make_meter(account, tariff)
    second, _ = make_meter(account, tariff)
    elsewhere, _ = make_meter(make_account(), tariff)
    readings_rate(meter_id=first.id, readings=[delta("old", "1")])
    with django_capture_on_commit_callbacks(execute=False) as published:
        batch = frames_rate(
            [
                FrameIn(first.id, [delta("old", "1"), delta("a", "10")]),
                FrameIn(second.id, [delta("a", "2")]),
                FrameIn("mtr_unknown", [delta("z", "1")]),
                FrameIn(first.id, [delta("a", "10"), delta("b", "1")]),  # "a" resent meanwhile
                FrameIn(elsewhere.id, [delta("a", "4")]),
            ]
        )
    outcome = [(r.ids, r.duplicates, [e.code for e in r.errors]) for r in batch.frames]
    assert outcome == [
        (["a"], ["old"], []),
        (["a"], [], []),
        ([], [], ["meter_unknown"]),
        (["b"], ["a"], []),
        (["a"], [], []),
    ]
    assert charged(first) == D("3.600000")  # 12 units at 0.30
    # One event per meter and period, numbered on from the account's last one.
    mine = batch.events[account.id]
    assert [(e["meter"], e["reading_ids"], e["seq"]) for e in mine] == [
        (first.id, ["a", "b"], 2),
        (second.id, ["a"], 3),
    ]
    assert [e["period_total"] for e in mine] == ["4.200000", "4.200000"]  # 14 units
    assert [e["seq"] for e in batch.events[elsewhere.account_id]] == [1]
    # The caller publishes, once committed: one message per account.
    assert dashboard_messages(published) == []
    assert set(batch.events) == {account.id, elsewhere.account_id}
