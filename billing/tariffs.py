"""Tariff fields as the API receives them, checked and turned into pricing models.

Pure: no Django. Every problem raises `TariffError` naming the field the way
the API names it (`tiers[1].up_to`, `bands[0].start`), so the operator sees
exactly what to fix.
"""

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, time
from decimal import Decimal
from typing import Any

from billing.pricing import (
    Band,
    Graduated,
    Package,
    PerUnit,
    PricingModel,
    Tier,
    TimeOfUse,
    Volume,
)

# The fields each model takes besides the common ones (name, currency, ...).
MODEL_FIELDS: dict[str, tuple[str, ...]] = {
    "per_unit": ("unit_price",),
    "graduated": ("tiers",),
    "volume": ("tiers",),
    "package": ("package_size", "package_price"),
    "time_of_use": ("bands", "default_unit_price"),
}
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Both patterns are used with fullmatch only: `$` also matches before a final
# newline, so "0.25\n" passed and was stored raw. ASCII digits: `\d` takes any.
CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
# Plain notation: ASCII digits, optional sign and fraction. Python's Decimal
# would also take "1_000", " 1", "1e3" and non-ASCII digits.
DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# Bounds that keep every product of usage and price exact and inside the
# money columns: prices below a billion, quantities below 10^15, 12 places.
PRICE_LIMIT = Decimal(10) ** 9
QUANTITY_LIMIT = Decimal(10) ** 15
MAX_PLACES = 12
MAX_NAME = 64


class TariffError(ValueError):
    """A tariff's fields are invalid. `field` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def pricing_model(model: str, params: Mapping[str, Any]) -> PricingModel:
    """The pricing model named `model` with its fields from `params`."""
    if model == "per_unit":
        return PerUnit(unit_price=parse_price(params.get("unit_price"), "unit_price"))
    if model == "graduated":
        return Graduated(tiers=parse_tiers(params.get("tiers")))
    if model == "volume":
        return Volume(tiers=parse_tiers(params.get("tiers")))
    if model == "package":
        size = parse_decimal(params.get("package_size"), "package_size")
        if size == 0:
            raise TariffError("package_size", "must be greater than 0")
        return Package(
            package_size=size,
            package_price=parse_price(params.get("package_price"), "package_price"),
        )
    if model == "time_of_use":
        return TimeOfUse(
            bands=parse_bands(params.get("bands")),
            default_unit_price=parse_price(params.get("default_unit_price"), "default_unit_price"),
        )
    raise TariffError("model", f"unknown pricing model {model!r}")


def parse_decimal(
    value: Any,
    field: str,
    *,
    minimum: Decimal | None = Decimal(0),
    below: Decimal = QUANTITY_LIMIT,
    max_places: int = MAX_PLACES,
) -> Decimal:
    """A decimal in plain notation ("0.25") within bounds; floats and exotic spellings refused."""
    if not isinstance(value, str):
        raise TariffError(field, 'must be a decimal string, e.g. "0.25"')
    if not DECIMAL.fullmatch(value):
        raise TariffError(field, f'{value[:40]!r} is not a decimal string such as "0.25"')
    number = Decimal(value)
    if minimum is not None and number < minimum:
        raise TariffError(field, f"must be at least {minimum}")
    if abs(number) >= below:
        raise TariffError(field, f"must be below {below:,f}")
    if len(value.partition(".")[2]) > max_places:
        raise TariffError(field, f"at most {max_places} decimal places")
    return number


def parse_price(value: Any, field: str) -> Decimal:
    return parse_decimal(value, field, below=PRICE_LIMIT)


def parse_tiers(raw: Any) -> tuple[Tier, ...]:
    """Ascending `up_to`s, only the last open (`up_to: null`); boundaries may be fractional."""
    if not _is_list(raw) or not raw:
        raise TariffError("tiers", "must be a non-empty list of {up_to, unit_price}")
    tiers: list[Tier] = []
    previous = Decimal(0)
    for index, item in enumerate(raw):
        where = f"tiers[{index}]"
        if not isinstance(item, Mapping):
            raise TariffError(where, "must be an object with up_to and unit_price")
        unit_price = parse_price(item.get("unit_price"), f"{where}.unit_price")
        last = index == len(raw) - 1
        if item.get("up_to") is None:
            if not last:
                raise TariffError(f"{where}.up_to", "only the last tier may be open (null)")
            tiers.append(Tier(up_to=None, unit_price=unit_price))
            continue
        up_to = parse_decimal(item.get("up_to"), f"{where}.up_to")
        if up_to <= previous:
            raise TariffError(
                f"{where}.up_to", f"tiers must ascend: up_to must be above {previous}"
            )
        if last:
            raise TariffError(f"{where}.up_to", "the last tier must be open (up_to: null)")
        previous = up_to
        tiers.append(Tier(up_to=up_to, unit_price=unit_price))
    return tuple(tiers)


def parse_bands(raw: Any) -> tuple[Band, ...]:
    """Bands of local wall-clock time that do not overlap; a band may cross midnight."""
    if not _is_list(raw):
        raise TariffError("bands", "must be a list of {name, days, start, end, unit_price}")
    bands = tuple(_parse_band(item, f"bands[{index}]") for index, item in enumerate(raw))
    _check_no_overlap(bands)
    return bands


def _parse_band(item: Any, where: str) -> Band:
    if not isinstance(item, Mapping):
        raise TariffError(where, "must be an object with name, days, start, end, unit_price")
    name = item.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        raise TariffError(f"{where}.name", f"must be a string of 1 to {MAX_NAME} characters")
    days = item.get("days")
    if (
        not _is_list(days)
        or not days
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days)
        or len(set(days)) != len(days)
    ):
        raise TariffError(
            f"{where}.days", "must be a non-empty list of distinct days 0-6 (Monday=0)"
        )
    start_text, end_text = item.get("start"), item.get("end")
    start = _parse_clock(start_text, f"{where}.start", allow_24=False)
    end = _parse_clock(end_text, f"{where}.end", allow_24=True)
    if start_text == end_text:
        raise TariffError(f"{where}.end", "must differ from start (a whole day is 00:00 to 24:00)")
    return Band(
        name=name,
        days=frozenset(days),
        start=start,
        end=end,
        unit_price=parse_price(item.get("unit_price"), f"{where}.unit_price"),
    )


def _parse_clock(value: Any, field: str, *, allow_24: bool) -> time:
    if allow_24 and value == "24:00":
        return time(0)
    match = CLOCK.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        limit = "24:00" if allow_24 else "23:59"
        raise TariffError(field, f'must be a local time "HH:MM" from 00:00 to {limit}')
    return time(int(match[1]), int(match[2]))


def _minutes_of_week(band: Band) -> set[int]:
    start = band.start.hour * 60 + band.start.minute
    end = band.end.hour * 60 + band.end.minute
    length = (end - start) % 1440 or 1440
    return {(day * 1440 + start + offset) % 10080 for day in band.days for offset in range(length)}


def _check_no_overlap(bands: Sequence[Band]) -> None:
    taken: dict[int, int] = {}
    for index, band in enumerate(bands):
        for minute in sorted(_minutes_of_week(band)):
            other = taken.setdefault(minute, index)
            if other != index:
                day, clock = divmod(minute, 1440)
                raise TariffError(
                    f"bands[{index}]",
                    f"overlaps bands[{other}] on {DAY_NAMES[day]} at "
                    f"{clock // 60:02d}:{clock % 60:02d}",
                )


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def assignment_at(assignments: Sequence[Any], at: datetime) -> Any:
    """The tariff assignment in force at `at`, from a meter's assignments in order of
    `effective_from`: the latest that began by then, else the first (a reading dated
    before its meter existed is rated on the meter's first tariff)."""
    chosen = assignments[0]
    for assignment in assignments[1:]:
        if assignment.effective_from > at:
            break
        chosen = assignment
    return chosen
