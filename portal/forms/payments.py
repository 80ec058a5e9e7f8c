"""Portal payment and wallet forms. Amount rules live in services.charges; these only carry input."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, StringField
from wtforms.validators import Length, Optional


class AddCardForm(FlaskForm):
    setup_intent = HiddenField()


class CardActionForm(FlaskForm):
    """A card button (make default, remove, back from the bank): CSRF only."""


class PayInvoiceForm(FlaskForm):
    amount = StringField(_l("Amount to pay"), validators=[Length(max=20)])
    card_id = RadioField(_l("Pay with"), choices=[], validate_choice=False)
    save_card = BooleanField(_l("Save this card for future payments"), default=True)
    setup_intent = HiddenField(validators=[Optional(), Length(max=80)])
    token = HiddenField(validators=[Length(max=64)])


class AcceptPlanForm(FlaskForm):
    """SP-3: choose the billing frequency and the card, pay the first payment."""
    frequency = RadioField(_l("How often to be billed"), choices=[], validate_choice=False)
    card_id = RadioField(_l("Pay with"), choices=[], validate_choice=False)
    setup_intent = HiddenField(validators=[Optional(), Length(max=80)])
    token = HiddenField(validators=[Length(max=64)])


class PlanCardForm(FlaskForm):
    """SP-11: the card that pays the plan."""
    card_id = RadioField(_l("Card for this plan"), choices=[], validate_choice=False)
    setup_intent = HiddenField(validators=[Optional(), Length(max=80)])
    token = HiddenField(validators=[Length(max=64)])


class PayAllForm(FlaskForm):
    """INV-4: pay several invoices in one charge. `total` is the sum the customer saw, in cents."""
    ids = HiddenField(validators=[Length(max=2000)])
    plans = HiddenField(validators=[Length(max=2000)])  # P-1: outstanding plan payments paid with the invoices
    total = HiddenField(validators=[Length(max=20)])
    card_id = RadioField(_l("Pay with"), choices=[], validate_choice=False)
    save_card = BooleanField(_l("Save this card for future payments"), default=True)
    setup_intent = HiddenField(validators=[Optional(), Length(max=80)])
    token = HiddenField(validators=[Length(max=64)])
