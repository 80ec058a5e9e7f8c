"""N-2, N-3: emails are rendered and queued in the business transaction, delivered after commit.

An SMTP failure never rolls back the action that queued the email and never loses it:
the row stays `queued` with its error and `flask jobs run` tries again.

Transactions: `queue_email` only flushes (the caller's commit sends nothing until it happens); delivery
(`deliver`, `deliver_pending`) claims and records each email in its own commit, after the business commit.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, g, has_request_context, render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from flask_mail import Message
from sqlalchemy import func, or_, select, update

from portal import clock
from portal.extensions import db, execute_dml, get_existing, mail
from portal.models import Customer, EmailStatus, QueuedEmail, StaffUser
from portal.models.mail import EMAIL_STATUSES
from portal.pagination import paginate
from portal.services.errors import found
from portal.services.platform import activity, settings

SUBJECTS = {
    "portal_invitation": _l("Your customer portal at %(business)s"),
    "portal_login_link": _l("Your login link for %(business)s"),
    "portal_new_link": _l("Your new login link for %(business)s"),
    "staff_invitation": _l("You're invited to %(business)s staff admin"),
    "card_request": _l("Please add a card on file with %(business)s"),
    "payment_receipt": _l("Payment receipt from %(business)s"),
    "payment_failed": _l("Your payment to %(business)s did not go through"),
    "refund_receipt": _l("Refund from %(business)s"),
    "invoice_sent": _l("Invoice %(number)s from %(business)s"),
    "message_reply": _l("Reply from %(business)s"),
    "estimate_sent": _l("Estimate %(number)s from %(business)s"),
    "plan_sent": _l("Your service plan “%(plan)s” from %(business)s"),
    "plan_payment_failed": _l("Your payment for “%(plan)s” did not go through"),
    "card_expiring": _l("Your card on file with %(business)s expires soon"),
    "invoices_sent": _l("Your invoices from %(business)s"),
    "invoice_reminder": _l("Reminder: invoice %(number)s from %(business)s is past due"),
    # staff emails (English)
    "message_received": _l("New message from %(name)s"),
    "estimate_answered": _l("Estimate %(number)s %(answer)s by %(name)s"),
    "plan_payment_failed_staff": _l("Plan payment %(what)s: %(name)s, “%(plan)s”"),
    "card_changed_staff": _l("%(name)s changed a card that backs a plan or AutoPay"),
    "payment_failed_staff": _l("AutoPay payment failed: %(name)s, invoice %(number)s"),
    "payment_disputed_staff": "Card payment %(what)s: %(name)s",  # staff only, English: not in the catalogs
}

@dataclass(frozen=True)
class AttachmentKind:
    """How to rebuild one kind of attachment at delivery: `build(id, language)` → (filename, PDF bytes) or None
    when the record is gone; `filenames(ids)` → {id: filename} for the outbox, in one query."""
    build: Callable[[int, str], tuple[str, bytes] | None]
    filenames: Callable[[list[int]], dict[int, str]]


_attachment_kinds: dict[str, AttachmentKind] = {}

STALE_CLAIM = timedelta(minutes=15)
BATCH_SIZE = 100


def queue_email(template: str, to: str, context: dict | None = None, *, customer: Customer | None = None,
                staff: StaffUser | None = None, language: str | None = None, actor: StaffUser | None = None,
                log_activity: bool = True, attachments: list[tuple[str, int]] | None = None) -> QueuedEmail:
    """Render `email/<template>.{txt,html}` in the recipient's language and store it. Caller commits (the email
    gets its id at the next flush: in a request now, for the page to deliver it after the commit).
    `attachments`: (kind, record id) pairs, each built by its registered `AttachmentKind` in the email's language
    when it is sent (e.g. ("invoice_pdf", invoice.id))."""
    business = settings.get()
    lang = language or (customer.preferred_language if customer is not None else "en")
    ctx = {"business": business, "customer": customer, "staff": staff, **(context or {})}
    with force_locale(lang):
        subject = str(SUBJECTS[template] % {"business": business.name, **ctx.get("subject_args", {})})
        body_text = render_template(f"email/{template}.txt", subject=subject, **ctx)
        body_html = render_template(f"email/{template}.html", subject=subject, **ctx)
    email = QueuedEmail(template=template, to_address=to, subject=subject, body_text=body_text,
                        body_html=body_html, language=lang, customer_id=customer.id if customer else None,
                        staff_id=staff.id if staff else None, status="queued", attempts=0,
                        attachments_spec=json.dumps([{kind: ident} for kind, ident in attachments])
                        if attachments else None,
                        next_attempt_at=clock.now(), created_at=clock.now())
    db.session.add(email)
    if customer is not None and log_activity:
        activity.record(customer.id, "email", f"Email: {subject} → {to}", staff=actor, email=email)
    if has_request_context():
        db.session.flush()
        g.setdefault("queued_email_ids", []).append(email.id)
    return email


def _smtp_configured() -> bool:
    return bool(current_app.config.get("MAIL_SERVER"))


def _claim(email_id: int) -> bool:
    """Take one email for sending; False if another runner has it or it is done."""
    now = clock.now()
    result = execute_dml(
        update(QueuedEmail)
        .where(QueuedEmail.id == email_id,
               or_(QueuedEmail.status == "queued",
                   (QueuedEmail.status == "sending") & (QueuedEmail.claimed_at < now - STALE_CLAIM)))
        .values(status="sending", claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def register_attachment(kind: str, builder: AttachmentKind) -> None:
    """A domain tells the mailer how to build one kind of attachment (wired in `portal.services.wiring`)."""
    _attachment_kinds[kind] = builder


def _specs(email: QueuedEmail) -> list[tuple[str, int]]:
    return [(kind, ident) for spec in json.loads(email.attachments_spec or "[]") for kind, ident in spec.items()
            if kind in _attachment_kinds]


def attachments(email: QueuedEmail) -> list[tuple[str, bytes]]:
    """(filename, PDF) for each attachment of the email, built now from the stored records."""
    files = []
    for kind, ident in _specs(email):
        built = _attachment_kinds[kind].build(ident, email.language)
        if built is not None:
            files.append(built)
    return files


def attachment_names(email: QueuedEmail) -> list[str]:
    specs = _specs(email)
    names: list[str] = []
    for kind in dict.fromkeys(k for k, _ in specs):
        found = _attachment_kinds[kind].filenames([i for k, i in specs if k == kind])
        names.extend(found[i] for k, i in specs if k == kind and i in found)
    return names


def _send_one(email: QueuedEmail, connection) -> None:
    msg = Message(subject=email.subject, recipients=[email.to_address], body=email.body_text,
                  html=email.body_html, sender=current_app.config["MAIL_DEFAULT_SENDER"])
    for filename, data in attachments(email):
        msg.attach(filename, "application/pdf", data)
    connection.send(msg)


def due_email_ids(limit: int = BATCH_SIZE) -> list[int]:
    now = clock.now()
    return list(db.session.scalars(
        select(QueuedEmail.id)
        .where(or_((QueuedEmail.status == "queued") & (or_(QueuedEmail.next_attempt_at.is_(None),
                                                           QueuedEmail.next_attempt_at <= now)),
                   (QueuedEmail.status == "sending") & (QueuedEmail.claimed_at < now - STALE_CLAIM)))
        .order_by(QueuedEmail.id).limit(limit)))


def deliver(ids: list[int]) -> dict:
    """Send the given queued emails; each is committed on its own. Returns counts."""
    counts = {"sent": 0, "failed": 0, "console": 0}
    if not ids:
        return counts
    if not _smtp_configured():
        for email_id in ids:
            if not _claim(email_id):
                continue
            email = get_existing(QueuedEmail, email_id)  # claimed just above
            print(f"\n--- email #{email.id} to {email.to_address}: {email.subject}\n{email.body_text}\n---",
                  file=sys.stdout, flush=True)
            email.status = EmailStatus.CONSOLE
            email.last_error = "SMTP is not configured: the email was printed to the console only."
            db.session.commit()
            counts["console"] += 1
        return counts

    connection = None
    for email_id in ids:
        if not _claim(email_id):
            continue
        email = get_existing(QueuedEmail, email_id)  # claimed just above
        email.attempts += 1
        try:
            if connection is None:
                connection = mail.connect().__enter__()
            _send_one(email, connection)
        except Exception as exc:  # any SMTP/socket failure: keep it queued with the reason, or give up
            email.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if email.attempts >= int(current_app.config["MAIL_MAX_ATTEMPTS"]):
                email.status, email.next_attempt_at = EmailStatus.FAILED, None  # staff see it and may retry
            else:
                email.status = EmailStatus.QUEUED
                email.next_attempt_at = clock.now() + retry_delay(email.attempts)
            db.session.commit()
            counts["failed"] += 1
            _close(connection)
            connection = None
            continue
        email.status = EmailStatus.SENT
        email.sent_at = clock.now()
        email.last_error = None
        db.session.commit()
        counts["sent"] += 1
    _close(connection)
    return counts


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff after the n-th failed try: MAIL_RETRY_MINUTES, twice that, … capped at
    MAIL_RETRY_MAX_MINUTES. With the defaults (5 min doubling to 4 h, 10 tries) the last try is ~17 h after the
    first, so an email is given up ("failed") within 24 hours."""
    cfg = current_app.config
    minutes = min(float(cfg["MAIL_RETRY_MINUTES"]) * 2 ** max(attempts - 1, 0), float(cfg["MAIL_RETRY_MAX_MINUTES"]))
    return timedelta(minutes=minutes)


def failed_count() -> int:
    """Emails given up after their last try (the dashboard's entry, N-3)."""
    return db.session.scalar(select(func.count()).select_from(QueuedEmail)
                             .where(QueuedEmail.status == EmailStatus.FAILED)) or 0


def _close(connection) -> None:
    if connection is not None:
        try:
            connection.__exit__(None, None, None)
        except Exception:
            pass


def deliver_pending(limit: int = BATCH_SIZE) -> dict:
    """Deliver everything due, in batches (the job runner's rule)."""
    totals = {"sent": 0, "failed": 0, "console": 0}
    seen: set[int] = set()
    while True:
        ids = [i for i in due_email_ids(limit) if i not in seen]
        if not ids:
            return totals
        seen.update(ids)
        for k, v in deliver(ids).items():
            totals[k] += v


# --- The outbox page (N-2) --------------------------------------------------------------------------------

def outbox(status: str | None = None, page=1, per_page: int = 50):
    """Every email, newest first, optionally of one status (EMAIL_STATUSES), one page of them."""
    stmt = select(QueuedEmail).order_by(QueuedEmail.created_at.desc(), QueuedEmail.id.desc())
    if status in EMAIL_STATUSES:
        stmt = stmt.where(QueuedEmail.status == status)
    return paginate(stmt, page, per_page)


def load_email(email_id: int) -> QueuedEmail:
    return found(db.session.get(QueuedEmail, email_id), "Email not found.")


def queue_again(email: QueuedEmail) -> bool:
    """Put an unsent (or failed) email back in the queue for right now; a failed one gets a fresh set of tries.
    Caller commits, then `deliver([email.id])`."""
    if email.status not in ("queued", "console", "failed"):
        return False
    if email.status == EmailStatus.FAILED:
        email.attempts = 0
    email.status, email.next_attempt_at = EmailStatus.QUEUED, clock.now()
    return True
