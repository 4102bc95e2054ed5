"""Every pattern that checks a decimal, clock or period string matches the whole string:
`$` also matches before a final newline, so "1.5\n" once passed and was stored raw."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from billing.periods import billing_period_problem
from billing.tariffs import TariffError, parse_bands, parse_decimal
from metering.parsing import parse_frame

NOW = datetime(2026, 11, 23, 18, 30, tzinfo=UTC)
NOT_WHOLE = ["1.5\n", "1.5\r\n", " 1.5", "1.5 ", "\n1.5", "1.5\t"]
BAND = {"name": "peak", "days": [0], "start": "07:00", "end": "22:00", "unit_price": "0.40"}


def codes(quantity: str, kind: str = "delta") -> list[tuple[str, str]]:
    field = "quantity" if kind == "delta" else "value"
    message = {"type": "reading", "id": "r", "ts": "2026-11-23T18:30:00Z", field: quantity}
    frame = parse_frame(
        json.dumps(message),
        kind=kind,
        now=NOW,
        max_bytes=256 * 1024,
        max_batch=1000,
        max_future=timedelta(minutes=5),
    )
    return [(error.id, error.code) for error in frame.errors]


@pytest.mark.parametrize("raw", NOT_WHOLE)
@pytest.mark.parametrize("kind", ["delta", "cumulative"])
def test_a_quantity_or_register_with_anything_around_it_is_refused(raw, kind):
    assert codes(raw, kind) == [("r", "invalid_reading")]


@pytest.mark.parametrize("raw", NOT_WHOLE)
def test_a_tariff_decimal_with_anything_around_it_is_refused(raw):
    with pytest.raises(TariffError):
        parse_decimal(raw, "unit_price")


@pytest.mark.parametrize("clock", ["07:00\n", "07:00 ", " 07:00", "0\u0667:00"])
def test_a_band_clock_with_anything_around_it_is_refused(clock):
    with pytest.raises(TariffError) as caught:
        parse_bands([{**BAND, "start": clock}])
    assert caught.value.field == "bands[0].start"


@pytest.mark.parametrize("period", ["PT1S\n", "PT30S\r\n", " PT5M", "PT1\u0663S", "month\n"])
def test_a_billing_period_with_anything_around_it_is_refused(period):
    assert billing_period_problem(period) is not None


def test_the_whole_strings_still_pass():
    assert codes("1.5") == []
    assert parse_decimal("1.5", "unit_price") == parse_decimal("1.50", "unit_price")
    assert billing_period_problem("PT30S") is None
