"""A charging session's energy register, as readings of its meter. Pure: no Django, no I/O.

A session is rated "as a cumulative register from meterStart": StartTransaction's
meterStart becomes a baseline reading (no usage: the energy since the last session
is not this one's), and every later Energy.Active.Import.Register sample, and
StopTransaction's meterStop, is a register whose increase is the usage.

A reading's id is made of the transaction id and what the sample says about itself
(its timestamp and context), never of when it arrived, so a charge point's resend
is a duplicate of the first. Every id of a session starts with `tx<transaction id>-`.
"""

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from metering.ocpp.schemas import timestamp_parse
from protocol import ReadingIn

ENERGY_REGISTER = "Energy.Active.Import.Register"
# A register below 10^15 kWh with at most 9 decimals fits a reading's value column;
# in Wh, below 10^18 with at most 6 decimals.
MAX_KWH = Decimal(10) ** 15
MAX_KWH_PLACES = 9
PLAIN_DECIMAL = re.compile(r"[0-9]{1,21}(\.[0-9]{1,12})?")
# Where a register measures the charge point's delivery (Outlet is OCPP's default).
CHARGE_POINT_LOCATIONS = frozenset({None, "Outlet", "Inlet"})
_UNITS = {None: -3, "Wh": -3, "kWh": 0}  # power of ten from the unit to kWh


def reading_prefix(transaction_id: int) -> str:
    return f"tx{transaction_id}-"


def wh_to_kwh(wh: int | Decimal) -> Decimal:
    return Decimal(wh).scaleb(-3)


def register_fits(wh: int) -> bool:
    """Whether meterStart or meterStop (integer Wh) is a register Meterline can hold."""
    return 0 <= wh < MAX_KWH * 1000


def start_reading(*, transaction_id: int, meter_start_wh: int, at: datetime) -> ReadingIn:
    """The session's baseline: meterStart, adding no usage."""
    value = wh_to_kwh(meter_start_wh)
    return ReadingIn(id=f"{reading_prefix(transaction_id)}start", ts=at, value=value, baseline=True)


def stop_readings(
    *, transaction_id: int, meter_stop_wh: int, at: datetime, transaction_data: Iterable[dict]
) -> list[ReadingIn]:
    """StopTransaction's registers: the transactionData samples, then meterStop."""
    stop = ReadingIn(
        id=f"{reading_prefix(transaction_id)}stop", ts=at, value=wh_to_kwh(meter_stop_wh)
    )
    # Stable: a sample at the stop's own time goes before it.
    return sorted(
        [*meter_value_readings(transaction_id=transaction_id, meter_values=transaction_data), stop],
        key=lambda reading: reading.ts,
    )


def meter_value_readings(*, transaction_id: int, meter_values: Iterable[dict]) -> list[ReadingIn]:
    """The registers of MeterValues' meterValue (or transactionData), oldest first, one per
    timestamp and context; the payload has passed its schema (metering/ocpp/schemas.py)."""
    prefix = reading_prefix(transaction_id)
    readings: dict[str, ReadingIn] = {}
    for meter_value in meter_values:
        at = timestamp_parse(meter_value["timestamp"])
        for sample in meter_value["sampledValue"]:
            kwh = sample_register_kwh(sample)
            if kwh is None:
                continue
            context = sample.get("context", "Sample.Periodic")
            reading_id = f"{prefix}{_stamp(at)}-{context}"
            # Two registers of one moment and context: the first stands (as a resend would).
            readings.setdefault(reading_id, ReadingIn(id=reading_id, ts=at, value=kwh))
    return sorted(readings.values(), key=lambda reading: reading.ts)


def sample_register_kwh(sample: dict[str, Any]) -> Decimal | None:
    """The charge point's total active import register in kWh, if this sample is one.

    Other measurands, single phases, the EV's or the cable's meter, signed data and
    values that are not plain non-negative decimals are not registers Meterline rates.
    """
    if sample.get("measurand", ENERGY_REGISTER) != ENERGY_REGISTER:
        return None
    if "phase" in sample or sample.get("format", "Raw") != "Raw":
        return None
    unit = sample.get("unit")
    if unit not in _UNITS or sample.get("location") not in CHARGE_POINT_LOCATIONS:
        return None
    text = sample["value"]
    if not PLAIN_DECIMAL.fullmatch(text):
        return None
    kwh = Decimal(text).scaleb(_UNITS[unit])
    exponent = kwh.as_tuple().exponent
    assert isinstance(exponent, int)  # finite: a plain decimal
    if kwh >= MAX_KWH or -exponent > MAX_KWH_PLACES:
        return None
    return kwh


def _stamp(at: datetime) -> str:
    """A timestamp in 24 characters: 20261123T183000.000000Z."""
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
