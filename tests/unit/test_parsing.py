"""The device protocol's input checks, as pure functions."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from metering.parsing import ReadingError, ReadingIn, parse_frame

NOW = datetime(2026, 11, 23, 18, 30, tzinfo=UTC)
LIMITS = {"max_bytes": 256 * 1024, "max_batch": 1000, "max_future": timedelta(minutes=5)}


def parse(message, kind="delta"):
    text = message if isinstance(message, str) else json.dumps(message)
    return parse_frame(text, kind=kind, now=NOW, **LIMITS)


def reading(**fields):
    return {
        "type": "reading",
        "id": "r-1",
        "ts": "2026-11-23T18:30:00Z",
        "quantity": "0.125",
        **fields,
    }


def test_a_single_reading():
    frame = parse(reading())
    assert frame.errors == []
    assert frame.readings == [ReadingIn(id="r-1", ts=NOW, quantity=Decimal("0.125"))]


def test_a_batch_keeps_good_readings_and_reports_bad_ones():
    batch = {"type": "batch", "readings": [reading(id="a"), reading(id="b", quantity="-1")]}
    frame = parse(batch)
    assert [r.id for r in frame.readings] == ["a"]
    assert [(e.id, e.code) for e in frame.errors] == [("b", "invalid_reading")]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "invalid_json"),
        ('{"type": "reading", "quantity": NaN}', "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"type": "hello"}', "invalid_message"),
        ('{"type": "batch", "readings": {}}', "invalid_message"),
        (json.dumps({"type": "batch", "readings": [reading()] * 1001}), "too_large"),
        (json.dumps(reading(pad="x" * 300_000)), "too_large"),
    ],
)
def test_frame_errors_have_no_id(text, code):
    with pytest.raises(ReadingError) as caught:
        parse(text)
    assert (caught.value.id, caught.value.code) == (None, code)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"quantity": 0.125}, "invalid_reading"),
        ({"quantity": "-0.1"}, "invalid_reading"),
        ({"quantity": "Infinity"}, "invalid_reading"),
        ({"quantity": "sNaN"}, "invalid_reading"),
        ({"quantity": "1e400"}, "invalid_reading"),
        ({"quantity": "0.0000000001"}, "invalid_reading"),
        ({"quantity": None}, "invalid_reading"),
        ({"value": "1"}, "invalid_reading"),
        ({"ts": "2026-11-23T18:30:00"}, "invalid_reading"),
        ({"ts": "yesterday"}, "invalid_reading"),
        ({"ts": 1700000000}, "invalid_reading"),
        ({"ts": "2026-11-23T18:35:01Z"}, "future_timestamp"),
    ],
)
def test_reading_errors_name_the_reading(fields, code):
    frame = parse(reading(**fields))
    assert frame.readings == []
    assert [(e.id, e.code) for e in frame.errors] == [("r-1", code)]


def test_a_reading_five_minutes_ahead_is_still_accepted():
    assert parse(reading(ts="2026-11-23T18:35:00Z")).readings


@pytest.mark.parametrize("bad_id", ["", "x" * 65, 7, None])
def test_reading_ids_are_1_to_64_characters(bad_id):
    frame = parse(reading(id=bad_id))
    assert [(e.id, e.code) for e in frame.errors] == [(None, "invalid_reading")]


def test_cumulative_meters_take_values():
    frame = parse(reading(quantity=None) | {"value": "10452.375"}, kind="cumulative")
    assert frame.errors == []
    assert frame.readings[0].value == Decimal("10452.375")


@pytest.mark.parametrize(
    "quantity",
    [
        "1E+3",
        "+1",
        "-0",
        " 1",
        "1_000",
        "\u0661\u0662",
        "\uff11",
        ".5",
        "5.",
        "0x10",
        "1000000000000000",
    ],
)
def test_quantities_are_plain_ascii_decimals_below_10_to_the_15(quantity):
    assert [e.code for e in parse(reading(quantity=quantity)).errors] == ["invalid_reading"]


def test_the_largest_quantity_is_accepted():
    assert parse(reading(quantity="999999999999999.999999999")).readings


@pytest.mark.parametrize("bad_id", [r"a\u0000b", r"tab\there", r"\ud800"])
def test_ids_with_control_characters_or_lone_surrogates_are_refused(bad_id):
    text = json.dumps(reading()).replace('"r-1"', f'"{bad_id}"')
    assert [(e.id, e.code) for e in parse(text).errors] == [(None, "invalid_reading")]


def test_timestamps_before_2000_are_refused():
    frame = parse(reading(ts="0001-01-01T00:00:00Z"))
    assert [e.code for e in frame.errors] == ["invalid_reading"]


def test_deep_nesting_is_invalid_json_not_a_crash():
    with pytest.raises(ReadingError) as caught:
        parse("[" * 50000 + "]" * 50000)
    assert caught.value.code == "invalid_json"


def test_wire_format_round_trips_in_strings():
    original = ReadingIn(id="r", ts=NOW, quantity=Decimal("0.125"))
    wire = original.to_wire()
    assert all(isinstance(v, str) or v is None for v in wire.values())
    assert ReadingIn.from_wire(wire) == original
