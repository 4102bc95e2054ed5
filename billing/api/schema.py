"""OpenAPI descriptions of the billing half of the operator API, for drf-spectacular.

The views answer with plain dicts (serializers.py), so their response shapes
are written out here as documentation-only serializers; nothing here runs on
a request. Importing this module also registers the extensions that teach
drf-spectacular our Bearer key authentication and decimal string fields.
"""

from typing import Any

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.plumbing import build_basic_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers

from billing.api.serializers import TariffCreateInput
from billing.models import Invoice, InvoiceLine
from billing.tariffs import MODEL_FIELDS


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
    target_class = "billing.api.fields.DecimalStringField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return {**build_basic_type(OpenApiTypes.DECIMAL), "example": "0.30"}


def decimal_string(**kwargs: Any) -> serializers.CharField:
    """A decimal written as a JSON string, in a documentation-only serializer."""
    kwargs.setdefault("help_text", 'a decimal as a string, e.g. "12.345"')
    return serializers.CharField(**kwargs)


ERROR = inline_serializer(
    "Error",
    {
        "code": serializers.CharField(),
        "detail": serializers.CharField(),
        "errors": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text='On a 400 only: messages by field path, e.g. "tiers[1].up_to".',
        ),
    },
)
ERRORS = {
    400: OpenApiResponse(ERROR, description="The body or query failed validation."),
    401: OpenApiResponse(ERROR, description="Missing or wrong operator API key."),
}
NOT_FOUND = {
    401: ERRORS[401],
    404: OpenApiResponse(ERROR, description="No such object."),
}

ACCOUNT = inline_serializer(
    "Account",
    {
        "id": serializers.CharField(),
        "name": serializers.CharField(),
        "currency": serializers.CharField(),
        "timezone": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
    },
)

TARIFF_MODEL_FIELDS: dict[str, serializers.Field] = {
    "unit_price": decimal_string(required=False, help_text="per_unit"),
    "tiers": serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text='graduated, volume: [{"up_to": "100" or null, "unit_price": "0.30"}]',
    ),
    "package_size": decimal_string(required=False, help_text="package"),
    "package_price": decimal_string(required=False, help_text="package"),
    "bands": serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text=(
            'time_of_use: [{"name", "days": [0-6, Monday=0], "start": "07:00", '
            '"end": "22:00", "unit_price"}]'
        ),
    ),
    "default_unit_price": decimal_string(required=False, help_text="time_of_use"),
}
assert set(TARIFF_MODEL_FIELDS) == {f for fields in MODEL_FIELDS.values() for f in fields}


class TariffCreateRequest(TariffCreateInput):
    """TariffCreateInput with the model's own fields, which it reads from the raw body."""

    unit_price = TARIFF_MODEL_FIELDS["unit_price"]
    tiers = TARIFF_MODEL_FIELDS["tiers"]
    package_size = TARIFF_MODEL_FIELDS["package_size"]
    package_price = TARIFF_MODEL_FIELDS["package_price"]
    bands = TARIFF_MODEL_FIELDS["bands"]
    default_unit_price = TARIFF_MODEL_FIELDS["default_unit_price"]


TARIFF = inline_serializer(
    "Tariff",
    {
        "id": serializers.CharField(),
        "name": serializers.CharField(),
        "currency": serializers.CharField(),
        "unit": serializers.CharField(),
        "billing_period": serializers.CharField(),
        "model": serializers.ChoiceField(choices=sorted(MODEL_FIELDS)),
        **{name: field for name, field in TARIFF_MODEL_FIELDS.items()},
        "fixed_fee": decimal_string(),
        "minimum": decimal_string(),
        "created_at": serializers.DateTimeField(),
    },
)
TARIFF_EXAMPLE = OpenApiExample(
    "Graduated",
    request_only=True,
    value={
        "name": "Household",
        "currency": "EUR",
        "unit": "kWh",
        "billing_period": "month",
        "model": "graduated",
        "tiers": [{"up_to": "100", "unit_price": "0.30"}, {"up_to": None, "unit_price": "0.25"}],
        "fixed_fee": "9.90",
        "minimum": "0",
    },
)

DASHBOARD_KEY = inline_serializer(
    "DashboardKey",
    {"key": serializers.CharField(help_text="Read-only dashboard key, shown this once.")},
)

USAGE = inline_serializer(
    "AccountUsage",
    {
        "period": inline_serializer(
            "Period", {"start": serializers.DateTimeField(), "end": serializers.DateTimeField()}
        ),
        "currency": serializers.CharField(),
        "total": decimal_string(),
        "meters": inline_serializer(
            "MeterUsage",
            {"id": serializers.CharField(), "usage": decimal_string(), "amount": decimal_string()},
            many=True,
        ),
    },
)

CHARGE_PAGE = inline_serializer(
    "ChargePage",
    {
        "results": inline_serializer(
            "Charge",
            {
                "id": serializers.CharField(),
                "meter": serializers.CharField(),
                "reading_id": serializers.CharField(),
                "reading_ts": serializers.DateTimeField(),
                "quantity": decimal_string(),
                "amount": decimal_string(),
                "currency": serializers.CharField(),
                "rated_at": serializers.DateTimeField(),
                "lines": serializers.ListField(
                    child=serializers.DictField(),
                    help_text='[{"description", "quantity", "unit_price", "amount"}]',
                ),
            },
            many=True,
        ),
        "next": serializers.URLField(allow_null=True, help_text="The next page, or null."),
    },
)

# Invoices (billing/api/invoices.py): the shapes of invoice_out, ready for its views.
# Named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]: meters have a "kind" too.
INVOICE_LINE_KINDS = InvoiceLine.Kind.values
INVOICE = inline_serializer(
    "Invoice",
    {
        "id": serializers.CharField(),
        "account": serializers.CharField(),
        "period_start": serializers.DateTimeField(),
        "period_end": serializers.DateTimeField(),
        "status": serializers.ChoiceField(choices=Invoice.Status.values),
        "lines": inline_serializer(
            "InvoiceLine",
            {
                "description": serializers.CharField(),
                "kind": serializers.ChoiceField(choices=INVOICE_LINE_KINDS),
                "meter": serializers.CharField(allow_null=True),
                "quantity": decimal_string(),
                "amount": decimal_string(help_text="rounded to the currency's minor unit"),
            },
            many=True,
        ),
        "subtotal": decimal_string(),
        "total": decimal_string(),
        "currency": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
    },
)
INVOICE_LIST = inline_serializer("InvoiceList", {"results": INVOICE.__class__(many=True)})
CONFLICT = {409: OpenApiResponse(ERROR, description="The open period was closed meanwhile.")}
