"""Jobs, visits and estimates."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import Length, Optional

from admin.forms import plausible_date


class JobForm(FlaskForm):
    form_key = HiddenField(validators=[Length(max=64)])
    title = StringField("Title", validators=[Length(max=400)])
    description = TextAreaField("Description", validators=[Length(max=10_000)])
    address = StringField("Address", validators=[Length(max=800)])
    technician_id = SelectField("Technician", choices=[], validate_choice=False)


class VisitForm(FlaskForm):
    day = DateField("Date", validators=[Optional(), plausible_date])
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
    valid_until = DateField("Valid until", validators=[Optional(), plausible_date])
