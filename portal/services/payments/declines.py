"""PAY-6: what a declined charge means, in plain words, and what to do next.

Seed 001 (CRC): the bank declined it; try another card or call the number on the back of the card;
retrying a card declined minutes ago will not help.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l

CALL_BANK = _l("Call the number on the back of the card, or use another card. Trying the same card again "
               "minutes later will not help.")
OTHER_CARD = _l("Use another card.")

_EXPLANATIONS = {
    "generic_decline": (_l("The bank declined the card without giving a reason."), CALL_BANK),
    "card_declined": (_l("The bank declined the card without giving a reason."), CALL_BANK),
    "insufficient_funds": (_l("The card does not have enough funds for this amount."),
                           _l("Use another card, or add funds and try again later.")),
    "lost_card": (_l("The card was reported lost, so the bank refused it."), OTHER_CARD),
    "stolen_card": (_l("The card was reported stolen, so the bank refused it."), OTHER_CARD),
    "expired_card": (_l("The card has expired."), _l("Add a card with a current expiry date.")),
    "incorrect_cvc": (_l("The security code (CVC) did not match."),
                      _l("Enter the card again with the 3 or 4 digit code from its back, or use another card.")),
    "processing_error": (_l("The card network had a temporary problem processing the card."),
                         _l("Try again in a little while; if it fails again, use another card.")),
    "do_not_honor": (_l("The bank declined the card (\"do not honor\")."), CALL_BANK),
    "card_velocity_exceeded": (_l("The card has reached its limit for the number or amount of payments."),
                               _l("Call the bank to raise the limit, or use another card.")),
    "authentication_required": (_l("The bank requires the cardholder to confirm this payment (3-D Secure)."),
                                _l("Open the payment link in the portal and confirm the payment with your bank.")),
    "fraudulent": (_l("The bank declined the card because it suspects fraud."), CALL_BANK),
    "network_error": (_l("We did not get an answer from the card processor, so the outcome is not known yet."),
                      _l("Do not charge again: we check with the processor within minutes and update this payment.")),
    "api_error": (_l("The card processor had an internal error, so the outcome is not known yet."),
                  _l("Do not charge again: we check with the processor within minutes and update this payment.")),
    "no_card": (_l("There is no card on file for this payment."),
                _l("Add a card in the customer portal; the next retry uses it.")),
    "not_submitted": (_l("The charge never reached the card processor; nothing was charged."),
                      _l("Try the payment again.")),
}
DEFAULT = (_l("The card was declined."), CALL_BANK)
HARD_DECLINES = {"lost_card", "stolen_card", "expired_card", "fraudulent", "do_not_honor", "pickup_card",
                 "restricted_card", "invalid_account", "new_account_information_available", "card_not_supported",
                 "incorrect_number", "invalid_number"}


@dataclass(frozen=True)
class Explanation:
    """Read in the current language each time it is shown: an email queued by the job runner (no request, so no
    customer locale) still explains the decline in the recipient's language, as the mailer renders under it."""
    code: str
    _reason: object = field(repr=False)
    _next_step: object = field(repr=False)

    @property
    def reason(self) -> str:
        return str(self._reason)

    @property
    def next_step(self) -> str:
        return str(self._next_step)

    @property
    def staff_next_step(self) -> str:
        """What staff do (English, with the code): the staff pages' wording; customers read `next_step`."""
        step = _STAFF_STEPS.get(self.code) or (_STAFF_HARD if is_hard_decline(self.code) else _STAFF_DEFAULT)
        return f"{step} (Code: {self.code}.)"

    def __str__(self) -> str:
        return f"{self.reason} {self.next_step}"


# What staff do about a decline (English, staff pages and CSV): the customer reads the plain wording above.
_STAFF_STEPS = {
    "insufficient_funds": "Ask the customer for another card, or retry after they add funds.",
    "expired_card": "Ask the customer to add a card with a current expiry date (or send a card request).",
    "incorrect_cvc": "Ask the customer to enter the card again with its security code.",
    "processing_error": "Retry later; if it fails again, ask for another card.",
    "card_velocity_exceeded": "Ask the customer to call their bank to raise the limit, or use another card.",
    "authentication_required": "The customer must confirm the payment with their bank in the portal; "
                               "do not charge off session again.",
    "network_error": "Do not charge again: the reconciler settles the outcome within minutes.",
    "api_error": "Do not charge again: the reconciler settles the outcome within minutes.",
    "no_card": "Send a card request; the next retry uses the new card.",
    "not_submitted": "Nothing was charged; charge again.",
}
_STAFF_HARD = "Hard decline: do not retry this card; ask the customer for another card."
_STAFF_DEFAULT = "Ask the customer to call their bank or give another card; retrying the same card now will not help."


def staff_text(code: str | None, processor_message: str | None = None) -> str:
    """The staff wording of a decline: what the bank said, its code, and what staff should do next."""
    head, tail = staff_parts(code)
    detail = f" Processor: “{processor_message}”." if processor_message else ""
    return f"{head}{detail}{tail}"


def staff_parts(code: str | None) -> tuple[str, str]:
    """The staff wording around the processor's message: (reason and code, what to do)."""
    code = code or "card_declined"
    reason, _step = _EXPLANATIONS.get(code, DEFAULT)
    with force_locale("en"):
        text = f"{reason} Code: {code}."
    step = _STAFF_STEPS.get(code) or (_STAFF_HARD if is_hard_decline(code) else _STAFF_DEFAULT)
    return text, f" What to do: {step}"


def known_codes() -> set[str]:
    """Every decline code with its own wording or step (any other code reads as DEFAULT with the default step)."""
    return set(_EXPLANATIONS) | set(_STAFF_STEPS) | HARD_DECLINES


def explain(code: str | None) -> Explanation:
    reason, step = _EXPLANATIONS.get(code or "", DEFAULT)
    return Explanation(code or "card_declined", reason, step)


def is_hard_decline(code: str | None) -> bool:
    """D-3: not retried on the same card."""
    return (code or "") in HARD_DECLINES
