"""Money in integer minor units (G-1)."""
from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from babel import Locale
from babel.numbers import NumberPattern, get_currency_precision
from flask import has_request_context
from flask_babel import get_locale
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
    return _formatted(int(cents), currency, locale)


@lru_cache(maxsize=8192)
def _formatted(cents: int, currency: str, locale: str) -> str:
    """Babel's formatting costs ~60 µs; report pages repeat the same amounts (fees, zeros, plan prices)."""
    parsed, pattern = _currency_pattern(locale)
    return pattern.apply(to_decimal(cents, currency), parsed, currency=currency)  # = format_currency(...)


@lru_cache(maxsize=64)
def _currency_pattern(locale: str) -> tuple[Locale, NumberPattern]:
    """The parsed locale and its standard currency pattern: what `format_currency` looks up on every call (parsing
    the locale checks its data file on disk each time); amounts that miss the cache above (a night's plan bills,
    each its own price) were paying for it."""
    parsed = Locale.parse(locale)
    return parsed, parsed.currency_formats["standard"]


def format_money_here(cents: int | None, currency: str = "USD") -> str:
    """An amount in the language of the page being answered (issue 19: an error message formats it as the page
    does: "0,50 US$" in Spanish), else in English."""
    locale = str(get_locale() or "en") if has_request_context() else "en"
    return format_money(cents, currency, locale="en_US" if locale == "en" else locale)


def percent_of(cents: int, basis_points: int) -> int:
    """Basis points (1 % = 100) of an amount, rounded half up to the cent."""
    return int((Decimal(cents) * basis_points / Decimal(10_000)).to_integral_value(ROUND_HALF_UP))


def to_input(cents: int | None, currency: str = "USD") -> str:
    """What a money box shows for an amount: 1250 -> "12.50" (the currency's own decimals, no symbol)."""
    if cents is None:
        return ""
    return f"{to_decimal(cents, currency):f}"


def percent_to_input(basis_points: int | None) -> str:
    """What a percent box shows for basis points: 825 -> "8.25", 290 -> "2.9", 1000 -> "10"."""
    text = f"{Decimal(basis_points or 0).scaleb(-2):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def parse_percent_bp(text: str | None, *, blank: int | None = 0, invalid=None) -> int:
    """'7.25', '7,25' or '7.25 %' -> 725 basis points, exactly. More than two decimals is refused, never
    rounded or truncated (0.305 is an error, not 30). The range is the caller's (service's) rule."""
    invalid = invalid or "Enter a percentage, like 10 or 7.25."  # staff forms only: not translated
    cleaned = (text or "").strip().rstrip("%").strip().replace(",", ".")
    if not cleaned:
        if blank is None:
            raise MoneyError(invalid)
        return blank
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise MoneyError(invalid) from None
    if not value.is_finite() or abs(value) > 1000:
        raise MoneyError(invalid)
    if value != value.quantize(Decimal("0.01")):
        raise MoneyError("Use at most two decimals, like 7.25.")
    return int(value.scaleb(2))
