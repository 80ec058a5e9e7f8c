"""Invoices and their automation."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import Length, Optional

from admin.forms import plausible_date


class InvoiceForm(FlaskForm):
    form_key = HiddenField(validators=[Length(max=64)])
    issue_date = DateField("Issue date", validators=[Optional(), plausible_date])
    due_date = DateField("Due date", validators=[Optional(), plausible_date])
    discount_percent = StringField("Discount %", validators=[Length(max=10)])
    tax_percent = StringField("Tax %", validators=[Length(max=10)])
    notes = TextAreaField("Notes for the customer", validators=[Length(max=10_000)])


class VoidForm(FlaskForm):
    reason = StringField("Reason", validators=[Length(max=600)])


class AutomationsForm(FlaskForm):
    """INV-5, INV-6: Settings › Invoices › Automations."""
    reminders_enabled = BooleanField("Send invoice reminders")
    reminder_days = StringField("Remind this many days after the due date", validators=[Length(max=60)])
    autopay_enabled = BooleanField("AutoPay: charge enrolled customers' due invoices every night (00:00–02:00)")


class AutoPayForm(FlaskForm):
    """INV-6: a customer's AutoPay enrolment."""
    enabled = HiddenField()


class CadenceForm(FlaskForm):
    """INV-3: a customer's automatic-invoicing cadence (checked by the service, so a forged value gets a message)."""
    cadence = SelectField("Automatic invoicing", choices=[], validate_choice=False)


class BatchSendForm(FlaskForm):
    """INV-4: the invoices picked for one email (the ids are checked by the service)."""
