"""Forms and field checks several admin domains share; each domain's own forms live beside its views."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import Length, Optional, StopValidation, ValidationError


class ConfirmForm(FlaskForm):
    """A bare form for POST buttons: CSRF only."""


class EditCardForm(FlaskForm):
    nickname = StringField("Nickname (staff only)", validators=[Optional(), Length(max=60)])
    kind = SelectField("Kind", choices=[("personal", "Personal"), ("hsa_fsa", "HSA / FSA")])


class RemoveCardForm(FlaskForm):
    confirm = BooleanField("I understand")


def finite(form, field):
    if field.data is not None and not field.data.is_finite():
        raise StopValidation("Enter a number.")  # stop: range checks cannot compare NaN


def plausible_date(form, field):
    """Dates a business works with: far-off years are typos (and would overflow date arithmetic)."""
    if field.data is not None and not 2000 <= field.data.year <= 2100:
        raise ValidationError("Enter a date between the years 2000 and 2100.")
