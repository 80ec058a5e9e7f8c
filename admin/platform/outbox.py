"""N-2: every email with its delivery status."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from admin import bp
from admin.forms import ConfirmForm
from portal.extensions import db
from portal.models.mail import EMAIL_STATUSES
from portal.services.platform import mailer


@bp.get("/outbox")
def outbox():
    status = request.args.get("status")
    return render_template("admin/outbox/list.html", page=mailer.outbox(status, request.args.get("page")),
                           statuses=EMAIL_STATUSES, status=status)


@bp.get("/outbox/<int:email_id>")
def outbox_email(email_id: int):
    email = mailer.load_email(email_id)
    return render_template("admin/outbox/email.html", email=email, confirm=ConfirmForm(),
                           attachments=mailer.attachment_names(email))


@bp.post("/outbox/<int:email_id>/retry")
def outbox_retry(email_id: int):
    email = mailer.load_email(email_id)
    if ConfirmForm().validate_on_submit() and mailer.queue_again(email):
        db.session.commit()  # delivery claims the row in its own transaction
        result = mailer.deliver([email.id])
        flash("Sent." if result["sent"] else "Not sent yet; the error is shown below.",
              "success" if result["sent"] else "error")
    return redirect(url_for("admin.outbox_email", email_id=email_id))
