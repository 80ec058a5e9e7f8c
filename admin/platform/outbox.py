"""N-2: every email with its delivery status."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from admin import bp
from admin.forms import ConfirmForm
from portal import clock
from portal.extensions import db
from portal.models import QueuedEmail
from portal.models.mail import EMAIL_STATUSES
from portal.services.platform import mailer


@bp.get("/outbox")
def outbox():
    status = request.args.get("status")
    stmt = select(QueuedEmail).order_by(QueuedEmail.created_at.desc(), QueuedEmail.id.desc())
    if status in EMAIL_STATUSES:
        stmt = stmt.where(QueuedEmail.status == status)
    page = db.paginate(stmt, page=max(request.args.get("page", 1, type=int) or 1, 1), per_page=50,
                       error_out=False)
    return render_template("admin/outbox/list.html", page=page, statuses=EMAIL_STATUSES, status=status)


@bp.get("/outbox/<int:email_id>")
def outbox_email(email_id: int):
    email = db.session.get(QueuedEmail, email_id)
    if email is None:
        abort(404)
    return render_template("admin/outbox/email.html", email=email, confirm=ConfirmForm(),
                           attachments=mailer.attachment_names(email))


@bp.post("/outbox/<int:email_id>/retry")
def outbox_retry(email_id: int):
    email = db.session.get(QueuedEmail, email_id)
    if email is None:
        abort(404)
    if ConfirmForm().validate_on_submit() and email.status in ("queued", "console"):
        email.status = "queued"
        email.next_attempt_at = clock.now()
        db.session.commit()
        result = mailer.deliver([email.id])
        flash("Sent." if result["sent"] else "Not sent yet; the error is shown below.",
              "success" if result["sent"] else "error")
    return redirect(url_for("admin.outbox_email", email_id=email_id))
