"""Closing periods whatever the accounts hold (issue 14): long names, an account that
cannot close, cursors far back over empty periods, and the invoice.finalized event."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.api.serializers import InvoiceOut
from billing.invoicing import account_periods_close, periods_close_due
from billing.models import Account, Event, Invoice
from metering.models import Meter, MeterTariff
from metering.parsing import ReadingIn
from metering.rating import readings_rate
from project.metrics import PERIOD_CLOSE_FAILURES
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db
D = Decimal
OCTOBER = datetime(2026, 10, 15, 12, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)


def delta(reading_id, quantity, ts):
    return ReadingIn(id=reading_id, ts=ts, quantity=D(quantity))


def account_made(at: datetime, **fields) -> Account:
    account = make_account(timezone="UTC", **fields)
    Account.objects.filter(pk=account.pk).update(created_at=at)
    account.refresh_from_db()
    return account


def metered(account, *, created_at=None, **tariff) -> Meter:
    meter, _ = make_meter(account, make_tariff(**tariff), effective_from=account.created_at)
    if created_at is not None:
        Meter.objects.filter(pk=meter.pk).update(created_at=created_at)
        meter.refresh_from_db()
    return meter


def invoiced(account) -> list[datetime]:
    return list(
        Invoice.objects.filter(account=account)
        .order_by("period_start")
        .values_list("period_start", flat=True)
    )


def finalized_events(account) -> list[Event]:
    return list(
        Event.objects.filter(account=account, type=Event.Type.INVOICE_FINALIZED).order_by("id")
    )


# --- long names --------------------------------------------------------------------


def test_a_meter_and_tariff_with_200_character_names_close_into_an_invoice():
    account = account_made(datetime(2026, 10, 1, tzinfo=UTC))
    meter = metered(account, unit_price="1", fixed_fee="1", minimum="100")
    Meter.objects.filter(pk=meter.pk).update(name="m" * 200)
    tariff = MeterTariff.objects.get(meter=meter).tariff
    tariff.name, tariff.unit = "t" * 200, "u" * 32
    tariff.save()
    readings_rate(meter_id=meter.id, readings=[delta("a", "123456789.123456789", OCTOBER)])
    [invoice] = account_periods_close(account_id=account.id, until=NOVEMBER)
    descriptions = [line.description for line in invoice.lines.all()]
    assert len(descriptions) == 2  # usage and fixed fee; the usage passes the minimum
    assert all(d.startswith("m" * 200) and d.endswith(f"({'t' * 200})") for d in descriptions)
    assert max(map(len, descriptions)) > 300  # the length of the column it once had


# --- one account cannot stop the others ----------------------------------------------


def test_an_account_that_cannot_close_holds_up_no_other(caplog):
    made = datetime(2026, 10, 1, tzinfo=UTC)
    before, broken, after = (account_made(made, name=name) for name in ("a", "b", "c"))
    for account in (before, broken, after):
        meter = metered(account)
        readings_rate(meter_id=meter.id, readings=[delta("r", "1", OCTOBER)])
    # A meter left without any tariff: its account's close cannot price it and raises.
    MeterTariff.objects.filter(meter__account=broken).delete()
    failures = PERIOD_CLOSE_FAILURES._value.get()

    invoices = periods_close_due(now=NOVEMBER)

    assert sorted(invoice.account_id for invoice in invoices) == sorted([before.id, after.id])
    assert invoiced(broken) == [] and finalized_events(broken) == []
    broken.refresh_from_db()
    assert broken.closed_until is None  # rolled back: the next run tries it again
    assert PERIOD_CLOSE_FAILURES._value.get() == failures + 1
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.account == broken.id and broken.id in record.getMessage()
    assert record.exc_info is not None


# --- empty stretches close in one step -----------------------------------------------


def test_a_cursor_a_day_back_on_one_second_periods_catches_up_in_one_run(
    django_assert_max_num_queries,
):
    now = timezone.now().replace(microsecond=0)
    account = account_made(now - timedelta(hours=1), billing_period="PT1S")
    meter = metered(account, billing_period="PT1S")
    day_back, recent = now - timedelta(days=1), now - timedelta(minutes=1)
    readings_rate(meter_id=meter.id, readings=[delta("old", "1", day_back)])
    readings_rate(meter_id=meter.id, readings=[delta("recent", "2", recent)])

    # Two invoices and three empty stretches (before, between, after): a few queries
    # each (49 in all), where walking the 86,400 one-second periods took 7 a period.
    with django_assert_max_num_queries(60):
        invoices = periods_close_due(now=now)

    assert [invoice.period_start for invoice in invoices] == [day_back, recent]
    assert [invoice.total for invoice in invoices] == [D("0.30"), D("0.60")]
    account.refresh_from_db()
    assert account.closed_until == now
    assert periods_close_due(now=now) == []


def test_a_stretch_stops_where_a_meter_with_a_fee_or_minimum_begins():
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    account = account_made(hour - timedelta(hours=25), billing_period="PT1H")
    free = metered(account, billing_period="PT1H", created_at=account.created_at)
    readings_rate(meter_id=free.id, readings=[delta("r", "1", hour - timedelta(hours=24))])
    # A fixed fee from a meter made three hours ago, a minimum from a tariff changed to
    # two hours ago, and a disabled meter with a fee, which bills nothing.
    metered(account, billing_period="PT1H", fixed_fee="1", created_at=hour - timedelta(hours=3))
    changed = metered(account, billing_period="PT1H", created_at=account.created_at)
    MeterTariff.objects.create(
        meter=changed,
        tariff=make_tariff(billing_period="PT1H", minimum="5"),
        effective_from=hour - timedelta(hours=2, minutes=-5),
    )
    disabled = metered(account, billing_period="PT1H", fixed_fee="1")
    Meter.objects.filter(pk=disabled.pk).update(active=False, created_at=account.created_at)

    periods_close_due(now=hour)

    assert invoiced(account) == [hour - timedelta(hours=h) for h in (24, 3, 2, 1)]
    totals = Invoice.objects.filter(account=account).order_by("period_start")
    assert [invoice.total for invoice in totals] == [D("0.30"), D("1.00"), D("6.00"), D("6.00")]


def test_a_stretch_stops_before_the_open_period_when_it_is_closed_early():
    now = timezone.now()
    account = account_made(now - timedelta(days=2), billing_period="day")
    meter = metered(account, billing_period="day")
    readings_rate(meter_id=meter.id, readings=[delta("r", "1", now - timedelta(days=2))])
    invoices = account_periods_close(account_id=account.id, until=now, close_open=True)
    # The reading's day, then the open day cut short at `now`, invoiced though empty.
    assert [invoice.period_end for invoice in invoices][-1] == now
    assert len(invoices) == 2 and invoices[-1].total == D("0.00")


# --- invoice.finalized ---------------------------------------------------------------


def test_closing_records_one_invoice_finalized_event_per_invoice_as_the_api_shows_it():
    account = account_made(datetime(2026, 9, 1, tzinfo=UTC))
    meter = metered(account, unit_price="1", fixed_fee="2")
    readings_rate(
        meter_id=meter.id,
        readings=[delta("sep", "1", datetime(2026, 9, 15, tzinfo=UTC)), delta("oct", "3", OCTOBER)],
    )
    invoices = account_periods_close(account_id=account.id, until=NOVEMBER)
    events = finalized_events(account)
    assert len(invoices) == len(events) == 2
    assert [event.data for event in events] == [InvoiceOut(invoice).data for invoice in invoices]
    assert [event.data["total"] for event in events] == ["3.00", "5.00"]
    assert all(event.published_at is not None for event in events)  # nobody listens live
    account_periods_close(account_id=account.id, until=NOVEMBER)
    assert len(finalized_events(account)) == 2
