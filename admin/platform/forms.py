"""Staff login and accounts, business and payment settings."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DecimalField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, InputRequired, Length, NumberRange, Optional

from admin.forms import finite
from portal.models.staff import ROLES


class StaffLoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email."), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=200)])


class TwoFactorLoginForm(FlaskForm):
    code = StringField("Code from your authenticator app, or a recovery code", validators=[
        DataRequired("Enter the code."), Length(max=40)])


class TwoFactorEnrolForm(FlaskForm):
    code = StringField("6-digit code from the app", validators=[DataRequired("Enter the code."), Length(max=20)])


class SecuritySettingsForm(FlaskForm):
    require_staff_2fa = BooleanField("Require two-factor authentication for all staff")


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


class BusinessForm(FlaskForm):
    """The business as customers see it, document terms, deposits (W-6)."""
    name = StringField("Business name", validators=[DataRequired("Enter the business name."), Length(max=160)])
    email = EmailField("Email customers write to", validators=[Optional(), Email("Enter a valid email address."),
                                                               Length(max=254)])
    phone = StringField("Phone", validators=[Optional(), Length(max=32)])
    address = StringField("Address", validators=[Optional(), Length(max=400)])
    invoice_due_days = DecimalField("Invoices are due after (days)", places=0, validators=[
        InputRequired("Enter a number of days."), finite, NumberRange(0, 365, "Between 0 and 365 days.")])
    default_tax = StringField("Default tax %", validators=[  # parsed by portal.money.parse_percent_bp
        InputRequired("Enter a percentage, like 8.25 (0 for none)."), Length(max=10)],
        render_kw={"inputmode": "decimal"})
    require_card_for_deposits = BooleanField("Estimate deposits always save the card on file (the payer sees "
                                             "consent text instead of a checkbox)")


class PaymentSettingsForm(FlaskForm):
    """PAY-5, R-3."""
    # Parsed by portal.money (exactly: 0.305 % is refused, not cut to 0.30 %); the ranges are the service's rule.
    fee_percent = StringField("Processing fee, percent of each card payment",
                              validators=[InputRequired("Enter a percentage, like 2.95."), Length(max=10)],
                              render_kw={"inputmode": "decimal"})
    fee_fixed = StringField("Processing fee, fixed amount per card payment",
                            validators=[InputRequired("Enter an amount, like 0.30."), Length(max=20)],
                            render_kw={"inputmode": "decimal"})
    refund_window_days = DecimalField("Card refunds allowed for (days after the payment)", places=0,
                                      validators=[DataRequired("Enter a number of days."), finite,
                                                  NumberRange(1, 365, "Between 1 and 365 days.")])
    dunning_hours = StringField("Retry failed plan card payments after (hours after the first failure)",
                                validators=[Optional(), Length(max=60)])
