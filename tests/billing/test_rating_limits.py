"""What rating refuses to keep billing sound: a period usage beyond its column, and
readings dated long before their account existed (issue 14)."""

from datetime import timedelta
from decimal import Decimal, localcontext

import pytest
from django.test import override_settings
from django.utils import timezone

from billing.models import Charge, MeterPeriodUsage
from billing.pricing import EXACT
from metering.models import Reading
from metering.parsing import ReadingIn
from metering.rating import FrameIn, frames_rate, readings_rate
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db
D = Decimal
# MeterPeriodUsage.usage is numeric(30, 9): 21 digits before the point.
USAGE_LIMIT = D(10) ** 21


def delta(reading_id, quantity, ts=None):
    return ReadingIn(id=reading_id, ts=ts or timezone.now(), quantity=D(quantity))


def outcome(result):
    return result.ids, result.duplicates, [(e.id, e.code) for e in result.errors]


@pytest.fixture
def account():
    return make_account()


def near_the_limit(account, margin: Decimal):
    """A meter whose open period's usage is `margin` below the column's limit."""
    meter, _ = make_meter(account, make_tariff(unit_price="0.30"))
    readings_rate(meter_id=meter.id, readings=[delta("start", "1")])
    with localcontext(EXACT):  # the default 28 digits would round these
        usage = USAGE_LIMIT - margin
        amount = usage * D("0.30")
    MeterPeriodUsage.objects.filter(meter=meter).update(
        usage=usage, exact_amount=amount, amount=amount.quantize(D("0.000001"))
    )
    return meter


def test_the_reading_that_would_overflow_period_usage_alone_is_refused(account):
    meter = near_the_limit(account, D(10))
    other, _ = make_meter(account, make_tariff())
    batch = [
        FrameIn(meter.id, [delta("a", "4"), delta("over", "7"), delta("b", "5")]),
        FrameIn(other.id, [delta("x", "1")]),
    ]
    first = frames_rate(batch)
    assert outcome(first.frames[0]) == (["a", "b"], [], [("over", "usage_limit")])
    assert outcome(first.frames[1]) == (["x"], [], [])
    period = MeterPeriodUsage.objects.get(meter=meter)
    assert period.usage == USAGE_LIMIT - 1
    assert not Reading.objects.filter(meter=meter, reading_id="over").exists()
    charged = Charge.objects.filter(meter=meter).values_list("reading__reading_id", flat=True)
    assert sorted(charged) == ["a", "b", "start"]
    # Resent whole, the batch rates again (no error rolls it back): the same answers.
    again = frames_rate(batch)
    assert outcome(again.frames[0]) == ([], ["a", "b"], [("over", "usage_limit")])
    assert outcome(again.frames[1]) == ([], ["x"], [])


def test_usage_up_to_the_last_unit_below_the_limit_is_charged(account):
    meter = near_the_limit(account, D("0.000000002"))
    result = readings_rate(meter_id=meter.id, readings=[delta("last", "0.000000001")])
    assert outcome(result) == (["last"], [], [])
    with localcontext(EXACT):
        assert MeterPeriodUsage.objects.get(meter=meter).usage == USAGE_LIMIT - D("0.000000001")


def test_readings_older_than_the_buffer_before_the_account_are_refused(account):
    meter, _ = make_meter(account, make_tariff())
    oldest = account.created_at - timedelta(days=35)
    readings = [
        delta("too-old", "1", oldest - timedelta(microseconds=1)),
        delta("buffered", "1", oldest),
        delta("now", "1"),
    ]
    result = readings_rate(meter_id=meter.id, readings=readings)
    assert outcome(result) == (["buffered", "now"], [], [("too-old", "too_old")])
    assert not Reading.objects.filter(reading_id="too-old").exists()
    assert Charge.objects.filter(meter=meter).count() == 2


@override_settings(METERLINE_READING_MAX_AGE_DAYS=1)
def test_the_buffer_is_the_setting(account):
    meter, _ = make_meter(account, make_tariff())
    two_days = account.created_at - timedelta(days=2)
    result = readings_rate(meter_id=meter.id, readings=[delta("two-days", "1", two_days)])
    assert outcome(result) == ([], [], [("two-days", "too_old")])


def test_an_old_reading_cannot_move_the_first_invoice_back(account):
    """The rule's purpose: before an account's first close its invoicing starts at its
    earliest usage, so a reading from 2000 would have it walk 26 years of periods."""
    meter, _ = make_meter(account, make_tariff())
    year_2000 = timezone.now().replace(year=2000)
    result = readings_rate(meter_id=meter.id, readings=[delta("y2k", "1", year_2000)])
    assert outcome(result) == ([], [], [("y2k", "too_old")])
    assert not MeterPeriodUsage.objects.filter(period_start__year=2000).exists()


def test_http_ingest_refuses_them_too(client, account):
    meter, token = make_meter(account, make_tariff())
    old = (account.created_at - timedelta(days=36)).isoformat()
    body = {"readings": [{"id": "old", "ts": old, "quantity": "1"}]}
    response = client.post(
        f"/api/v1/meters/{meter.id}/readings/",
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert [(e["id"], e["code"]) for e in response.json()["errors"]] == [("old", "too_old")]
    assert not Charge.objects.filter(meter=meter).exists()
