"""The device protocol's input side: frames and readings checked into plain values.

Pure functions: no Django, no I/O. Anything a device sends either becomes
a `ReadingIn` or a `ReadingError` carrying one of the contract's error codes.
"""

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from protocol import ReadingError, ReadingIn

MAX_ID_LENGTH = 64
# A reading's usage: below 10^15 (so usage times a price below 10^9 fits the
# 24 integer digits of a money column), at most 9 decimals (stored exactly).
MAX_INTEGER_DIGITS = 15
MAX_DECIMAL_PLACES = 9
# Plain notation only: ASCII digits, an optional fraction; no sign, exponent,
# spaces or underscores, which Python's Decimal would otherwise accept. Always
# fullmatch: `$` also matches before a final newline, and Decimal ignores it.
PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Frame:
    readings: list[ReadingIn]
    errors: list[ReadingError]


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(text: str | bytes, *, max_bytes: int) -> Any:
    """The JSON value of a frame or request body, within the size limit."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        raise ReadingError(None, "too_large", f"frame is {size} bytes; the limit is {max_bytes}")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ReadingError(None, "invalid_json", "frame nests JSON too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReadingError(None, "invalid_json", f"frame is not valid JSON: {exc}") from None


def batch_items(items: Any, *, max_batch: int) -> list[Any]:
    if not isinstance(items, list):
        raise ReadingError(None, "invalid_message", "a batch needs a list in 'readings'")
    if len(items) > max_batch:
        raise ReadingError(
            None, "too_large", f"batch holds {len(items)} readings; the limit is {max_batch}"
        )
    return items


def parse_frame(
    text: str | bytes,
    *,
    kind: str,
    now: datetime,
    max_bytes: int,
    max_batch: int,
    max_future: timedelta,
) -> Frame:
    """Readings and per-reading errors of one frame; raises ReadingError (id None) for the frame."""
    message = decode_json(text, max_bytes=max_bytes)
    if not isinstance(message, dict):
        raise ReadingError(None, "invalid_message", "a frame must be a JSON object")
    if message.get("type") == "reading":
        items = [message]
    elif message.get("type") == "batch":
        items = batch_items(message.get("readings"), max_batch=max_batch)
    else:
        raise ReadingError(None, "invalid_message", "'type' must be 'reading' or 'batch'")
    return parse_readings(items, kind=kind, now=now, max_future=max_future)


def parse_readings(items: list[Any], *, kind: str, now: datetime, max_future: timedelta) -> Frame:
    readings: list[ReadingIn] = []
    errors: list[ReadingError] = []
    for item in items:
        try:
            readings.append(parse_reading(item, kind=kind, now=now, max_future=max_future))
        except ReadingError as error:
            errors.append(error)
    return Frame(readings=readings, errors=errors)


def parse_reading(item: Any, *, kind: str, now: datetime, max_future: timedelta) -> ReadingIn:
    if not isinstance(item, dict):
        raise ReadingError(None, "invalid_reading", "a reading must be a JSON object")
    reading_id = item.get("id")
    if not isinstance(reading_id, str) or not 1 <= len(reading_id) <= MAX_ID_LENGTH:
        raise ReadingError(
            None, "invalid_reading", f"id must be a string of 1 to {MAX_ID_LENGTH} characters"
        )
    # Control characters (NUL: PostgreSQL text cannot hold it) and lone
    # surrogates (not UTF-8: msgpack cannot carry them) are refused.
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in reading_id):
        raise ReadingError(None, "invalid_reading", "id must not contain control characters")

    def invalid(detail: str) -> ReadingError:
        return ReadingError(reading_id, "invalid_reading", detail)

    ts = _parse_timestamp(item.get("ts"), invalid)
    if ts > now + max_future:
        raise ReadingError(
            reading_id,
            "future_timestamp",
            f"ts is more than {int(max_future.total_seconds())} s ahead of the server's clock",
        )
    if kind == "delta":
        if item.get("value") is not None:
            raise invalid("this meter is a delta meter: send 'quantity', not 'value'")
        return ReadingIn(id=reading_id, ts=ts, quantity=_parse_amount(item, "quantity", invalid))
    if item.get("quantity") is not None:
        raise invalid("this meter is a cumulative meter: send 'value', not 'quantity'")
    return ReadingIn(id=reading_id, ts=ts, value=_parse_amount(item, "value", invalid))


def _parse_timestamp(raw: Any, invalid) -> datetime:
    if not isinstance(raw, str):
        raise invalid("ts must be an ISO 8601 timestamp string with an offset")
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid(f"ts {raw[:40]!r} is not an ISO 8601 timestamp") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise invalid("ts must include a UTC offset, e.g. 2026-11-23T18:30:00Z")
    if ts < EARLIEST:
        raise invalid("ts is before 2000-01-01: is the device's clock set?")
    return ts


def _parse_amount(item: dict, field: str, invalid) -> Decimal:
    raw = item.get(field)
    if raw is None:
        raise invalid(f"{field} is required")
    if not isinstance(raw, str):
        raise invalid(f'{field} must be a decimal string, e.g. "0.125", not a JSON number')
    if not PLAIN_DECIMAL.fullmatch(raw):
        raise invalid(f'{field} must be a non-negative decimal string such as "0.125"')
    number = Decimal(raw)
    whole, _, fraction = raw.partition(".")
    if len(fraction) > MAX_DECIMAL_PLACES or len(whole.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise invalid(
            f"{field} allows at most {MAX_INTEGER_DIGITS} digits before the point "
            f"and {MAX_DECIMAL_PLACES} after"
        )
    return number
