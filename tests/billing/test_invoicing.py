"""Closing periods into invoices: lines, rounding, late readings, idempotence."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.invoicing import account_periods_close, periods_close_due
from billing.models import Charge, Invoice
from billing.tasks import close_due_periods
from metering.parsing import ReadingIn
from metering.rating import readings_rate
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db
D = Decimal
OCTOBER = datetime(2026, 10, 15, 12, tzinfo=UTC)


def delta(reading_id, quantity, ts):
    return ReadingIn(id=reading_id, ts=ts, quantity=D(quantity))


def lines_of(invoice):
    return [(line.kind, line.quantity, line.amount) for line in invoice.lines.all()]


def made_in_october(**fields):
    """An account made on 1 October 2026, so that its October readings are not too old."""
    account = make_account(timezone="UTC", **fields)
    account.created_at = datetime(2026, 10, 1, tzinfo=UTC)
    account.save()
    return account


@pytest.fixture
def account():
    return made_in_october()


def metered(account, **tariff):
    meter, _ = make_meter(
        account, make_tariff(**tariff), effective_from=datetime(2026, 1, 1, tzinfo=UTC)
    )
    return meter


def test_an_ended_month_becomes_one_invoice_rounded_to_cents(account):
    meter = metered(account, unit_price="0.333333")
    readings_rate(meter_id=meter.id, readings=[delta("a", "10", OCTOBER), delta("b", "5", OCTOBER)])
    [invoice] = account_periods_close(
        account_id=account.id, until=datetime(2026, 11, 2, tzinfo=UTC)
    )
    assert (invoice.period_start, invoice.period_end) == (
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2026, 11, 1, tzinfo=UTC),
    )
    assert lines_of(invoice) == [("usage", D(15), D("5.00"))]  # 4.999995 rounds half up
    assert (invoice.subtotal, invoice.total, invoice.status) == (D("5.00"), D("5.00"), "finalized")


def test_fixed_fee_and_minimum_top_up(account):
    meter = metered(account, unit_price="1", fixed_fee="9.90", minimum="20")
    readings_rate(meter_id=meter.id, readings=[delta("a", "12.345", OCTOBER)])
    [invoice] = account_periods_close(
        account_id=account.id, until=datetime(2026, 11, 2, tzinfo=UTC)
    )
    assert lines_of(invoice) == [
        ("usage", D("12.345"), D("12.35")),
        ("fixed_fee", D(1), D("9.90")),
        ("minimum", D(1), D("7.65")),  # usage line + top-up = exactly the minimum
    ]
    assert invoice.total == D("29.90")


@pytest.mark.parametrize(("currency", "total"), [("JPY", D("4")), ("KWD", D("3.704"))])
def test_invoices_round_to_the_currencys_minor_unit(currency, total):
    account = made_in_october(currency=currency)
    meter, _ = make_meter(
        account,
        make_tariff(currency=currency, unit_price="0.3703705"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    readings_rate(meter_id=meter.id, readings=[delta("a", "10", OCTOBER)])
    [invoice] = account_periods_close(
        account_id=account.id, until=datetime(2026, 11, 2, tzinfo=UTC)
    )
    assert invoice.total == total


def test_closing_twice_makes_one_invoice(account):
    meter = metered(account)
    readings_rate(meter_id=meter.id, readings=[delta("a", "1", OCTOBER)])
    until = datetime(2026, 11, 2, tzinfo=UTC)
    assert len(account_periods_close(account_id=account.id, until=until)) == 1
    assert account_periods_close(account_id=account.id, until=until) == []
    assert Invoice.objects.count() == 1


def test_a_late_reading_is_charged_in_the_open_period_and_the_invoice_stays(account):
    meter = metered(account)
    readings_rate(meter_id=meter.id, readings=[delta("a", "1", OCTOBER)])
    [invoice] = account_periods_close(account_id=account.id, until=timezone.now())
    before = lines_of(invoice)
    readings_rate(meter_id=meter.id, readings=[delta("late", "2", OCTOBER + timedelta(days=1))])
    late = Charge.objects.get(reading__reading_id="late")
    assert late.late is True
    assert late.period_start >= invoice.period_end
    assert lines_of(Invoice.objects.get(pk=invoice.pk)) == before


def test_empty_periods_are_closed_without_an_invoice(account):
    meter = metered(account)
    readings_rate(meter_id=meter.id, readings=[delta("a", "1", OCTOBER)])
    invoices = account_periods_close(account_id=account.id, until=datetime(2027, 2, 2, tzinfo=UTC))
    assert [i.period_start.month for i in invoices] == [10]
    account.refresh_from_db()
    assert account.closed_until == datetime(2027, 2, 1, tzinfo=UTC)


def test_closing_the_open_period_early_cuts_it_and_the_next_starts_there(account):
    meter = metered(account, unit_price="1")
    readings_rate(
        meter_id=meter.id, readings=[delta("a", "1", timezone.now() - timedelta(seconds=5))]
    )
    now = timezone.now()
    invoices = account_periods_close(account_id=account.id, until=now, close_open=True)
    assert invoices[-1].period_end == now and invoices[-1].total == D("1.00")
    readings_rate(meter_id=meter.id, readings=[delta("b", "1", timezone.now())])
    assert Charge.objects.get(reading__reading_id="b").period_start == now


def test_the_beat_task_closes_every_due_period(account):
    meter = metered(account)
    readings_rate(meter_id=meter.id, readings=[delta("a", "1", OCTOBER)])
    other = made_in_october()
    other_meter, _ = make_meter(
        other, make_tariff(), effective_from=datetime(2026, 1, 1, tzinfo=UTC)
    )
    readings_rate(meter_id=other_meter.id, readings=[delta("a", "1", OCTOBER)])
    assert close_due_periods() == 2
    assert periods_close_due() == []
