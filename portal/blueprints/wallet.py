"""P-7, W-1 … W-5: the customer's wallet."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from portal import clock
from portal.blueprints.actions import run_action
from portal.blueprints.portal_session import current_customer
from portal.extensions import db
from portal.forms.payments import AddCardForm, CardActionForm
from portal.services import cards, gateway
from portal.services.errors import ServiceError

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


@bp.post("/wallet/cards/<int:card_id>/default")
def make_default(card_id: int):
    if CardActionForm().validate_on_submit():
        run_action(lambda: cards.set_default(current_customer, card_id),
                   lambda card: _("%(card)s is now your default card.", card=card.label))
    return redirect(url_for(".index"))


@bp.post("/wallet/cards/<int:card_id>/remove")
def remove(card_id: int):
    if CardActionForm().validate_on_submit():
        run_action(lambda: cards.remove(current_customer, card_id),
                   lambda card: _("Card %(card)s removed.", card=card.label))
    return redirect(url_for(".index"))
