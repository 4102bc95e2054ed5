"""OpenAPI descriptions of the meter endpoints and of device HTTP ingest, for drf-spectacular.

Documentation only: the views answer with plain dicts (serializers.py). HTTP
ingest is a plain Django view (metering/ingest.py) that drf-spectacular cannot
see, so `ingest_path` adds it to the document as a postprocessing hook.
"""

from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from billing.api.schema import decimal_string
from metering.models import Meter

# Named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]: invoice lines have a "kind" too.
METER_KINDS = Meter.Kind.values

METER_FIELDS: dict[str, serializers.Field] = {
    "id": serializers.CharField(),
    "account": serializers.CharField(),
    "tariff": serializers.CharField(allow_null=True, help_text="The tariff in force now."),
    "name": serializers.CharField(),
    "kind": serializers.ChoiceField(choices=METER_KINDS),
    "rollover_at": decimal_string(allow_null=True),
    "active": serializers.BooleanField(),
    "created_at": serializers.DateTimeField(),
}
SHOWN_ONCE = "The device token: shown this once, only its hash is kept."

METER = inline_serializer("Meter", METER_FIELDS)
METER_CREATED = inline_serializer(
    "MeterCreated", {**METER_FIELDS, "token": serializers.CharField(help_text=SHOWN_ONCE)}
)
METER_TOKEN = inline_serializer(
    "MeterToken",
    {"id": serializers.CharField(), "token": serializers.CharField(help_text=SHOWN_ONCE)},
)

INGEST_PATH = "/api/v1/meters/{meter_id}/readings/"
_ERROR_ITEM = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "nullable": True},
        "code": {"type": "string"},
        "detail": {"type": "string"},
    },
    "required": ["id", "code", "detail"],
}
_ACK = {
    "type": "object",
    "properties": {
        "ids": {"type": "array", "items": {"type": "string"}},
        "duplicates": {"type": "array", "items": {"type": "string"}},
        "errors": {"type": "array", "items": _ERROR_ITEM},
    },
    "required": ["ids", "duplicates", "errors"],
}
_DETAIL = {"type": "object", "properties": {"detail": {"type": "string"}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def ingest_path(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS entry: the device HTTP ingest endpoint, with its device token auth."""
    components = result.setdefault("components", {})
    components.setdefault("securitySchemes", {})["deviceToken"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The meter's device token, from creating the meter or rotating its token.",
    }
    result.setdefault("paths", {})[INGEST_PATH] = {
        "post": {
            "operationId": "readings_ingest",
            "summary": "Send a batch of readings (devices without a WebSocket)",
            "description": (
                "The body is a batch frame of the device protocol. It is rated before the "
                "answer, which is the WebSocket ack: ids recorded, duplicates already "
                "recorded, and errors for readings that were refused."
            ),
            "tags": ["devices"],
            "security": [{"deviceToken": []}],
            "parameters": [
                {"name": "meter_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "readings": {
                                    "type": "array",
                                    "items": {"type": "object"},
                                    "description": "Readings as in the WebSocket protocol.",
                                }
                            },
                            "required": ["readings"],
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_ACK, "Rated: the ack."),
                "400": _json(_ACK, "The body is not a batch frame."),
                "401": _json(_DETAIL, "Missing or wrong device token."),
                "403": _json(_DETAIL, "The meter is disabled."),
                "413": _json(_ACK, "The body is too large."),
                "503": _json(_DETAIL, "Busy: nothing was recorded; resend after Retry-After."),
            },
        }
    }
    return result
