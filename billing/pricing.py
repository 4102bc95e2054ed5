"""Tariff pricing: pure functions on Decimal, no Django.

Each pricing model says what a reading of `quantity` costs when the period's
usage stands at `usage_before`, as exact lines (one per tier it crosses, a
volume repricing, a time-of-use band...). `rate` adds the lines to the
period's exact running price and rounds at the boundary only:

    charge = round6(exact price after) - round6(exact price before)

so a period's charges always add up to exactly round6(its exact price), for
every model and whatever the order, size and split of its readings. For the
models priced on the period's usage alone (all but time_of_use) the exact
price after n readings is price(total usage): the charges add up to the
tariff's price of the period's total, to the last of 6 decimal places.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Protocol

SIX_PLACES = Decimal("0.000001")
# Usage has at most 30 digits and prices at most 30: 100 digits never round,
# and should anything ever be inexact, Inexact is raised rather than swallowed.
EXACT = Context(prec=100, traps=[Inexact, InvalidOperation, Overflow, DivisionByZero])
_ROUNDING = Context(prec=100, rounding=ROUND_HALF_UP)
ZERO = Decimal(0)


def round6(amount: Decimal) -> Decimal:
    """Round half up to 6 places: the one place where Meterline rounds a charge."""
    return amount.quantize(SIX_PLACES, context=_ROUNDING)


@dataclass(frozen=True)
class Line:
    """Part of a reading's price, exact: `quantity` units at `unit_price` cost `amount`."""

    description: str
    quantity: Decimal
    unit_price: Decimal | None
    amount: Decimal


class PricingModel(Protocol):
    def lines(
        self, *, usage_before: Decimal, quantity: Decimal, local_time: datetime
    ) -> list[Line]:
        """The exact price of `quantity` more units, at `local_time` in the account's zone."""


class UsagePriced(PricingModel, Protocol):
    def price(self, usage: Decimal) -> Decimal:
        """The exact price of a period's total usage."""


# --- the models ----------------------------------------------------------------


@dataclass(frozen=True)
class PerUnit:
    unit_price: Decimal

    def price(self, usage: Decimal) -> Decimal:
        return usage * self.unit_price

    def lines(
        self, *, usage_before: Decimal, quantity: Decimal, local_time: datetime
    ) -> list[Line]:
        return [Line("usage", quantity, self.unit_price, quantity * self.unit_price)]


@dataclass(frozen=True)
class Tier:
    """Usage above the previous tier's `up_to`, up to and including this `up_to` (None: no end)."""

    up_to: Decimal | None
    unit_price: Decimal


def _tier_name(tiers: Sequence[Tier], index: int) -> str:
    low = ZERO if index == 0 else tiers[index - 1].up_to
    high = tiers[index].up_to
    return (
        f"tier {index + 1} ({low} to {high})"
        if high is not None
        else f"tier {index + 1} (over {low})"
    )


@dataclass(frozen=True)
class Graduated:
    """Each unit at the price of the tier it falls in."""

    tiers: tuple[Tier, ...]

    def price(self, usage: Decimal) -> Decimal:
        return sum((line.amount for line in self._split(ZERO, usage)), ZERO)

    def lines(
        self, *, usage_before: Decimal, quantity: Decimal, local_time: datetime
    ) -> list[Line]:
        return self._split(usage_before, usage_before + quantity)

    def _split(self, low: Decimal, high: Decimal) -> list[Line]:
        """One line per tier that the usage from `low` to `high` passes through."""
        lines = []
        floor = ZERO
        for index, tier in enumerate(self.tiers):
            start = max(low, floor)
            end = high if tier.up_to is None else min(high, tier.up_to)
            if end > start:
                quantity = end - start
                name = _tier_name(self.tiers, index)
                lines.append(Line(name, quantity, tier.unit_price, quantity * tier.unit_price))
            if tier.up_to is None or high <= tier.up_to:
                break
            floor = tier.up_to
        return lines


@dataclass(frozen=True)
class Volume:
    """All of the period's usage at the price of the tier the usage reaches."""

    tiers: tuple[Tier, ...]

    def tier_of(self, usage: Decimal) -> int:
        for index, tier in enumerate(self.tiers):
            if tier.up_to is None or usage <= tier.up_to:
                return index
        raise AssertionError("the last tier is open")

    def price(self, usage: Decimal) -> Decimal:
        return usage * self.tiers[self.tier_of(usage)].unit_price

    def lines(
        self, *, usage_before: Decimal, quantity: Decimal, local_time: datetime
    ) -> list[Line]:
        before = self.tiers[self.tier_of(usage_before)]
        index = self.tier_of(usage_before + quantity)
        after = self.tiers[index]
        lines = [
            Line(
                _tier_name(self.tiers, index),
                quantity,
                after.unit_price,
                quantity * after.unit_price,
            )
        ]
        if usage_before and after.unit_price != before.unit_price:
            # Crossing into another tier reprices the period's earlier usage.
            change = after.unit_price - before.unit_price
            description = f"earlier usage repriced from {before.unit_price} to {after.unit_price}"
            lines.append(Line(description, usage_before, change, usage_before * change))
        return lines


@dataclass(frozen=True)
class Package:
    """Usage sold in whole packages: ceil(usage / package_size) x package_price."""

    package_size: Decimal
    package_price: Decimal

    def packages(self, usage: Decimal) -> Decimal:
        whole, rest = divmod(usage, self.package_size)
        return whole + 1 if rest else whole

    def price(self, usage: Decimal) -> Decimal:
        return self.packages(usage) * self.package_price

    def lines(
        self, *, usage_before: Decimal, quantity: Decimal, local_time: datetime
    ) -> list[Line]:
        opened = self.packages(usage_before + quantity) - self.packages(usage_before)
        description = f"{opened} new package(s) of {self.package_size}"
        return [Line(description, quantity, None, opened * self.package_price)]


@dataclass(frozen=True)
class Band:
    """From `start` to `end` (local wall-clock time) on `days` (Monday=0).

    A band whose end is not after its start crosses midnight: it runs from
    `start` on each of its days to `end` on the next day. `end` of
    time(0) means midnight at the end of the day.
    """

    name: str
    days: frozenset[int]
    start: time
    end: time
    unit_price: Decimal

    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def covers(self, moment: datetime) -> bool:
        clock, day = moment.time(), moment.weekday()
        if not self.crosses_midnight():
            return day in self.days and self.start <= clock < self.end
        return (day in self.days and clock >= self.start) or (
            (day - 1) % 7 in self.days and clock < self.end
        )


@dataclass(frozen=True)
class TimeOfUse:
    """Each unit at the price of the band its reading's local time falls in."""

    bands: tuple[Band, ...]
    default_unit_price: Decimal

    def band_at(self, local_time: datetime) -> Band | None:
        return next((band for band in self.bands if band.covers(local_time)), None)

    def lines(
        self, *, usage_before: Decimal, quantity: Decimal, local_time: datetime
    ) -> list[Line]:
        band = self.band_at(local_time)
        name, price = (band.name, band.unit_price) if band else ("default", self.default_unit_price)
        return [Line(f"band {name}", quantity, price, quantity * price)]


# --- rating --------------------------------------------------------------------


@dataclass(frozen=True)
class RatedLine:
    description: str
    quantity: Decimal
    unit_price: Decimal | None
    amount: Decimal  # rounded: the lines of a charge add up to its amount


@dataclass(frozen=True)
class Rated:
    amount: Decimal
    lines: tuple[RatedLine, ...]
    usage_after: Decimal
    exact_after: Decimal


def rate(
    model: PricingModel,
    *,
    usage_before: Decimal,
    exact_before: Decimal,
    quantity: Decimal,
    local_time: datetime,
) -> Rated:
    """The charge for `quantity` more units in a period whose exact price so far is `exact_before`.

    Each line's amount is rounded the same telescoping way as the charge, so
    the lines add up to the charge and the charges to the period's price.
    """
    with localcontext(EXACT):
        running = exact_before
        rated = []
        for line in model.lines(
            usage_before=usage_before, quantity=quantity, local_time=local_time
        ):
            after = running + line.amount
            amount = round6(after) - round6(running)
            rated.append(RatedLine(line.description, line.quantity, line.unit_price, amount))
            running = after
        return Rated(
            amount=round6(running) - round6(exact_before),
            lines=tuple(rated),
            usage_after=usage_before + quantity,
            exact_after=running,
        )
