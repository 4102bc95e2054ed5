"""How drf-spectacular reads the operator API: our AutoSchema (REST_FRAMEWORK's
DEFAULT_SCHEMA_CLASS, so loading it registers the extensions below), the operator key
scheme and the decimal-string fields.

Response shapes are not written here: the output serializers that render each answer
(serializers.py, errors.py) are the ones the views hand to `extend_schema`.
"""

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)


class AutoSchema(openapi.AutoSchema):
    def get_serializer_name(self, serializer: Any, direction: str) -> str:
        # An output serializer is named for what it renders: AccountOut is "Account".
        return super().get_serializer_name(serializer, direction).removesuffix("Out")


class OperatorKeyScheme(OpenApiAuthenticationExtension):
    target_class = "billing.auth.OperatorKeyAuthentication"
    name = "operatorKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An operator API key, made with `manage.py create_api_key`.",
        }


class DecimalStringScheme(OpenApiSerializerFieldExtension):
    """Inputs: a string, since numbers are refused (billing/api/fields.py)."""

    target_class = "billing.api.fields.DecimalStringField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return {"type": "string", "format": "decimal", "example": "0.30"}


class DecimalOutScheme(OpenApiSerializerFieldExtension):
    """Outputs: the pattern says how many places, so a response can be checked against it."""

    target_class = "billing.api.fields.DecimalOutField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        field = self.target
        return {
            "type": "string",
            "format": "decimal",
            "pattern": field.pattern,
            "description": field.description,
        }
