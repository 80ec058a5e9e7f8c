"""P-6: the staff inbox of portal messages and reschedule requests; mark handled, reply by email."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from admin import bp
from admin.crm.forms import ReplyForm
from admin.forms import ConfirmForm
from portal.blueprints.actions import run_action, run_form
from portal.services.crm import messages


def _inbox(reply_to: int | None = None, form: ReplyForm | None = None, status_code: int = 200):
    status = request.args.get("status", "new")
    inbox = messages.inbox(status, request.args.get("page", 1, type=int) or 1)
    return render_template("admin/messages/inbox.html", inbox=inbox, status=status, confirm=ConfirmForm(),
                           reply_form=form or ReplyForm(formdata=None), reply_to=reply_to), status_code


@bp.get("/messages")
def messages_inbox():
    return _inbox()


@bp.post("/messages/<int:message_id>/handled")
def message_handled(message_id: int):
    message = messages.load(message_id)
    if ConfirmForm().validate_on_submit():
        handled = run_action(lambda: messages.mark_handled(message, current_user),
                             lambda ok: f"Message from {message.name} marked handled." if ok else None)
        if handled is False:
            flash("That message was already handled.", "error")
    return redirect(url_for("admin.messages_inbox", status=request.args.get("status", "new")))


@bp.post("/messages/<int:message_id>/reply")
def message_reply(message_id: int):
    message = messages.load(message_id)
    form = ReplyForm()
    if not form.validate_on_submit():
        form.body.errors = list(form.body.errors) or ["The form expired; try again."]
        return _inbox(message.id, form, 400)
    done = run_form(form, lambda: messages.reply(message, current_user, form.body.data), "body")
    if not done:
        return _inbox(message.id, form, done.status)
    flash(f"Reply emailed to {message.customer.display_name}.", "success")
    return redirect(url_for("admin.messages_inbox", status=request.args.get("status", "new")))
