"""Every malformed frame or reading is refused with its code, charges nothing, and the
connection stays open for the next good reading."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from devtools.stack import Provisioned
from tests.integration.stack import (
    batch,
    connect_device,
    iso,
    reading,
    recv_json,
    send_json,
    ts_ago,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def meter(stack) -> Provisioned:
    return stack.provision(unit_price="1")


def good(rid: str) -> dict:
    return reading(rid, "1")


FRAME_ERRORS = {
    "invalid-json": ('{"type": "reading", "id": ', "invalid_json"),
    "not-json-at-all": ("hello", "invalid_json"),
    "array": (json.dumps([good("fa-1")]), "invalid_message"),
    "string": (json.dumps("reading"), "invalid_message"),
    "number": ("42", "invalid_message"),
    "unknown-type": (json.dumps({**good("fu-1"), "type": "hello"}), "invalid_message"),
    "no-type": (json.dumps({"id": "fn-1", "ts": ts_ago(0), "quantity": "1"}), "invalid_message"),
    "batch-without-list": (json.dumps({"type": "batch", "readings": "r-1"}), "invalid_message"),
    "frame-over-256kib": (
        json.dumps({**good("fl-1"), "note": "x" * (260 * 1024)}),
        "too_large",
    ),
    "batch-over-1000": (
        json.dumps(batch(reading(f"fb-{i}", "1") for i in range(1001))),
        "too_large",
    ),
}


@pytest.mark.parametrize("case", FRAME_ERRORS)
async def test_bad_frame_is_refused_whole(stack, meter, case):
    text, code = FRAME_ERRORS[case]
    before = stack.charges(meter.account)
    async with connect_device(stack, meter.token) as ws:
        await ws.send(text)
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["id"] is None
        assert error["code"] == code
        assert isinstance(error.get("detail"), str)

        follow_up = good(f"after-{case}")
        await send_json(ws, follow_up)
        ack = await recv_json(ws)
        assert ack["type"] == "ack" and ack["ids"] == [follow_up["id"]]
    after = stack.charges(meter.account)
    assert {c["reading_id"] for c in after} - {c["reading_id"] for c in before} == {follow_up["id"]}


def _in_future(minutes: float) -> str:
    return iso(datetime.now(UTC) + timedelta(minutes=minutes))


READING_ERRORS = {
    # name: (reading fields replacing the good ones, expected code, id the error names)
    "float-quantity": ({"id": "e-float", "quantity": 1.5}, "invalid_reading", "e-float"),
    "negative-quantity": ({"id": "e-neg", "quantity": "-1"}, "invalid_reading", "e-neg"),
    "nan-quantity": ({"id": "e-nan", "quantity": "NaN"}, "invalid_reading", "e-nan"),
    "infinite-quantity": ({"id": "e-inf", "quantity": "Infinity"}, "invalid_reading", "e-inf"),
    "text-quantity": ({"id": "e-txt", "quantity": "lots"}, "invalid_reading", "e-txt"),
    "missing-quantity": ({"id": "e-noq", "quantity": None}, "invalid_reading", "e-noq"),
    "missing-ts": ({"id": "e-nots", "ts": None}, "invalid_reading", "e-nots"),
    "naive-ts": ({"id": "e-naive", "ts": "2026-11-23T18:30:00"}, "invalid_reading", "e-naive"),
    "garbage-ts": ({"id": "e-badts", "ts": "yesterday"}, "invalid_reading", "e-badts"),
    "empty-id": ({"id": ""}, "invalid_reading", None),
    "id-65-chars": ({"id": "x" * 65}, "invalid_reading", None),
    "id-not-a-string": ({"id": 17}, "invalid_reading", None),
    # A callable: computed when the test runs, not at collection.
    "future-ts": ({"id": "e-future", "ts": lambda: _in_future(10)}, "future_timestamp", "e-future"),
}


def _bad_reading(fields: dict) -> dict:
    message = good("placeholder")
    for key, value in fields.items():
        if value is None:
            message.pop(key, None)
        elif callable(value):
            message[key] = value()
        else:
            message[key] = value
    return message


async def _expect_reading_error(ws, code: str, rid: str | None) -> None:
    error = await recv_json(ws)
    assert error["type"] == "error", error
    assert error["code"] == code, error
    if rid is not None:
        assert error["id"] == rid, error
    assert isinstance(error.get("detail"), str)


@pytest.mark.parametrize("case", READING_ERRORS)
async def test_bad_reading_is_refused_and_the_connection_stays_open(stack, meter, case):
    fields, code, rid = READING_ERRORS[case]
    bad = _bad_reading(fields)
    before = stack.charges(meter.account)
    async with connect_device(stack, meter.token) as ws:
        await send_json(ws, bad)
        await _expect_reading_error(ws, code, rid)

        follow_up = good(f"after-{case}")
        await send_json(ws, follow_up)
        ack = await recv_json(ws)
        assert ack["type"] == "ack" and ack["ids"] == [follow_up["id"]]
    after = stack.charges(meter.account)
    assert {c["reading_id"] for c in after} - {c["reading_id"] for c in before} == {follow_up["id"]}


async def test_bad_readings_in_a_batch_are_refused_in_one_message(stack, meter):
    before = stack.charges(meter.account)
    readings = [
        good("mb-ok-1"),
        _bad_reading({"id": "mb-neg", "quantity": "-3"}),
        _bad_reading({"id": "mb-naive", "ts": "2026-11-23T18:30:00"}),
        _bad_reading({"id": "mb-future", "ts": _in_future(30)}),
        good("mb-ok-2"),
    ]
    async with connect_device(stack, meter.token) as ws:
        await send_json(ws, batch(readings))
        replies = [await recv_json(ws) for _ in range(2)]
    [refused] = [r for r in replies if r["type"] == "error"]
    errors = {e["id"]: e["code"] for e in refused["errors"]}
    assert (refused["id"], refused["code"]) == ("mb-neg", "invalid_reading")  # the first
    acks = [r for r in replies if r["type"] == "ack"]
    assert errors == {
        "mb-neg": "invalid_reading",
        "mb-naive": "invalid_reading",
        "mb-future": "future_timestamp",
    }
    assert len(acks) == 1
    assert sorted(acks[0]["ids"]) == ["mb-ok-1", "mb-ok-2"]
    after = stack.charges(meter.account)
    assert {c["reading_id"] for c in after} - {c["reading_id"] for c in before} == {
        "mb-ok-1",
        "mb-ok-2",
    }


async def test_a_batch_of_exactly_1000_is_accepted(stack):
    p = stack.provision(unit_price="0.001")
    async with connect_device(stack, p.token) as ws:
        await send_json(ws, batch(reading(f"k-{i}", "1") for i in range(1000)))
        ack = await recv_json(ws, timeout=90)
    assert ack["type"] == "ack" and len(set(ack["ids"])) == 1000
    assert stack.usage(p.account)["total"] == "1.000000"


async def test_late_reading_within_the_period_is_accepted(stack):
    p = stack.provision(unit_price="1")
    async with connect_device(stack, p.token) as ws:
        await send_json(ws, reading("late-1", "1", ts=ts_ago(60)))
        ack = await recv_json(ws)
    assert ack["type"] == "ack" and ack["ids"] == ["late-1"]
    assert stack.usage(p.account)["total"] == "1.000000"
