"""Tariff pricing: pure functions on Decimal, no Django.

A tariff prices a period's usage U. A reading that moves the period's usage
from `before` to `after` is charged round6(price(after)) - round6(price(before)),
so however the usage is split into readings, the period's charges telescope
to exactly round6(price(total usage)).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol

SIX_PLACES = Decimal("0.000001")


class TariffError(ValueError):
    """A tariff's parameters are invalid. `field` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def round6(amount: Decimal) -> Decimal:
    return amount.quantize(SIX_PLACES, rounding=ROUND_HALF_UP)


class PricingModel(Protocol):
    def price(self, usage: Decimal) -> Decimal:
        """The price of a period's total usage, at full precision."""


@dataclass(frozen=True)
class PerUnit:
    unit_price: Decimal

    def price(self, usage: Decimal) -> Decimal:
        return usage * self.unit_price


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None  # None: the open last tier
    unit_price: Decimal


@dataclass(frozen=True)
class Graduated:
    """Each unit at the price of the tier it falls in."""

    tiers: tuple[Tier, ...]

    def price(self, usage: Decimal) -> Decimal:
        total = Decimal(0)
        floor = Decimal(0)
        for tier in self.tiers:
            ceiling = usage if tier.up_to is None else min(usage, tier.up_to)
            if ceiling > floor:
                total += (ceiling - floor) * tier.unit_price
            if tier.up_to is None or usage <= tier.up_to:
                break
            floor = tier.up_to
        return total


def charge_amount(model: PricingModel, *, before: Decimal, after: Decimal) -> Decimal:
    """What moving the period's usage from `before` to `after` costs, to 6 places."""
    return round6(model.price(after)) - round6(model.price(before))


# --- Building a model from the API's fields ------------------------------------


def parse_decimal(value: Any, field: str, *, minimum: Decimal | None = Decimal(0)) -> Decimal:
    """A finite decimal from a string; floats are refused so no binary rounding sneaks in."""
    if not isinstance(value, str):
        raise TariffError(field, 'must be a decimal string, e.g. "0.25"')
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise TariffError(field, f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise TariffError(field, "must be a finite number")
    if minimum is not None and number < minimum:
        raise TariffError(field, f"must be at least {minimum}")
    return number


def parse_tiers(raw: Any) -> tuple[Tier, ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise TariffError("tiers", "must be a non-empty list of {up_to, unit_price}")
    tiers: list[Tier] = []
    previous = Decimal(0)
    for index, item in enumerate(raw):
        where = f"tiers[{index}]"
        if not isinstance(item, Mapping):
            raise TariffError(where, "must be an object with up_to and unit_price")
        unit_price = parse_decimal(item.get("unit_price"), f"{where}.unit_price")
        last = index == len(raw) - 1
        up_to_raw = item.get("up_to")
        if up_to_raw is None:
            if not last:
                raise TariffError(f"{where}.up_to", "only the last tier may be open (null)")
            up_to = None
        else:
            up_to = parse_decimal(up_to_raw, f"{where}.up_to")
            if up_to <= previous:
                raise TariffError(f"{where}.up_to", "tiers must ascend: each up_to above the last")
            if last:
                raise TariffError(f"{where}.up_to", "the last tier must be open (up_to: null)")
            previous = up_to
        tiers.append(Tier(up_to=up_to, unit_price=unit_price))
    return tuple(tiers)


def pricing_model(model: str, params: Mapping[str, Any]) -> PricingModel:
    """The pricing model named `model` with its fields from `params`."""
    if model == "per_unit":
        return PerUnit(unit_price=parse_decimal(params.get("unit_price"), "unit_price"))
    if model == "graduated":
        return Graduated(tiers=parse_tiers(params.get("tiers")))
    raise TariffError("model", f"unknown pricing model {model!r}")


MODEL_FIELDS: dict[str, tuple[str, ...]] = {
    "per_unit": ("unit_price",),
    "graduated": ("tiers",),
}
