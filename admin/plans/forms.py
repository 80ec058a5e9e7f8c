"""Plan templates, customer plans, add-ons, the plan's card, collecting and cancelling."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional


class PlanTermsForm(FlaskForm):
    """SP-1: a template's (or a customer plan's) name, visits and prices per frequency."""
    name = StringField("Name", validators=[DataRequired("Enter the plan's name."), Length(max=160)])
    description = TextAreaField("Description (the customer sees it)", validators=[Optional(), Length(max=4000)])
    visits_per_year = StringField("Visits per year", validators=[Optional(), Length(max=4)])
    price_monthly = StringField("Monthly price", validators=[Optional(), Length(max=20)])
    price_quarterly = StringField("Quarterly price", validators=[Optional(), Length(max=20)])
    price_yearly = StringField("Yearly price", validators=[Optional(), Length(max=20)])


class PlanTemplateForm(PlanTermsForm):
    is_active = BooleanField("Offered (shown when creating a customer plan)", default=True)


class CustomerPlanForm(PlanTermsForm):
    template_id = HiddenField()
    payment_method = SelectField("Paid by", choices=[("card", "Card (the customer pays and accepts in the portal)"),
                                                     ("cash", "Cash"), ("check", "Check"), ("other", "Other")])
    start_date = DateField("Start date", validators=[Optional()])
    end_date = DateField("End date (optional: the plan expires after it)", validators=[Optional()])
    form_key = HiddenField(validators=[Length(max=64)])


class ActivatePlanForm(FlaskForm):
    frequency = SelectField("Billing frequency", choices=[], validate_choice=False)
    start_date = DateField("First payment due", validators=[Optional()])


class AddonForm(FlaskForm):
    """AO-2, AO-3."""
    name = StringField("Add-on", validators=[DataRequired("Enter the add-on's name."), Length(max=160)])
    amount = StringField("Amount (per bill when recurring; the total otherwise)", validators=[Length(max=20)])
    payment_plan = SelectField("Payment plan", choices=[("recurring", "Recurring (every bill)"),
                                                        ("one_time", "One time (next bill only)"),
                                                        ("installments", "Installments")])
    installments = StringField("Number of installments", validators=[Optional(), Length(max=4)])
    start_date = DateField("Start date", validators=[Optional()])
    end_date = DateField("End date", validators=[Optional()])
    confirm = BooleanField("Save anyway (the payment would be incomplete)")


class PlanCardForm(FlaskForm):
    """SP-10: the plan's card, and what happens to outstanding payments."""
    card_id = SelectField("Card", choices=[], validate_choice=False)
    setup_intent = HiddenField(validators=[Optional(), Length(max=80)])
    outstanding = SelectField("Outstanding payments", choices=[
        ("", "— choose —"), ("charge", "Charge this card for all outstanding payments"),
        ("mark_paid", "Mark all outstanding payments as paid")], validate_choice=False)
    token = HiddenField(validators=[Length(max=64)])


class PlanPayForm(FlaskForm):
    """SP-13: collect an outstanding payment now."""
    payment_id = SelectField("Payment", choices=[], validate_choice=False)
    method = SelectField("How", choices=[("card", "Charge a card on file"), ("cash", "Cash"), ("check", "Check"),
                                         ("other", "Other")])
    card_id = SelectField("Card", choices=[], validate_choice=False)
    reference = StringField("Reference (check number)", validators=[Optional(), Length(max=120)])
    token = HiddenField(validators=[Length(max=64)])


class CancelPlanForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[Length(max=500)])
    refund_last = BooleanField("Refund the last card payment")
    write_off = BooleanField("Also write off the outstanding payments")
    token = HiddenField(validators=[Length(max=64)])
