"""Customer record, client card, custom fields and the inbox."""
from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    DecimalField,
    EmailField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Email, Length, NumberRange, Optional, Regexp, ValidationError

from admin.forms import finite, plausible_date
from portal.models.customers import CATEGORIES, CONTACT_CHANNELS, CUSTOMER_STATUSES, LANGUAGES
from portal.services.crm.custom_fields import TYPE_LABELS as CUSTOM_FIELD_TYPE_LABELS

PHONE_RE = re.compile(r"^\+?[0-9 ()./-]{7,25}$")


def _phone(form, field):
    if field.data and not PHONE_RE.match(field.data.strip()):
        raise ValidationError("Enter a phone number using digits, spaces, +, -, ( and ).")
    if field.data and sum(ch.isdigit() for ch in field.data) < 7:
        raise ValidationError("A phone number needs at least 7 digits.")


def _birthday(field):
    if field.data is not None and not 1900 <= field.data.year <= 2100:
        raise ValidationError("Enter a birthday after 1900.")


class CustomerForm(FlaskForm):
    """C-1, C-2, C-3: the basic record."""

    kind = SelectField("Kind", choices=[("individual", "Individual"), ("business", "Business")])
    first_name = StringField("First name", validators=[Optional(), Length(max=80)])
    last_name = StringField("Last name", validators=[Optional(), Length(max=80)])
    company_name = StringField("Company name", validators=[Optional(), Length(max=160)])
    email = EmailField("Primary email", validators=[
        Optional(), Length(max=254, message="That email address is too long."),
        Email("Enter a valid email address, like name@example.com.", check_deliverability=False)])
    phone = StringField("Mobile phone", validators=[Optional(), Length(max=25), _phone])
    service_line1 = StringField("Service address", validators=[Optional(), Length(max=200)])
    service_line2 = StringField("Address line 2", validators=[Optional(), Length(max=200)])
    service_city = StringField("City", validators=[Optional(), Length(max=100)])
    service_region = StringField("State / region", validators=[Optional(), Length(max=100)])
    service_postal_code = StringField("Postal code", validators=[
        Optional(), Length(max=20), Regexp(r"^[A-Za-z0-9 -]*$", message="Use letters, digits, spaces and -.")])
    preferred_language = SelectField("Preferred language",
                                     choices=[("en", "English"), ("es", "Español"), ("ru", "Русский")])
    status = SelectField("Status", choices=[(s, s.title()) for s in CUSTOMER_STATUSES], default="lead")
    blacklist_reason = StringField("Blacklist reason", validators=[Optional(), Length(max=500)])
    category = SelectField("Category", choices=[("", "—")] + [(c, c) for c in CATEGORIES], default="")
    discount_percent = DecimalField("Personal discount %", places=2, validators=[
        Optional(), finite,
        NumberRange(min=0, max=100, message="Enter a discount between 0 and 100.")],
        render_kw={"inputmode": "decimal"})
    lead_source = StringField("Lead source", validators=[Optional(), Length(max=120)])
    manager_id = SelectField("Manager", coerce=str, default="")
    birthday = DateField("Birthday", validators=[Optional(), lambda form, field: _birthday(field)])
    tags = StringField("Tags (comma separated)", validators=[Optional(), Length(max=500)])

    def validate_preferred_language(self, field):
        if field.data not in LANGUAGES:
            raise ValidationError("Choose a language.")

    def validate_discount_percent(self, field):
        if field.data is not None and field.data.is_finite() and field.data.as_tuple().exponent < -2:
            raise ValidationError("Use at most two decimal places.")


class NoteForm(FlaskForm):
    body = TextAreaField("New note", validators=[Length(max=10_000)])


class ContactForm(FlaskForm):
    channel = SelectField("How", choices=[(c, c.title() if c != "sms" else "SMS") for c in CONTACT_CHANNELS])
    contacted_at = DateTimeLocalField("When", format="%Y-%m-%dT%H:%M", validators=[Optional(), plausible_date])
    outcome = TextAreaField("Outcome", validators=[Length(max=10_000)])


class TaskForm(FlaskForm):
    due_at = DateTimeLocalField("When", format="%Y-%m-%dT%H:%M", validators=[Optional(), plausible_date])
    note = StringField("What about", validators=[Length(max=10_000)])
    assignee_id = SelectField("Assigned to", choices=[], validate_choice=False)


class ReassignForm(FlaskForm):
    manager_id = SelectField("Manager", choices=[], validate_choice=False)


class DeleteCustomerForm(FlaskForm):
    confirm_name = StringField("Type the customer's name to confirm")


class CustomFieldEditForm(FlaskForm):
    """Editing a field: everything but its type (existing values were validated for that type)."""
    label = StringField("Label", validators=[Length(max=200)])
    required = BooleanField("Required")
    options = TextAreaField("Choices (one per line, for lists)", validators=[Length(max=5000)])
    active = BooleanField("Shown on client cards", default=True)


class CustomFieldForm(CustomFieldEditForm):
    field_type = SelectField("Type", choices=[(k, v) for k, v in CUSTOM_FIELD_TYPE_LABELS.items()])


class ReplyForm(FlaskForm):
    body = TextAreaField("Reply by email", validators=[Length(max=5000)])
