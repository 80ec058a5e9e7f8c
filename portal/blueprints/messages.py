"""P-6: "Send message" from every page; the customer's sent messages."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from portal.blueprints.actions import run_form
from portal.blueprints.portal_session import current_customer
from portal.extensions import limiter
from portal.forms.pages import MessageForm
from portal.models import MessageRequest, Visit
from portal.services.crm import messages

bp = Blueprint("messages", __name__)


def _customer_key() -> str:
    return f"customer-{current_customer.id}" if current_customer else "anonymous"


# One shared budget for messages and reschedule requests (each emails staff).
message_limit = limiter.shared_limit(lambda: current_app.config["PORTAL_MESSAGE_LIMIT"], scope="portal-messages",
                                     key_func=_customer_key, methods=["POST"])


def message_form() -> MessageForm:
    form = MessageForm()
    if not form.is_submitted():
        form.name.data = current_customer.display_name
        form.phone.data = current_customer.mobile_phone or (current_customer.phones[0].number
                                                            if current_customer.phones else "")
    return form


def post_message(form: MessageForm, visit: Visit | None = None) -> MessageRequest | None:
    """Send, or put the reason on the form and return None."""
    if not form.validate_on_submit():
        form.form_errors.append(_("The form expired. Please try again."))
        return None
    done = run_form(form, lambda: messages.send(current_customer, name=form.name.data, phone=form.phone.data,
                                                body=form.body.data, visit=visit), "body")
    return done.result if done else None


@bp.get("/messages")
def index():
    page = messages.sent_by(current_customer, request.args.get("page"))
    return render_template("portal/messages/list.html", messages=page.items, page=page)


@bp.route("/messages/new", methods=["GET", "POST"])
@message_limit
def new():
    form = message_form()
    if request.method == "POST":
        if post_message(form) is not None:
            flash(_("Thanks! Your message was sent. We will get back to you soon."), "success")
            return redirect(url_for(".index"))
        return render_template("portal/messages/new.html", form=form), 400
    return render_template("portal/messages/new.html", form=form)
