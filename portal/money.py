"""Money in integer minor units (G-1)."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, ROUND_HALF_UP

from babel.numbers import format_currency, get_currency_precision
from flask_babel import lazy_gettext as _l

MIN_CHARGE_CENTS = 50  # PAY-4
MAX_CHARGE_CENTS = 99_999_999


class MoneyError(ValueError):
    pass


def _normalise(text: str) -> str:
    """Accept the ways people type money in en, es and ru: "1,234.50", "1.234,50", "1 234,50", "49,99".
    The last "." or "," followed by one or two digits is the decimal mark; the others group thousands."""
    cleaned = re.sub(r"[\s\u00a0\u202f$€£₽]", "", text.strip())
    cleaned = re.sub(r"(?i)(US|USD|EUR|RUB|руб\.?)$", "", cleaned)
    match = re.search(r"[.,](\d{1,2})$", cleaned)
    if match:
        whole = re.sub(r"[.,]", "", cleaned[:match.start()])
        return f"{whole}.{match.group(1)}"
    if cleaned.count(".") > 1:  # "1.234.567": dots group thousands
        cleaned = cleaned.replace(".", "")
    return re.sub(r",(?=\d{3}(\D|$))", "", cleaned)  # "1,234" is 1234; a lone "1.234" stays ambiguous: refused


def parse_amount(text: str | None, currency: str = "USD") -> int:
    """'1,234.50' -> 123450. Raises MoneyError with a message fit for a form."""
    if text is None or not str(text).strip():
        raise MoneyError(_l("Enter an amount."))
    cleaned = _normalise(str(text))
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise MoneyError(_l("Enter an amount as a number, like 49.99.")) from None
    if not value.is_finite():
        raise MoneyError(_l("Enter an amount as a number, like 49.99."))
    if value < 0:
        raise MoneyError(_l("The amount cannot be negative."))
    precision = get_currency_precision(currency)
    if value > Decimal(MAX_CHARGE_CENTS):  # also keeps quantize away from huge exponents like 1e30
        raise MoneyError(_l("The amount is too large."))
    try:
        exact = value == value.quantize(Decimal(1).scaleb(-precision))
    except InvalidOperation:
        exact = False
    if not exact:
        raise MoneyError(_l("Use at most %(n)d decimal places.", n=precision))
    cents = int((value * (10**precision)).to_integral_value(ROUND_HALF_UP))
    if cents > MAX_CHARGE_CENTS:
        raise MoneyError(_l("The amount is too large."))
    return cents


def to_decimal(cents: int, currency: str = "USD") -> Decimal:
    return Decimal(cents).scaleb(-get_currency_precision(currency))


def format_money(cents: int | None, currency: str = "USD", locale: str = "en_US") -> str:
    if cents is None:
        return ""
    return format_currency(to_decimal(cents, currency), currency, locale=locale)


def percent_of(cents: int, basis_points: int) -> int:
    """Basis points (1 % = 100) of an amount, rounded half up to the cent."""
    return int((Decimal(cents) * basis_points / Decimal(10_000)).to_integral_value(ROUND_HALF_UP))
