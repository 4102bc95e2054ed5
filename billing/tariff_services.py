"""Writes of the operator API on tariffs: validated once here, priced by billing/pricing.py."""

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError

from billing.models import Tariff
from billing.tariffs import TariffError, pricing_model


def tariff_create(
    *,
    name: str,
    currency: str,
    unit: str,
    billing_period: str,
    model: str,
    params: Mapping[str, Any],
    fixed_fee: Decimal,
    minimum: Decimal,
) -> Tariff:
    """A tariff whose `params` (the model's fields, decimal strings) price usage as given."""
    try:
        pricing_model(model, params)
    except TariffError as error:
        raise ValidationError({error.field: [error.message]}) from None
    return Tariff.objects.create(
        name=name,
        currency=currency,
        unit=unit,
        billing_period=billing_period,
        model=model,
        params=dict(params),
        fixed_fee=fixed_fee,
        minimum=minimum,
    )
