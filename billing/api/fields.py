"""Serializer fields for the wire conventions: decimal strings, ISO currencies, IANA zones,
UTC timestamps with a Z.

Inputs parse (DecimalStringField, CurrencyField, TimezoneField); outputs write
money and quantities with billing/money.py, so a response and the schema it is
documented by come from the same field.
"""

import zoneinfo
from decimal import Decimal
from functools import cache
from typing import Any

from rest_framework import serializers
from rest_framework.fields import get_attribute

from billing.currencies import currency_check
from billing.money import format_amount, format_minor, format_quantity
from billing.periods import isoformat
from billing.tariffs import TariffError, parse_decimal


class DecimalStringField(serializers.Field):
    """A finite decimal given as a JSON string; numbers are refused so no float rounding sneaks in.

    `max_places` and `max_digits` match the model field it is stored in, so a
    value is refused rather than rounded or overflowed by the database.
    """

    def __init__(
        self,
        *,
        max_digits: int,
        max_places: int,
        min_value: Decimal = Decimal(0),
        min_exclusive: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.max_digits = max_digits
        self.max_places = max_places
        self.min_value = min_value
        self.min_exclusive = min_exclusive

    def to_internal_value(self, data: Any) -> Decimal:
        try:
            number = parse_decimal(data, self.field_name, minimum=None)
        except TariffError as error:
            raise serializers.ValidationError(error.message) from None
        if self.min_exclusive and number <= self.min_value:
            raise serializers.ValidationError(f"must be greater than {self.min_value}")
        if number < self.min_value:
            raise serializers.ValidationError(f"must be at least {self.min_value}")
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)  # finite, checked above
        if -exponent > self.max_places:
            raise serializers.ValidationError(f"at most {self.max_places} decimal places")
        if abs(number) >= Decimal(10) ** (self.max_digits - self.max_places):
            raise serializers.ValidationError("is too large")
        return number

    def to_representation(self, value: Decimal) -> str:
        return f"{value:f}"


class CurrencyField(serializers.CharField):
    def __init__(self, **kwargs: Any):
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        code = super().to_internal_value(data)
        problem = currency_check(code)
        if problem:
            raise serializers.ValidationError(problem)
        return code


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class TimezoneField(serializers.CharField):
    def __init__(self, **kwargs: Any):
        super().__init__(max_length=64, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        name = super().to_internal_value(data)
        if name not in _timezones():
            raise serializers.ValidationError(
                f'{name!r} is not an IANA time zone name, e.g. "Europe/Berlin"'
            )
        return name


class TimestampField(serializers.DateTimeField):
    """Output: ISO 8601 in UTC with a Z, as the contract shows timestamps."""

    def to_representation(self, value: Any) -> str:
        return isoformat(value)


class DecimalOutField(serializers.Field):
    """Output: a decimal as a JSON string, as `write` puts it; `pattern` and `description`
    say so in the schema (billing/api/schema.py), where responses are checked against them."""

    pattern = r"^-?[0-9]+(\.[0-9]+)?$"
    description = 'a decimal as a string, without trailing zeros: "100000", "0.5"'

    def __init__(self, **kwargs: Any):
        super().__init__(read_only=True, **kwargs)

    def write(self, value: Decimal) -> str:
        return f"{value.normalize():f}"

    def to_representation(self, value: Decimal) -> str:
        return self.write(value)


class AmountField(DecimalOutField):
    pattern = r"^-?[0-9]+\.[0-9]{6}$"
    description = 'money to exactly 6 places: "12.340000"'

    def write(self, value: Decimal) -> str:
        return format_amount(value)


class QuantityField(DecimalOutField):
    pattern = r"^-?[0-9]+(\.[0-9]{0,5}[1-9])?$"
    description = 'usage to at most 6 places, without trailing zeros: "41.2", "100"'

    def write(self, value: Decimal) -> str:
        return format_quantity(value)


class MinorAmountField(DecimalOutField):
    """`currency` is where the object keeps its currency ("currency", "invoice.currency")."""

    description = 'rounded half up to the currency\'s minor unit: "12.34" (EUR), "1234" (JPY)'

    def __init__(self, *, currency: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.currency_attrs = currency.split(".")

    def get_attribute(self, instance: Any) -> tuple[Decimal, str]:
        return super().get_attribute(instance), get_attribute(instance, self.currency_attrs)

    def to_representation(self, value: tuple[Decimal, str]) -> str:
        amount, currency = value
        return format_minor(amount, currency)
