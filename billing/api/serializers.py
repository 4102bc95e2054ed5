"""Shapes of the billing half of the operator API: input serializers and output dicts.

Inputs are validated here for shape; rules that need the database or the
pricing models live in the services. Outputs write money with
billing/money.py and timestamps with billing/periods.isoformat.
"""

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from billing.api.fields import CurrencyField, DecimalStringField, TimezoneField
from billing.models import MONEY, Account, Charge, Tariff
from billing.money import format_amount, format_quantity
from billing.periods import billing_period_problem, isoformat
from billing.selectors import AccountUsage
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


def account_out(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "currency": account.currency,
        "timezone": account.timezone,
        "created_at": isoformat(account.created_at),
    }


def tariff_out(tariff: Tariff) -> dict[str, Any]:
    return {
        "id": tariff.id,
        "name": tariff.name,
        "currency": tariff.currency,
        "unit": tariff.unit,
        "billing_period": tariff.billing_period,
        "model": tariff.model,
        **tariff.params,
        "fixed_fee": format_amount(tariff.fixed_fee),
        "minimum": format_amount(tariff.minimum),
        "created_at": isoformat(tariff.created_at),
    }


def usage_out(usage: AccountUsage) -> dict[str, Any]:
    return {
        "period": {"start": isoformat(usage.period_start), "end": isoformat(usage.period_end)},
        "currency": usage.currency,
        "total": format_amount(usage.total),
        "meters": [
            {
                "id": meter.meter_id,
                "usage": format_quantity(meter.usage),
                "amount": format_amount(meter.amount),
            }
            for meter in usage.meters
        ],
    }


def charge_out(charge: Charge) -> dict[str, Any]:
    """Needs `charge.reading` loaded (select_related) to stay one query per page."""
    return {
        "id": str(charge.id),
        "meter": charge.meter_id,
        "reading_id": charge.reading.reading_id,
        "reading_ts": isoformat(charge.reading.ts),
        "quantity": format_quantity(charge.quantity),
        "amount": format_amount(charge.amount),
        "currency": charge.currency,
        "rated_at": isoformat(charge.rated_at),
        "period_start": isoformat(charge.period_start),
        "late": charge.late,
        "lines": charge.lines,
    }
