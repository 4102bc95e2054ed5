"""The currencies Meterline bills in (ISO 4217 codes) and their minor units.

Invoices round each line and total to the currency's minor unit; an account or
tariff in a currency missing here is refused rather than rounded by guesswork.
"""

MINOR_UNITS: dict[str, int] = {
    "AUD": 2,
    "BHD": 3,
    "BRL": 2,
    "CAD": 2,
    "CHF": 2,
    "CNY": 2,
    "CZK": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "HUF": 2,
    "INR": 2,
    "ISK": 0,
    "JOD": 3,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "MXN": 2,
    "NOK": 2,
    "NZD": 2,
    "OMR": 3,
    "PLN": 2,
    "SEK": 2,
    "SGD": 2,
    "TND": 3,
    "USD": 2,
    "ZAR": 2,
}


def currency_check(code: str) -> str | None:
    """Why `code` is not a currency we bill in, or None when it is."""
    if len(code) != 3 or not code.isascii() or not code.isalpha() or not code.isupper():
        return 'must be a 3-letter uppercase ISO 4217 code, e.g. "EUR"'
    if code not in MINOR_UNITS:
        return f"{code!r} is not a supported currency"
    return None


def minor_units(code: str) -> int:
    """Decimal places of the currency's minor unit: EUR 2, JPY 0, KWD 3."""
    return MINOR_UNITS[code]
