"""A session's registers as readings: ids from what the sample says, Wh and kWh, only the
charge point's total active import register."""

from datetime import UTC, datetime
from decimal import Decimal

from metering.ocpp.readings import (
    meter_value_readings,
    sample_register_kwh,
    start_reading,
    stop_readings,
)

AT = "2026-11-23T18:30:00Z"


def values(*samples, at=AT):
    return [{"timestamp": at, "sampledValue": list(samples)}]


def test_the_register_in_wh_or_kwh_becomes_kwh():
    assert sample_register_kwh({"value": "12345"}) == Decimal("12.345")
    assert sample_register_kwh({"value": "12.5", "unit": "kWh"}) == Decimal("12.5")
    register = {"value": "7", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    assert sample_register_kwh(register) == Decimal("0.007")


def test_other_samples_are_not_registers():
    for sample in (
        {"value": "11000", "measurand": "Power.Active.Import", "unit": "W"},
        {"value": "500", "measurand": "Energy.Active.Import.Interval"},
        {"value": "4000", "phase": "L1"},
        {"value": "4000", "location": "EV"},
        {"value": "4000", "unit": "varh"},
        {"value": "b64==", "format": "SignedData"},
        {"value": "-5"},
        {"value": "1e3"},
        {"value": "12.3456789", "unit": "Wh"},  # beyond a reading's 9 places in kWh
        {"value": "1" + "0" * 18},  # 10^18 Wh: beyond a reading's column
        {"value": "4000\n"},  # a decimal must be the whole string
        {"value": "٤٠٠٠"},  # ASCII digits only
    ):
        assert sample_register_kwh(sample) is None, sample


def test_ids_come_from_the_transaction_the_timestamp_and_the_context():
    readings = meter_value_readings(
        transaction_id=17,
        meter_values=values(
            {"value": "1000", "context": "Sample.Clock"},
            {"value": "1000"},
            {"value": "1001"},  # the same moment and context again: the first stands
            {"value": "11000", "measurand": "Power.Active.Import"},
        ),
    )
    assert [(r.id, r.value) for r in readings] == [
        ("tx17-20261123T183000.000000Z-Sample.Clock", Decimal("1")),
        ("tx17-20261123T183000.000000Z-Sample.Periodic", Decimal("1")),
    ]
    again = meter_value_readings(
        transaction_id=17, meter_values=values({"value": "1000"}, at="2026-11-23T19:30:00+01:00")
    )
    assert again[0].id == readings[1].id, "the same moment written another way is a resend"


def test_readings_come_oldest_first_and_the_longest_id_fits():
    readings = meter_value_readings(
        transaction_id=2**31 - 1,
        meter_values=[
            *values({"value": "2", "context": "Interruption.Begin"}, at="2026-11-23T18:31:00Z"),
            *values({"value": "1", "context": "Interruption.Begin"}, at="2026-11-23T18:30:00.5Z"),
        ],
    )
    assert [r.value for r in readings] == [Decimal("0.001"), Decimal("0.002")]
    assert max(len(r.id) for r in readings) <= 64


def test_meter_start_is_a_baseline_and_meter_stop_comes_last():
    at = datetime(2026, 11, 23, 18, 30, tzinfo=UTC)
    start = start_reading(transaction_id=3, meter_start_wh=1500, at=at)
    assert (start.id, start.value, start.baseline) == ("tx3-start", Decimal("1.5"), True)
    readings = stop_readings(
        transaction_id=3,
        meter_stop_wh=9000,
        at=at,
        transaction_data=values({"value": "9000", "context": "Transaction.End"}, at=AT),
    )
    assert [r.id for r in readings] == ["tx3-20261123T183000.000000Z-Transaction.End", "tx3-stop"]
    assert not any(r.baseline for r in readings)


def test_a_baseline_crosses_the_channel_layer():
    at = datetime(2026, 11, 23, 18, 30, tzinfo=UTC)
    start = start_reading(transaction_id=3, meter_start_wh=1500, at=at)
    from protocol import ReadingIn

    assert ReadingIn.from_wire(start.to_wire()) == start
    plain = ReadingIn(id="r", ts=at, value=Decimal(1))
    assert "baseline" not in plain.to_wire()
    assert ReadingIn.from_wire(plain.to_wire()) == plain
