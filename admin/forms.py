"""Staff-side forms: input shape and field validation only."""
from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import (BooleanField, DateField, DateTimeLocalField, DecimalField, EmailField, HiddenField, PasswordField, SelectField,
                     StringField, TextAreaField)
from wtforms.validators import (DataRequired, Email, EqualTo, InputRequired, Length, NumberRange, Optional, Regexp,
                                StopValidation, ValidationError)

from portal.models.customers import CATEGORIES, CONTACT_CHANNELS, CUSTOMER_STATUSES, LANGUAGES
from portal.services.crm.custom_fields import TYPE_LABELS as CUSTOM_FIELD_TYPE_LABELS
from portal.models.staff import ROLES

PHONE_RE = re.compile(r"^\+?[0-9 ()./-]{7,25}$")


class StaffLoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email."), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=200)])


class SetPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[
        DataRequired("Choose a password."), Length(min=10, max=200, message="Use 10 to 200 characters.")])
    confirm = PasswordField("Repeat the password", validators=[
        DataRequired("Repeat the password."), EqualTo("password", message="The passwords do not match.")])


class StaffInviteForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired("Enter a name."), Length(max=120)])
    email = EmailField("Email", validators=[
        DataRequired("Enter an email address."), Length(max=254),
        Email("Enter a valid email address.", check_deliverability=False)])
    role = SelectField("Role", choices=[(r, r.title()) for r in ROLES], default="office")


class StaffRoleForm(FlaskForm):
    role = SelectField("Role", choices=[(r, r.title()) for r in ROLES])


class ConfirmForm(FlaskForm):
    """A bare form for POST buttons: CSRF only."""


def _phone(form, field):
    if field.data and not PHONE_RE.match(field.data.strip()):
        raise ValidationError("Enter a phone number using digits, spaces, +, -, ( and ).")
    if field.data and sum(ch.isdigit() for ch in field.data) < 7:
        raise ValidationError("A phone number needs at least 7 digits.")


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
        Optional(), lambda form, field: _finite(form, field),
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


class AddCardForm(FlaskForm):
    """W-2: the card itself goes to Stripe through the card element; we get the SetupIntent id."""
    setup_intent = HiddenField()
    nickname = StringField("Nickname (staff only)", validators=[Optional(), Length(max=60)])
    kind = SelectField("Kind", choices=[("personal", "Personal"), ("hsa_fsa", "HSA / FSA")], default="personal")
    make_default = BooleanField("Make this the default card")


class EditCardForm(FlaskForm):
    nickname = StringField("Nickname (staff only)", validators=[Optional(), Length(max=60)])
    kind = SelectField("Kind", choices=[("personal", "Personal"), ("hsa_fsa", "HSA / FSA")])


class RemoveCardForm(FlaskForm):
    confirm = BooleanField("I understand")


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
    token = HiddenField(validators=[Length(max=64)])


def _birthday(field):
    if field.data is not None and not 1900 <= field.data.year <= 2100:
        raise ValidationError("Enter a birthday after 1900.")


def _finite(form, field):
    if field.data is not None and not field.data.is_finite():
        raise StopValidation("Enter a number.")  # stop: range checks cannot compare NaN


class BusinessForm(FlaskForm):
    """The business as customers see it, document terms, deposits (W-6)."""
    name = StringField("Business name", validators=[DataRequired("Enter the business name."), Length(max=160)])
    email = EmailField("Email customers write to", validators=[Optional(), Email("Enter a valid email address."),
                                                               Length(max=254)])
    phone = StringField("Phone", validators=[Optional(), Length(max=32)])
    address = StringField("Address", validators=[Optional(), Length(max=400)])
    invoice_due_days = DecimalField("Invoices are due after (days)", places=0, validators=[
        InputRequired("Enter a number of days."), _finite, NumberRange(0, 365, "Between 0 and 365 days.")])
    default_tax = DecimalField("Default tax %", places=2, validators=[
        InputRequired("Enter a percentage, like 8.25 (0 for none)."), _finite,
        NumberRange(0, 50, "Between 0 and 50 percent.")])
    require_card_for_deposits = BooleanField("Estimate deposits always save the card on file (the payer sees "
                                             "consent text instead of a checkbox)")


class PaymentSettingsForm(FlaskForm):
    """PAY-5, R-3."""
    fee_percent = DecimalField("Processing fee, percent of each card payment", places=2,
                               validators=[InputRequired("Enter a percentage, like 2.95."), _finite,
                                           NumberRange(0, 10, "Between 0 and 10 percent.")])
    fee_fixed = DecimalField("Processing fee, fixed amount per card payment", places=2,
                             validators=[InputRequired("Enter an amount, like 0.30."), _finite,
                                         NumberRange(0, 5, "Between 0.00 and 5.00.")])
    refund_window_days = DecimalField("Card refunds allowed for (days after the payment)", places=0,
                                      validators=[DataRequired("Enter a number of days."), _finite,
                                                  NumberRange(1, 365, "Between 1 and 365 days.")])
    dunning_hours = StringField("Retry failed plan card payments after (hours after the first failure)",
                                validators=[Optional(), Length(max=60)])


class ReplyForm(FlaskForm):
    body = TextAreaField("Reply by email", validators=[Length(max=5000)])


def _plausible_date(form, field):
    """Dates a business works with: far-off years are typos (and would overflow date arithmetic)."""
    if field.data is not None and not 2000 <= field.data.year <= 2100:
        raise ValidationError("Enter a date between the years 2000 and 2100.")


# --- Client card (C-4 … C-10) ---------------------------------------------------------------------------

class NoteForm(FlaskForm):
    body = TextAreaField("New note", validators=[Length(max=10_000)])


class ContactForm(FlaskForm):
    channel = SelectField("How", choices=[(c, c.title() if c != "sms" else "SMS") for c in CONTACT_CHANNELS])
    contacted_at = DateTimeLocalField("When", format="%Y-%m-%dT%H:%M", validators=[Optional(), _plausible_date])
    outcome = TextAreaField("Outcome", validators=[Length(max=10_000)])


class TaskForm(FlaskForm):
    due_at = DateTimeLocalField("When", format="%Y-%m-%dT%H:%M", validators=[Optional(), _plausible_date])
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


# --- Jobs, estimates, invoices (INV-1, INV-2, P-5) ---------------------------------------------------------

class JobForm(FlaskForm):
    form_key = HiddenField(validators=[Length(max=64)])
    title = StringField("Title", validators=[Length(max=400)])
    description = TextAreaField("Description", validators=[Length(max=10_000)])
    address = StringField("Address", validators=[Length(max=800)])
    technician_id = SelectField("Technician", choices=[], validate_choice=False)


class VisitForm(FlaskForm):
    day = DateField("Date", validators=[Optional(), _plausible_date])
    start = StringField("From (HH:MM)", default="09:00", validators=[Length(max=5)])
    end = StringField("To (HH:MM)", default="11:00", validators=[Length(max=5)])
    technician_id = SelectField("Technician", choices=[], validate_choice=False)


class StatusForm(FlaskForm):
    status = HiddenField()


class EstimateForm(FlaskForm):
    form_key = HiddenField(validators=[Length(max=64)])
    title = StringField("Title", validators=[Length(max=400)])
    message = TextAreaField("Message to the customer", validators=[Length(max=10_000)])
    deposit = StringField("Deposit required to approve (0 for none)", default="0", validators=[Length(max=20)])
    valid_until = DateField("Valid until", validators=[Optional(), _plausible_date])


class InvoiceForm(FlaskForm):
    form_key = HiddenField(validators=[Length(max=64)])
    issue_date = DateField("Issue date", validators=[Optional(), _plausible_date])
    due_date = DateField("Due date", validators=[Optional(), _plausible_date])
    discount_percent = StringField("Discount %", validators=[Length(max=10)])
    tax_percent = StringField("Tax %", validators=[Length(max=10)])
    notes = TextAreaField("Notes for the customer", validators=[Length(max=10_000)])


class VoidForm(FlaskForm):
    reason = StringField("Reason", validators=[Length(max=600)])


# --- Service plans (SP-*, AO-*) -----------------------------------------------------------------------

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
