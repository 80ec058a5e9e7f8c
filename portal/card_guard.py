"""G-4: card numbers never reach our server. The card element sends them to Stripe; if someone types
one into any other field (a note, a check reference, a nickname), the request is refused before any
view runs, so it is never stored, emailed or logged by us."""
from __future__ import annotations

import re

from flask import Flask, request
from flask_babel import lazy_gettext as _l

_CANDIDATE = re.compile(r"(?<![\d])(?:\d[ -]?){12,18}\d(?![\d])")


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


def contains_card_number(text: str | None) -> bool:
    if not text:
        return False
    for match in _CANDIDATE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and _luhn(digits) and len(set(digits)) > 1:
            return True
    return False


def init_app(app: Flask) -> None:
    @app.before_request
    def refuse_nul_in_query():
        if any("\x00" in v for v in request.args.values()):
            from portal.errors import _render

            return _render(400, _l("Bad request"), _l("We could not understand that request."))
        return None

    @app.before_request
    def refuse_card_numbers():
        if request.method != "POST" or (request.endpoint or "").startswith("webhooks."):
            return None
        if any("\x00" in v for v in request.form.values()):
            from portal.errors import _render

            return _render(400, _l("Bad request"), _l("The form contained characters that cannot be saved. "
                                                      "Nothing was saved."))
        if any(contains_card_number(v) for v in request.form.values()) or \
                any(contains_card_number(v) for v in request.args.values()):
            from portal.errors import _render

            return _render(400, _l("Card numbers cannot be entered here"),
                           _l("That looks like a card number. For your security, card numbers are only accepted in "
                              "the card field, which sends them straight to our payment processor. Go back, remove "
                              "it and try again. Nothing was saved."))
        return None
