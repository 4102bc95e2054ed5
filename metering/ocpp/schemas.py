"""OCPP 1.6 payloads checked against the JSON schemas the `ocpp` package ships
(ocpp/v16/schemas/), with each failure named by its OCPP-J error code.

The schemas only say "string" for OCPP's CiString and dateTime fields; the checks
after them hold every string to printable ASCII (what CiString allows, and what
keeps control characters and lone surrogates out of the database) and parse
every timestamp.
"""

import json
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from metering.ocpp.framing import OcppError

# jsonschema's validator -> the OCPP-J code for a payload that breaks it.
_CODES = {
    "type": "TypeConstraintViolation",
    "required": "OccurenceConstraintViolation",  # the specification's spelling
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
    "additionalProperties": "FormationViolation",
    "enum": "PropertyConstraintViolation",
    "maxLength": "PropertyConstraintViolation",
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "multipleOf": "PropertyConstraintViolation",
    "pattern": "PropertyConstraintViolation",
}
# Fields of the payloads Meterline reads that hold an OCPP dateTime.
TIMESTAMP_FIELDS = frozenset({"timestamp", "currentTime", "expiryDate"})
# A charge point's clock outside these is not set: BootNotification's currentTime sets it.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


@cache
def validator(name: str) -> Draft4Validator:
    """The validator of schema `name` ("MeterValues", "MeterValuesResponse"); KeyError if
    OCPP 1.6 has no such message."""
    if not name.isascii() or not name.isalnum():
        raise KeyError(name)
    path = resources.files("ocpp") / "v16" / "schemas" / f"{name}.json"
    try:
        schema = json.loads(path.read_text(encoding="utf-8-sig"))
    except (FileNotFoundError, NotADirectoryError):
        raise KeyError(name) from None
    return Draft4Validator(schema)


def payload_check(name: str, payload: Any) -> None:
    """Raise OcppError unless `payload` is a valid `name` message (schema name as above)."""
    try:
        error = next(iter(validator(name).iter_errors(payload)), None)
    except RecursionError:
        raise OcppError("FormationViolation", "the payload nests too deeply") from None
    if error is not None:
        code = _CODES.get(str(error.validator), "FormationViolation")
        if error.validator == "type" and not error.absolute_path:
            code = "FormationViolation"  # the payload itself is not an object
        raise OcppError(code, f"{_where(error)}: {error.message}"[:200])
    _strings_check(payload, "")


def _where(error: ValidationError) -> str:
    return "payload" + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    )


def _strings_check(node: Any, where: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in TIMESTAMP_FIELDS and isinstance(value, str):
                timestamp_parse(value, f"{where}.{key}")
            _strings_check(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _strings_check(item, f"{where}[{index}]")
    elif isinstance(node, str) and not all(" " <= char <= "~" for char in node):
        raise OcppError("PropertyConstraintViolation", f"payload{where}: not printable ASCII")


def timestamp_parse(text: str, where: str = ".timestamp") -> datetime:
    """An OCPP dateTime (RFC 3339) in UTC; one without an offset is taken as UTC, as
    OCPP's are. Raises PropertyConstraintViolation for anything else."""
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        detail = f"payload{where}: {text[:40]!r} is not an RFC 3339 date-time"
        raise OcppError("PropertyConstraintViolation", detail) from None
    if not EARLIEST <= moment < LATEST:
        detail = f"payload{where}: {text[:40]!r} is not a date this century or the next"
        raise OcppError("PropertyConstraintViolation", detail)
    return moment
