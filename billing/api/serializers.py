"""Shapes of the billing half of the operator API: input and output serializers.

Inputs are validated here for shape; rules that need the database or the
pricing models live in the services. Outputs render every answer and are the
schema of it too (`extend_schema` in the views): money and quantities through
the output fields of billing/api/fields.py, timestamps in UTC with a Z.
"""

import copy
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers

from billing.api.fields import (
    AmountField,
    CurrencyField,
    DecimalStringField,
    MinorAmountField,
    QuantityField,
    TimestampField,
    TimezoneField,
)
from billing.models import MONEY, Invoice, InvoiceLine
from billing.periods import billing_period_problem
from billing.tariffs import MODEL_FIELDS

MODEL_FIELD_NAMES = sorted({field for fields in MODEL_FIELDS.values() for field in fields})


def money_field(**kwargs: Any) -> DecimalStringField:
    return DecimalStringField(
        max_digits=MONEY["max_digits"], max_places=MONEY["decimal_places"], **kwargs
    )


class AccountCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    currency = CurrencyField()
    timezone = TimezoneField()


class TariffCreateInput(serializers.Serializer):
    """The common fields; the model's own fields (unit_price, tiers, ...) become `params`."""

    name = serializers.CharField(max_length=200)
    currency = CurrencyField()
    unit = serializers.CharField(max_length=32, required=False, default="unit")
    billing_period = serializers.CharField(max_length=16, required=False, default="month")
    model = serializers.ChoiceField(choices=sorted(MODEL_FIELDS))
    fixed_fee = money_field(required=False, default=Decimal(0))
    minimum = money_field(required=False, default=Decimal(0))

    def validate_billing_period(self, value: str) -> str:
        problem = billing_period_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        model = attrs["model"]
        own = MODEL_FIELDS[model]
        errors = {
            field: [f"not a field of the {model} model"]
            for field in MODEL_FIELD_NAMES
            if field not in own and field in self.initial_data
        }
        errors.update(
            {
                field: [f"required by the {model} model"]
                for field in own
                if field not in self.initial_data
            }
        )
        if errors:
            raise serializers.ValidationError(errors)
        attrs["params"] = {field: self.initial_data[field] for field in own}
        return attrs


class ChargeListInput(serializers.Serializer):
    """Query parameters of the charge list."""

    meter = serializers.CharField(required=False, max_length=32)
    since = serializers.DateTimeField(required=False)
    after = serializers.IntegerField(required=False, min_value=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)


# --- Outputs --------------------------------------------------------------------------


class AccountUpdateInput(serializers.Serializer):
    # Credit control's cut-off line (CONTRACT.md section 6); null: never cut off.
    cutoff_at = money_field(allow_null=True, min_value=-(Decimal(10) ** 18))


class AccountOut(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    currency = serializers.CharField()
    timezone = serializers.CharField()
    created_at = TimestampField()
    cutoff_at = AmountField(allow_null=True)
    cut_off = serializers.BooleanField()


class TariffOut(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    currency = serializers.CharField()
    unit = serializers.CharField()
    billing_period = serializers.CharField()
    model = serializers.ChoiceField(choices=sorted(MODEL_FIELDS))
    # The model's own fields, kept in `Tariff.params` as they were given and shown so; in
    # MODEL_FIELDS order, the order they are stored in; each only on tariffs of its model.
    unit_price = serializers.CharField(
        source="params.unit_price", required=False, help_text="per_unit: a decimal string"
    )
    tiers = serializers.ListField(
        source="params.tiers",
        child=serializers.DictField(),
        required=False,
        help_text='graduated, volume: [{"up_to": "100" or null, "unit_price": "0.30"}]',
    )
    package_size = serializers.CharField(
        source="params.package_size", required=False, help_text="package: a decimal string"
    )
    package_price = serializers.CharField(
        source="params.package_price", required=False, help_text="package: a decimal string"
    )
    bands = serializers.ListField(
        source="params.bands",
        child=serializers.DictField(),
        required=False,
        help_text=(
            'time_of_use: [{"name", "days": [0-6, Monday=0], "start": "07:00", '
            '"end": "22:00", "unit_price"}]'
        ),
    )
    default_unit_price = serializers.CharField(
        source="params.default_unit_price",
        required=False,
        help_text="time_of_use: a decimal string",
    )
    fixed_fee = AmountField()
    minimum = AmountField()
    created_at = TimestampField()


# A field added to a pricing model must be shown (and documented) here too.
assert set(MODEL_FIELD_NAMES) <= set(TariffOut._declared_fields)


class TariffCreateRequest(TariffCreateInput):
    """A new tariff: the common fields and those of its pricing model."""

    # Documentation only: TariffCreateInput reads the model's own fields from the raw body
    # (billing/tariffs.py checks them), so their description is borrowed from TariffOut.
    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for name, field in TariffOut._declared_fields.items():
            if name in MODEL_FIELD_NAMES:
                fields[name] = copy.deepcopy(field)
                fields[name].source = None  # a request field, not read from `params`
        return fields


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


class DashboardKeyOut(serializers.Serializer):
    id = serializers.CharField(help_text="What DELETE /api/v1/dashboard-keys/{id}/ revokes.")
    created_at = TimestampField()
    revoked_at = TimestampField(allow_null=True, help_text="null while the key works.")


class DashboardKeyCreatedOut(serializers.Serializer):
    id = serializers.CharField(help_text="What DELETE /api/v1/dashboard-keys/{id}/ revokes.")
    key = serializers.CharField(help_text="Read-only dashboard key, shown this once.")
    created_at = TimestampField()


class DashboardKeyListOut(serializers.Serializer):
    results = DashboardKeyOut(many=True)


class PeriodOut(serializers.Serializer):
    start = TimestampField(source="period_start")
    end = TimestampField(source="period_end")


class MeterUsageOut(serializers.Serializer):
    id = serializers.CharField(source="meter_id")
    usage = QuantityField()
    amount = AmountField()


class AccountUsageOut(serializers.Serializer):
    # Renders billing.selectors.AccountUsage.

    period = PeriodOut(source="*")
    currency = serializers.CharField()
    total = AmountField()
    meters = MeterUsageOut(many=True)


class ChargeLineOut(serializers.Serializer):
    """How a part of the charge was priced: a tier, a band, a volume repricing."""

    # Stored already written (metering/rating/writing.py), so shown as stored.

    description = serializers.CharField()
    quantity = serializers.CharField(help_text="a decimal string, exact")
    unit_price = serializers.CharField(allow_null=True, help_text="a decimal string, exact")
    amount = serializers.CharField(help_text="a decimal string, 6 places")


class ChargeOut(serializers.Serializer):
    # Needs `charge.reading` loaded (select_related) to stay one query per page.

    id = serializers.CharField()
    meter = serializers.CharField(source="meter_id")
    reading_id = serializers.CharField(source="reading.reading_id")
    reading_ts = TimestampField(source="reading.ts")
    quantity = QuantityField()
    amount = AmountField()
    currency = serializers.CharField()
    rated_at = TimestampField()
    period_start = TimestampField()
    late = serializers.BooleanField()
    lines = ChargeLineOut(many=True)


class ChargePageOut(serializers.Serializer):
    results = ChargeOut(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page, or null.")


# Named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]: meters have a "kind" too.
INVOICE_LINE_KINDS = InvoiceLine.Kind.values


class InvoiceLineOut(serializers.Serializer):
    description = serializers.CharField()
    kind = serializers.ChoiceField(choices=INVOICE_LINE_KINDS)
    meter = serializers.CharField(source="meter_id", allow_null=True)
    quantity = QuantityField()
    amount = MinorAmountField(currency="invoice.currency")


class InvoiceOut(serializers.Serializer):
    # Needs `lines` prefetched to stay one query per page.

    id = serializers.CharField()
    account = serializers.CharField(source="account_id")
    period_start = TimestampField()
    period_end = TimestampField()
    status = serializers.ChoiceField(choices=Invoice.Status.values)
    lines = InvoiceLineOut(many=True)
    subtotal = MinorAmountField(currency="currency")
    total = MinorAmountField(currency="currency")
    currency = serializers.CharField()
    created_at = TimestampField()


class InvoiceListOut(serializers.Serializer):
    results = InvoiceOut(many=True)
