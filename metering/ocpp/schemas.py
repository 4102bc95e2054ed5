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
    schema = validator(name).schema
    try:
        # jsonschema takes about 100 µs for a MeterValues, most of a message's CPU in
        # the web process: the common, valid payload is let through by `conforms`.
        error = None if conforms(schema, payload) else _first_error(name, payload)
    except RecursionError:
        raise OcppError("FormationViolation", "the payload nests too deeply") from None
    if error is not None:
        code = _CODES.get(str(error.validator), "FormationViolation")
        if error.validator == "type" and not error.absolute_path:
            code = "FormationViolation"  # the payload itself is not an object
        raise OcppError(code, f"{_where(error)}: {error.message}"[:200])
    _strings_check(payload, "")


def _first_error(name: str, payload: Any) -> ValidationError | None:
    return next(iter(validator(name).iter_errors(payload)), None)


# Draft 4's types, as jsonschema checks them (a bool is no integer, a float no integer).
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
# Annotations, and `format`, which jsonschema checks only with a FormatChecker (none here).
_NOT_RULES = frozenset({"$schema", "$id", "title", "javaType", "format"})


def conforms(schema: dict[str, Any], value: Any) -> bool:
    """True only if `value` is valid under `schema`, for the keywords the OCPP 1.6 schemas
    use; False for anything else (jsonschema then decides, and names the error)."""
    for key, rule in schema.items():
        if key in _NOT_RULES:
            continue
        holds = _RULES.get(key)
        if holds is None or not holds(schema, rule, value):
            return False
    return True


def _type(schema: dict, rule: Any, value: Any) -> bool:
    return isinstance(rule, str) and rule in _TYPES and _TYPES[rule](value)


def _properties(schema: dict, rule: dict, value: Any) -> bool:
    if not isinstance(value, dict):
        return True
    return all(name not in value or conforms(sub, value[name]) for name, sub in rule.items())


def _additional(schema: dict, rule: Any, value: Any) -> bool:
    if rule is True or (rule is False and not isinstance(value, dict)):
        return True
    return rule is False and value.keys() <= schema.get("properties", {}).keys()


def _required(schema: dict, rule: list, value: Any) -> bool:
    return not isinstance(value, dict) or all(name in value for name in rule)


def _enum(schema: dict, rule: list, value: Any) -> bool:
    return any(type(value) is type(option) and value == option for option in rule)


def _max_length(schema: dict, rule: int, value: Any) -> bool:
    return not isinstance(value, str) or len(value) <= rule


def _min_items(schema: dict, rule: int, value: Any) -> bool:
    return not isinstance(value, list) or len(value) >= rule


def _items(schema: dict, rule: Any, value: Any) -> bool:
    if not isinstance(value, list):
        return True
    return isinstance(rule, dict) and all(conforms(rule, item) for item in value)


_RULES = {
    "type": _type,
    "properties": _properties,
    "additionalProperties": _additional,
    "required": _required,
    "enum": _enum,
    "maxLength": _max_length,
    "minItems": _min_items,
    "items": _items,
}


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
