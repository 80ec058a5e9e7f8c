from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField
from wtforms.validators import DataRequired, Email, Length


class RequestLinkForm(FlaskForm):
    """A-5."""

    email = EmailField(_l("Email address"), validators=[
        DataRequired(message=_l("Enter your email address.")),
        Length(max=254, message=_l("That email address is too long.")),
        Email(message=_l("Enter a valid email address, like name@example.com."), check_deliverability=False),
    ])
