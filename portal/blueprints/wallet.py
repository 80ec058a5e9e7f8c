"""P-7, W-1 … W-5: the customer's wallet."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from portal import clock
from portal.blueprints.actions import run_action
from portal.blueprints.portal_session import current_customer
from portal.extensions import db
from portal.forms.payments import AddCardForm, CardActionForm
from portal.models import Card, ChargeAttempt
from portal.services.errors import ServiceError, ValidationError
from portal.services.payments import cards, charges, gateway

bp = Blueprint("wallet", __name__)


def card_entry(purpose: str = "wallet") -> dict:
    """What the card element needs; empty when Stripe cannot be reached (the page says so).
    purpose "payment": the pay form decides whether the card stays on file, not the webhook."""
    try:
        secret = cards.start_setup(current_customer, purpose=purpose)
    except gateway.StripeError:
        db.session.rollback()
        return {}
    db.session.commit()
    return {"client_secret": secret, "publishable_key": gateway.publishable_key(), "js_url": gateway.stripe_js_url()}


def card_choices(form) -> list[Card]:
    """Fill a pay form's "Pay with" radio: the saved cards (default first chosen) and "A new card"."""
    saved = cards.active_cards(current_customer)
    form.card_id.choices = [(str(c.id), c.label) for c in saved] + [("new", _("A new card"))]
    if not form.card_id.data:
        default = next((c for c in saved if c.is_default), None)
        form.card_id.data = str(default.id) if default else "new"
    if not form.token.data:
        form.token.data = charges.new_token()
    return saved


def chosen_card(form, *, on_file: bool, if_paid: bool = True) -> Card:
    """The saved card picked, or the new card just confirmed with Stripe.js (committed, so it is ours
    even if the charge fails). Raises NotFound / ValidationError.

    A new card with `on_file` ("save this card") goes on file only when its payment succeeds (`if_paid`): a
    declined card is forgotten (`forget_if_done`) and never becomes the default."""
    if form.card_id.data != "new":
        return cards.card_of(current_customer, form.card_id.data)
    if not form.setup_intent.data:
        raise ValidationError("card_id", _("Enter the card details."))
    card = cards.save_from_setup_intent(current_customer, form.setup_intent.data, added_by="customer",
                                        on_file=on_file and not if_paid, if_paid=on_file and if_paid)
    db.session.commit()
    return card


def forget_if_done(card: Card | None) -> None:
    """A card used once leaves the file once its payment is settled (`charges.forget_card_used_once`)."""
    if card is not None:
        charges.forget_card_used_once(card.id)
        db.session.commit()


def authenticate_page(outcome: charges.Outcome, confirm_url: str):
    """3-D Secure: the bank's window opens in Stripe.js, then the form posts to `confirm_url`."""
    return render_template("portal/invoices/authenticate.html", attempt=outcome.attempt, confirm_url=confirm_url,
                           client_secret=outcome.client_secret, publishable_key=gateway.publishable_key(),
                           js_url=gateway.stripe_js_url(), action=CardActionForm())


def back_from_bank(attempt_id: int, *conditions) -> tuple[ChargeAttempt, charges.Outcome]:
    """The customer's own attempt (matching `conditions`), checked with Stripe after the bank's confirmation
    window; 404 for anything else. Returns the attempt and its outcome."""
    attempt = charges.customer_attempt(current_customer, attempt_id, *conditions)
    if not CardActionForm().validate_on_submit():
        abort(404)
    confirm_with_bank(attempt)
    forget_if_done(attempt.card)
    return attempt, charges._outcome_of(attempt)


def confirm_with_bank(attempt: ChargeAttempt) -> None:
    """Back from the bank's confirmation: ask Stripe what happened; an unconfirmed attempt is given up."""
    if attempt.status not in charges.OPEN or not attempt.stripe_payment_intent_id:
        return
    try:
        intent = gateway.retrieve_payment_intent(attempt.stripe_payment_intent_id)
    except gateway.StripeError:
        db.session.rollback()
        return
    outcome = charges.record_intent(attempt, intent)
    db.session.commit()
    if outcome.status == "requires_action":
        charges.give_up(attempt, attempt.stripe_payment_intent_id, "The payment was not confirmed.")
        db.session.commit()


@bp.get("/wallet")
def index():
    return render_template("portal/wallet.html", cards=cards.active_cards(current_customer), today=clock.today(),
                           form=AddCardForm(), action=CardActionForm(), entry=card_entry())


@bp.post("/wallet/cards")
def add():
    form = AddCardForm()
    if not form.validate_on_submit():
        flash(_("The form expired. Enter the card again."), "error")
        return redirect(url_for(".index"))
    try:
        card = cards.save_from_setup_intent(current_customer, form.setup_intent.data, added_by="customer")
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".index"))
    db.session.commit()
    flash(_("Card %(card)s saved.", card=card.label) + (" " + _("It is your default card.") if card.is_default else ""),
          "success")
    return redirect(url_for(".index"))


def _own_card(card_id: int) -> None:
    """Another customer's card, or a removed one, is simply not there (404)."""
    card = db.session.get(Card, card_id)
    if card is None or card.customer_id != current_customer.id:
        abort(404)  # a removed card of one's own is the action's to explain


@bp.post("/wallet/cards/<int:card_id>/default")
def make_default(card_id: int):
    _own_card(card_id)
    if CardActionForm().validate_on_submit():
        run_action(lambda: cards.set_default(current_customer, card_id),
                   lambda card: _("%(card)s is now your default card.", card=card.label))
    return redirect(url_for(".index"))


@bp.post("/wallet/cards/<int:card_id>/remove")
def remove(card_id: int):
    _own_card(card_id)
    if CardActionForm().validate_on_submit():
        run_action(lambda: cards.remove(current_customer, card_id),
                   lambda card: _("Card %(card)s removed.", card=card.label))
    return redirect(url_for(".index"))
