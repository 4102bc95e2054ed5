"""Fuzzing the device protocol's parser alone: anything in, a ReadingIn or a ReadingError out."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering.parsing import ReadingError, ReadingIn, parse_frame
from tests.fuzz.strategies import (
    CONTRACT_CODES,
    FRAME_CODES,
    MAX_BATCH,
    MAX_FRAME_BYTES,
    MAX_FUTURE,
    frames,
    lenient_ids_unique,
    raw_frames,
)

NOW = datetime(2026, 11, 23, 18, 30, tzinfo=UTC)
FUZZ = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def parse(text, kind="delta"):
    return parse_frame(
        text,
        kind=kind,
        now=NOW,
        max_bytes=MAX_FRAME_BYTES,
        max_batch=MAX_BATCH,
        max_future=MAX_FUTURE,
    )


def assert_meets_the_contract(reading: ReadingIn, kind: str) -> None:
    assert isinstance(reading.id, str) and 1 <= len(reading.id) <= 64
    assert reading.ts.tzinfo is not None and reading.ts.utcoffset() is not None
    assert reading.ts <= NOW + MAX_FUTURE
    number = reading.quantity if kind == "delta" else reading.value
    other = reading.value if kind == "delta" else reading.quantity
    assert other is None
    assert isinstance(number, Decimal) and number.is_finite() and number >= 0
    assert -number.as_tuple().exponent <= 9
    assert len(str(int(number))) <= 21
    # What the channel layer carries must come back the same.
    assert ReadingIn.from_wire(reading.to_wire()) == reading


def assert_well_formed(error: ReadingError) -> None:
    assert error.code in CONTRACT_CODES
    assert isinstance(error.detail, str) and error.detail
    assert error.id is None or (isinstance(error.id, str) and 1 <= len(error.id) <= 64)


@FUZZ
@given(text=raw_frames, kind=st.sampled_from(["delta", "cumulative"]))
def test_any_frame_is_readings_or_reading_errors(text, kind):
    try:
        frame = parse(text, kind)
    except ReadingError as error:
        assert error.id is None and error.code in FRAME_CODES
        assert_well_formed(error)
        return
    for reading in frame.readings:
        assert_meets_the_contract(reading, kind)
    for error in frame.errors:
        assert_well_formed(error)
        assert error.code in {"invalid_reading", "future_timestamp"}


@FUZZ
@given(spec=frames("quantity"))
def test_near_valid_frames_get_the_oracles_verdict(spec):
    spec = lenient_ids_unique(spec)
    check_against_oracle(spec, "delta")


@FUZZ
@given(spec=frames("value"))
def test_cumulative_frames_get_the_oracles_verdict(spec):
    spec = lenient_ids_unique(spec)
    check_against_oracle(spec, "cumulative")


def check_against_oracle(spec, kind):
    text = spec.render(NOW)
    expected_error = spec.frame_error()
    try:
        frame = parse(text, kind)
    except ReadingError as error:
        assert (error.id, error.code) == (None, expected_error), text
        return
    assert expected_error is None, f"{text} should be refused as {expected_error}"
    readings, errors = list(frame.readings), list(frame.errors)
    for item in spec.readings():
        verdict, reading_id, codes = item.verdict()
        if verdict == "either":
            verdict = "refused" if errors and errors[0].id == reading_id else "accepted"
        if verdict == "refused":
            assert errors, f"{item} was not refused"
            error = errors.pop(0)
            assert (error.id, error.code in codes) == (reading_id, True), (item, error)
            continue
        assert readings, f"{item} was not accepted"
        reading = readings.pop(0)
        assert reading.id == reading_id
        assert (reading.quantity if kind == "delta" else reading.value) == item.amount.number
        assert_meets_the_contract(reading, kind)
    assert (readings, errors) == ([], [])


def test_the_future_limit_is_five_minutes_exactly():
    def at(delta):
        ts = (NOW + delta).isoformat()
        return parse(f'{{"type": "reading", "id": "t", "ts": "{ts}", "quantity": "1"}}')

    assert at(MAX_FUTURE).readings
    assert at(MAX_FUTURE + timedelta(microseconds=1)).errors[0].code == "future_timestamp"


DEEP = "[" * 50_000 + "]" * 50_000  # 100 KB: well under the 256 KiB frame limit


@pytest.mark.parametrize("frame", [DEEP, '{"type": "batch", "readings": ' + DEEP + "}"])
def test_deeply_nested_json_is_a_reading_error(frame):
    with pytest.raises(ReadingError) as refused:
        parse(frame)
    assert refused.value.code in {"invalid_json", "invalid_message", "too_large"}
