"""Portal payment and wallet forms. Amount rules live in services.charges; these only carry input."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, StringField
from wtforms.validators import Length, Optional


class AddCardForm(FlaskForm):
    setup_intent = HiddenField()


class CardActionForm(FlaskForm):
    pass


class PayInvoiceForm(FlaskForm):
    amount = StringField(_l("Amount to pay"), validators=[Length(max=20)])
    card_id = RadioField(_l("Pay with"), choices=[], validate_choice=False)
    save_card = BooleanField(_l("Save this card for future payments"), default=True)
    setup_intent = HiddenField(validators=[Optional(), Length(max=80)])
    token = HiddenField(validators=[Length(max=64)])
