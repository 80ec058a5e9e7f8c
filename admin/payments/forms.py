"""Cards on file, charges, hand-recorded payments and refunds."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField
from wtforms.validators import Length, Optional


class AddCardForm(FlaskForm):
    """W-2: the card itself goes to Stripe through the card element; we get the SetupIntent id."""
    setup_intent = HiddenField()
    nickname = StringField("Nickname (staff only)", validators=[Optional(), Length(max=60)])
    kind = SelectField("Kind", choices=[("personal", "Personal"), ("hsa_fsa", "HSA / FSA")], default="personal")
    make_default = BooleanField("Make this the default card")


class ChargeForm(FlaskForm):
    """PAY-2: charge a card on file, full balance or another amount."""
    card_id = SelectField("Card", choices=[], validate_choice=False)
    invoice_id = SelectField("Apply to", choices=[], validate_choice=False)
    amount = StringField("Amount", validators=[Length(max=20)])
    token = HiddenField(validators=[Length(max=64)])


class ManualPaymentForm(FlaskForm):
    """PAY-1: cash, check or other, recorded by hand."""
    method = SelectField("Method", choices=[("cash", "Cash"), ("check", "Check"), ("other", "Other")])
    amount = StringField("Amount", validators=[Length(max=20)])
    reference = StringField("Reference (check number)", validators=[Optional(), Length(max=120)])
    invoice_id = SelectField("Apply to", choices=[], validate_choice=False)
    token = HiddenField(validators=[Length(max=64)])


class RefundForm(FlaskForm):
    """R-1: amount box and reason."""
    amount = StringField("Amount to refund", validators=[Length(max=20)])
    reason = StringField("Reason", validators=[Optional(), Length(max=300)])
    still_owed = BooleanField("The customer still owes this (bill the refunded amount again on the invoice)")
    token = HiddenField(validators=[Length(max=64)])
