"""Invoice CSVs opened in a spreadsheet: no cell is read as a formula, numbers stay numbers.

Meter and tariff names reach the lines' descriptions, and an operator's customers choose
some of them: a name such as `=HYPERLINK(...)` must arrive as text.
"""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.api.invoices import csv_cell
from billing.models import Invoice, InvoiceLine
from tests.factories import make_account, make_meter, make_tariff

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-", "'-"),
        ("-4.50", "-4.50"),  # a negative amount is a number, not a formula
        ("-0.000001", "-0.000001"),
        ("12.5", "12.5"),
        ("Kitchen: 12 kWh (Household)", "Kitchen: 12 kWh (Household)"),
        ("", ""),
    ],
)
def test_a_cell_that_a_spreadsheet_would_run_is_written_as_text(value, written):
    assert csv_cell(value) == written


def test_the_invoice_csv_escapes_names_and_keeps_negative_amounts(api):
    account = make_account()
    meter, _ = make_meter(account, make_tariff())
    invoice = Invoice.objects.create(
        account=account,
        period_start=START,
        period_end=END,
        currency="EUR",
        subtotal=Decimal("-4.50"),
        total=Decimal("-4.50"),
    )
    InvoiceLine.objects.create(
        invoice=invoice,
        position=0,
        kind=InvoiceLine.Kind.USAGE,
        meter=meter,
        description='=HYPERLINK("http://evil.example","refund"): 3 kWh (+volume)',
        quantity=Decimal("3"),
        amount=Decimal("-4.50"),
    )
    response = api.get(f"/api/v1/invoices/{invoice.id}/lines.csv")
    assert response.status_code == 200
    [row] = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert row["description"] == """'=HYPERLINK("http://evil.example","refund"): 3 kWh (+volume)"""
    assert (row["quantity"], row["amount"]) == ("3", "-4.50")
    assert row["invoice"] == invoice.id and row["meter"] == meter.id


def test_swagger_ui_does_not_keep_the_operator_key_in_the_browser(client):
    page = client.get("/api/docs/").content.decode()
    assert '"deepLinking": true' in page  # the page carries the settings, as JSON
    assert '"persistAuthorization": true' not in page
