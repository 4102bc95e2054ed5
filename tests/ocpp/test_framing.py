"""OCPP-J frames read and written, and payloads checked against the OCPP 1.6 schemas."""

import json

import pytest
from hypothesis import given, settings

from metering.ocpp.framing import (
    BadCall,
    Call,
    CallError,
    CallResult,
    OcppError,
    Unanswerable,
    error_text,
    frame_parse,
    result_text,
)
from metering.ocpp.schemas import conforms, payload_check, timestamp_parse, validator
from tests.ocpp.strategies import VALID, json_values, mutated

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Wallbox"}


def test_a_call_a_result_and_an_error_are_read():
    assert frame_parse(json.dumps([2, "a1", "BootNotification", BOOT])) == Call(
        "a1", "BootNotification", BOOT
    )
    assert frame_parse('[3, "a2", {"status": "Accepted"}]') == CallResult(
        "a2", {"status": "Accepted"}
    )
    assert frame_parse('[4, "a3", "GenericError", "no", {}]') == CallError(
        "a3", "GenericError", "no", {}
    )


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        "[2]",
        '[2, 17, "Heartbeat", {}]',  # the unique id is not a string
        f'[2, "{"x" * 37}", "Heartbeat", {{}}]',  # longer than OCPP-J's 36
        '[3, "a", {}, "extra"]',
        "[NaN, 1, 2]",
    ],
)
def test_a_frame_without_an_id_to_answer_is_unanswerable(text):
    with pytest.raises(Unanswerable):
        frame_parse(text)


@pytest.mark.parametrize(
    "text",
    [
        '[2, "a", "Heartbeat"]',
        '[2, "a", "Heartbeat", [], 1]',
        '[2, "a", 5, {}]',
        '[2, "a", "Heartbeat", "{}"]',
        '[7, "a", "Heartbeat", {}]',
        '[2.0, "a", "Heartbeat", {}]',
    ],
)
def test_a_malformed_call_with_an_id_is_a_formation_violation(text):
    frame = frame_parse(text)
    assert isinstance(frame, BadCall) and frame.unique_id == "a"
    assert frame.error.code == "FormationViolation"


def test_answers_are_compact_ocpp_j():
    assert result_text("u", {}) == '[3,"u",{}]'
    assert error_text("u", OcppError("NotImplemented", "no")) == '[4,"u","NotImplemented","no",{}]'


@pytest.mark.parametrize(
    ("action", "payload", "code"),
    [
        ("BootNotification", {"chargePointVendor": "Acme"}, "OccurenceConstraintViolation"),
        ("BootNotification", {**BOOT, "colour": "red"}, "FormationViolation"),
        ("BootNotification", {**BOOT, "chargePointModel": 5}, "TypeConstraintViolation"),
        (
            "BootNotification",
            {**BOOT, "chargePointVendor": "x" * 21},
            "PropertyConstraintViolation",
        ),
        ("Authorize", {"idTag": "\u00e9t\u00e9"}, "PropertyConstraintViolation"),
        ("Authorize", {"idTag": "a\u0000b"}, "PropertyConstraintViolation"),
        (
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"},
            "PropertyConstraintViolation",
        ),
        (
            "StartTransaction",
            {
                "connectorId": 1,
                "idTag": "T",
                "meterStart": 1.5,
                "timestamp": "2026-11-23T18:30:00Z",
            },
            "TypeConstraintViolation",
        ),
        (
            "StartTransaction",
            {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "yesterday"},
            "PropertyConstraintViolation",
        ),
        ("MeterValues", {"connectorId": 1, "meterValue": []}, "OccurenceConstraintViolation"),
    ],
)
def test_payloads_that_break_the_schema_name_the_ocpp_error(action, payload, code):
    with pytest.raises(OcppError) as raised:
        payload_check(action, payload)
    assert raised.value.code == code


def test_a_valid_payload_passes():
    payload_check("BootNotification", BOOT)
    payload_check("Heartbeat", {})


def test_a_schema_ocpp_16_does_not_have_is_a_key_error():
    with pytest.raises(KeyError):
        payload_check("../../etc/passwd", {})
    with pytest.raises(KeyError):
        payload_check("Nonsense", {})


def test_timestamps_are_utc_and_of_a_set_clock():
    assert timestamp_parse("2026-11-23T19:30:00+01:00").isoformat() == "2026-11-23T18:30:00+00:00"
    assert timestamp_parse("2026-11-23T18:30:00").isoformat() == "2026-11-23T18:30:00+00:00"
    for unset in ("1970-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        with pytest.raises(OcppError):
            timestamp_parse(unset)


# --- The fast path agrees with jsonschema --------------------------------------------

ANSWERED = sorted(VALID)


@settings(max_examples=600, deadline=None)
@given(action_payload=mutated(), stray=json_values)
def test_the_fast_path_lets_through_only_what_jsonschema_finds_valid(action_payload, stray):
    action, payload = action_payload
    for name, value in ((action, payload), (action, stray), (f"{action}Response", payload)):
        schema = validator(name).schema
        if conforms(schema, value):
            assert validator(name).is_valid(value), (name, value)


def test_the_fast_path_takes_the_valid_payloads():
    for action in ANSWERED:
        assert conforms(validator(action).schema, VALID[action]), action
