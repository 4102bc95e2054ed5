"""How amounts and quantities are written on the wire: decimal strings, never floats."""

from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation

from billing.currencies import minor_units
from billing.pricing import round6

_HALF_UP = Context(prec=100, rounding=ROUND_HALF_UP)


def format_amount(amount: Decimal) -> str:
    """Money to exactly 6 places: "12.340000"."""
    text = f"{round6(amount):f}"
    return "0.000000" if text == "-0.000000" else text


def format_quantity(quantity: Decimal) -> str:
    """Usage to at most 6 places, without trailing zeros: "41.2", "100"."""
    rounded = round6(quantity)
    if rounded == 0:
        return "0"
    text = f"{rounded.normalize():f}"
    return text


def parse_quantity(text: str) -> Decimal:
    """The inverse of the wire format, for values we wrote ourselves."""
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a decimal string: {text!r}") from None


def round_minor(amount: Decimal, currency: str) -> Decimal:
    """Round half up to the currency's minor unit (EUR 2 places, JPY 0, KWD 3): invoices only."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), context=_HALF_UP)


def format_minor(amount: Decimal, currency: str) -> str:
    """An invoice figure with exactly the currency's minor digits: "12.34", "1234"."""
    return f"{round_minor(amount, currency):f}"
