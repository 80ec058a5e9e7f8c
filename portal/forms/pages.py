"""Portal forms for messages, reschedule requests and estimates. Rules live in the services."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, StringField, TextAreaField
from wtforms.validators import Length, Optional


class MessageForm(FlaskForm):
    name = StringField(_l("Your name"))
    phone = StringField(_l("Phone (optional)"))
    body = TextAreaField(_l("Message"))


class ApproveEstimateForm(FlaskForm):
    name = StringField(_l("Type your full name to sign"))
    card_id = RadioField(_l("Pay the deposit with"), choices=[], validate_choice=False)
    save_card = BooleanField(_l("Save this card for future payments"), default=True)
    setup_intent = HiddenField(validators=[Optional(), Length(max=80)])
    token = HiddenField(validators=[Length(max=64)])


class DeclineEstimateForm(FlaskForm):
    reason = TextAreaField(_l("Reason (optional)"))
