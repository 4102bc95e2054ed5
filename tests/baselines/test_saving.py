"""The baselines' ORM save (scripts/baselines/saving.py): priced as Meterline prices, once."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.models import Charge, MeterPeriodUsage
from metering.models import Reading
from scripts.baselines.saving import baseline_reading_save
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db

TS = datetime(2026, 11, 23, 18, 30, tzinfo=UTC)


def test_a_graduated_reading_is_split_over_its_tiers_and_the_period_adds_up():
    meter, _ = make_meter(make_account(), make_tariff("graduated"), effective_from=TS)
    for rid, quantity in (("r-1", "90"), ("r-2", "20")):
        saved = baseline_reading_save(
            meter_id=meter.id, reading_id=rid, ts=TS, quantity=Decimal(quantity)
        )
        assert saved is True
    charges = Charge.objects.filter(meter=meter).order_by("id")
    assert [c.amount for c in charges] == [Decimal("27.000000"), Decimal("5.500000")]
    assert [line["amount"] for line in charges[1].lines] == ["3.000000", "2.500000"]
    period = MeterPeriodUsage.objects.get(meter=meter)
    assert (period.usage, period.amount) == (Decimal(110), Decimal("32.500000"))


def test_a_reading_id_seen_before_is_not_charged_again():
    meter, _ = make_meter(make_account(), make_tariff(), effective_from=TS)
    first = baseline_reading_save(meter_id=meter.id, reading_id="r-1", ts=TS, quantity=Decimal(2))
    again = baseline_reading_save(meter_id=meter.id, reading_id="r-1", ts=TS, quantity=Decimal(2))
    assert (first, again) == (True, False)
    assert Reading.objects.filter(meter=meter).count() == 1
    assert Charge.objects.get(meter=meter).amount == Decimal("0.600000")
    assert MeterPeriodUsage.objects.get(meter=meter).usage == Decimal(2)
