"""OCPP-J framing: `[2, id, action, payload]` calls, `[3, id, payload]` results and
`[4, id, code, description, details]` errors, read from and written to text frames.

Pure: no Django, no I/O. A frame that is not OCPP-J at all (not a JSON array with
a message type and a unique id) cannot be answered, since an answer needs the id.
"""

import json
from dataclasses import dataclass, field
from typing import Any

CALL, CALL_RESULT, CALL_ERROR = 2, 3, 4
# OCPP-J: a unique id is a string of at most 36 characters.
MAX_UNIQUE_ID = 36


class OcppError(Exception):
    """A call answered with a CallError (OCPP-J 1.6, section 4.2.3 names the codes)."""

    def __init__(self, code: str, description: str, details: dict[str, Any] | None = None):
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details or {}


class Unanswerable(Exception):
    """A frame with no unique id to answer to: logged and dropped."""


@dataclass(frozen=True)
class Call:
    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class CallResult:
    unique_id: str
    payload: Any


@dataclass(frozen=True)
class CallError:
    unique_id: str
    code: str
    description: str
    details: Any = field(default_factory=dict)


@dataclass(frozen=True)
class BadCall:
    """A call whose id could be read but not the rest: answered with `error`."""

    unique_id: str
    error: OcppError


Frame = Call | CallResult | CallError | BadCall


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def frame_parse(text: str | bytes) -> Frame:
    """The frame a charge point sent; raises Unanswerable when it has no id to answer."""
    try:
        message = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError, UnicodeDecodeError) as error:
        raise Unanswerable(f"not JSON: {error}") from None
    if not isinstance(message, list) or len(message) < 3:
        raise Unanswerable("an OCPP-J frame is a JSON array of 3 to 5 elements")
    kind, unique_id = message[0], message[1]
    if not isinstance(unique_id, str) or not 0 < len(unique_id) <= MAX_UNIQUE_ID:
        raise Unanswerable(f"the unique id must be a string of 1 to {MAX_UNIQUE_ID} characters")
    if kind == CALL and type(kind) is int:
        return _call(unique_id, message)
    if kind == CALL_RESULT and type(kind) is int and len(message) == 3:
        return CallResult(unique_id, message[2])
    if kind == CALL_ERROR and type(kind) is int and len(message) == 5:
        code, description = message[2], message[3]
        if isinstance(code, str) and isinstance(description, str):
            return CallError(unique_id, code, description, message[4])
    if kind in (CALL_RESULT, CALL_ERROR) and type(kind) is int:
        raise Unanswerable("a malformed CallResult or CallError")
    error = OcppError("FormationViolation", f"message type {kind!r} is not 2, 3 or 4")
    return BadCall(unique_id, error)


def _call(unique_id: str, message: list[Any]) -> Frame:
    if len(message) != 4:
        return BadCall(unique_id, OcppError("FormationViolation", "a Call has 4 elements"))
    action, payload = message[2], message[3]
    if not isinstance(action, str) or not action:
        return BadCall(unique_id, OcppError("FormationViolation", "the action must be a string"))
    if not isinstance(payload, dict):
        return BadCall(unique_id, OcppError("FormationViolation", "the payload must be an object"))
    return Call(unique_id, action, payload)


def _dump(message: list[Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def call_text(unique_id: str, action: str, payload: dict[str, Any]) -> str:
    return _dump([CALL, unique_id, action, payload])


def result_text(unique_id: str, payload: dict[str, Any]) -> str:
    return _dump([CALL_RESULT, unique_id, payload])


def error_text(unique_id: str, error: OcppError) -> str:
    return _dump([CALL_ERROR, unique_id, error.code, error.description, error.details])
