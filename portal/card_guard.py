"""G-4: card numbers never reach our server. The card element sends them to Stripe; if someone types
one into any other field (a note, a check reference, a nickname), the request is refused before any
view runs, so it is never stored, emailed or logged by us.

Issue 18: however it is written. The text is read as groups of digits: full-width and other Unicode decimal
digits count as digits, invisible characters (zero-width spaces and joiners, soft hyphens, combining marks) are
ignored, and groups are joined across short separators of any kind (spaces and other whitespace including
newlines, dashes, dots, slashes, backslashes, underscores, bars; at most 3 in a row). Any run of consecutive
groups holding 13–19 digits that passes the Luhn check (and is not one digit repeated) is a card number — so a
number after other digits ("unit 7 4242 4242 4242 4242") is found too. Letters and other punctuation (commas,
parentheses, colons) end a run, which keeps phone numbers, amounts, dates and invoice numbers out. Every value of
every field (repeated fields included), the field names, the query string and JSON bodies are checked.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator

from flask import Flask, request
from flask_babel import lazy_gettext as _l

MAX_SEPARATOR = 3  # characters between two groups of one number ("4242 - 4242" still joins)
_SEPARATORS = set("-./\\_|·•") | {"\u2212", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u30fb"}


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def _kind(ch: str) -> str:
    if ch.isdecimal():
        return "digit"
    if ch.isspace() or ch in _SEPARATORS:
        return "separator"
    category = unicodedata.category(ch)
    if category in ("Cf", "Mn", "Me") or ch in "\u034f\u115f\u1160\u3164\uffa0":  # invisible: skipped
        return "invisible"
    if category == "Pd":  # any other dash
        return "separator"
    return "break"


def _digit_runs(text: str) -> Iterator[list[str]]:
    """Runs of digit groups (ASCII digits), each run split where a letter, other punctuation or a long separator
    stands between two groups."""
    groups: list[str] = []
    current: list[str] = []
    gap = 0
    for ch in text:
        kind = _kind(ch)
        if kind == "digit":
            if gap > MAX_SEPARATOR and groups:
                yield groups
                groups = []
            gap = 0
            current.append(str(unicodedata.decimal(ch)))
        elif kind == "separator":
            if current:
                groups.append("".join(current))
                current = []
            if groups:
                gap += 1
        elif kind == "break":
            if current:
                groups.append("".join(current))
                current = []
            if groups:
                yield groups
            groups, gap = [], 0
    if current:
        groups.append("".join(current))
    if groups:
        yield groups


def contains_card_number(text: str | None) -> bool:
    if not text:
        return False
    for groups in _digit_runs(str(text)):
        for start in range(len(groups)):
            digits = ""
            for group in groups[start:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and _luhn(digits) and len(set(digits)) > 1:
                    return True
    return False


def _json_strings(value, depth: int = 0) -> Iterator[str]:
    """Every string, number and key in a JSON document (nesting bounded)."""
    if depth > 50:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _json_strings(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item, depth + 1)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield str(value)


def request_values() -> Iterable[str]:
    """Everything a request carries as text: every value of every form field and query parameter (repeated ones
    too), their names, and a JSON body."""
    for multi in (request.args, request.form):
        for key, values in multi.lists():
            yield key
            yield from values
    if request.is_json:
        yield from _json_strings(request.get_json(silent=True))


def init_app(app: Flask) -> None:
    from portal.errors import _render

    @app.before_request
    def refuse_nul_in_query():
        if any("\x00" in v for v in request.args.values()):
            return _render(400, _l("Bad request"), _l("We could not understand that request."))
        return None

    @app.before_request
    def refuse_card_numbers():
        if request.method in ("GET", "HEAD", "OPTIONS") or (request.endpoint or "").startswith("webhooks."):
            return None
        values = list(request_values())
        if any("\x00" in v for v in values):
            return _render(400, _l("Bad request"), _l("The form contained characters that cannot be saved. "
                                                      "Nothing was saved."))
        if any(contains_card_number(v) for v in values):
            return _render(400, _l("Card numbers cannot be entered here"),
                           _l("That looks like a card number. For your security, card numbers are only accepted in "
                              "the card field, which sends them straight to our payment processor. Go back, remove "
                              "it and try again. Nothing was saved."))
        return None
