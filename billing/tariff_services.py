"""Writes of the operator API on tariffs: validated once here, priced by billing/pricing.py."""

from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError

from billing.models import Tariff
from billing.tariffs import TariffError, pricing_model

# Bounds on every decimal in a tariff's model fields, so that no tariff can
# make the rating arithmetic overflow or carry absurd precision.
PARAM_LIMIT = Decimal(10) ** 18
PARAM_MAX_PLACES = 12


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
    for path, text in _decimal_strings(params):
        number = Decimal(text.strip())
        if abs(number) >= PARAM_LIMIT:
            raise ValidationError({path: [f"must be below {PARAM_LIMIT:,f}"]})
        if -number.as_tuple().exponent > PARAM_MAX_PLACES:  # type: ignore[operator]
            raise ValidationError({path: [f"at most {PARAM_MAX_PLACES} decimal places"]})
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


def _decimal_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Each decimal string inside `value`, with its path as the API names it."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _decimal_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _decimal_strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        try:
            Decimal(value.strip())
        except InvalidOperation:
            return
        yield path, value
