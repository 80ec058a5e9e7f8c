"""INV-5: invoice reminders (Settings › Invoices › Automations), run by `flask jobs run`.

An invoice gets reminders only if every job on it is finished, it has a due date, a balance above 0 and was sent.
Its schedule counts days from its anchor: the due date, or the date staff last resent it by hand (a resend
restarts the schedule). Paying or voiding stops them (the invoice leaves the query). A customer on AutoPay gets
none unless the AutoPay charge of that invoice failed. Each run sends, per invoice, only the latest step due: a
runner that was down sends one reminder, not a burst, and the unique (invoice, anchor, step) row means no step is
ever sent twice, even by two runners at once.

Transactions: `run()` is a scheduler rule and commits per invoice reminder.
"""
from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

from sqlalchemy import exists, not_, or_, select
from sqlalchemy.exc import IntegrityError

from portal import clock
from portal.extensions import db, get_existing
from portal.models import Customer, Invoice, InvoiceReminder, Job, invoice_jobs
from portal.services.errors import ValidationError
from portal.services.payments import charges
from portal.services.platform import activity, magic_links, mailer, settings

BATCH_SIZE = 200
MAX_STEPS = 10


def parse_days(raw: str | None) -> str:
    """"1, 7, 14, 30" → "1,7,14,30": whole days after the due date, 1 to 365, each once, at most 10."""
    parts = [p.strip() for p in (raw or "").replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise ValidationError("reminder_days", "Enter at least one day, like 1, 7, 14, 30 (or turn reminders off).")
    if any(p.startswith("-") for p in parts):
        raise ValidationError("reminder_days", "Days cannot be negative: reminders go out after the due date.")
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise ValidationError("reminder_days", "Enter whole days separated by commas, like 1, 7, 14, 30.")
    days = [int(p) for p in parts]
    if len(days) != len(set(days)):
        raise ValidationError("reminder_days", "Each day may appear only once.")
    if any(not 1 <= d <= 365 for d in days):
        raise ValidationError("reminder_days", "Each day must be between 1 and 365 days after the due date.")
    if len(days) > MAX_STEPS:
        raise ValidationError("reminder_days", f"At most {MAX_STEPS} reminders.")
    return ",".join(str(d) for d in sorted(days))


def schedule() -> list[int]:
    return [int(d) for d in (settings.get().reminder_days or "").split(",") if d.strip().isdigit()]


def update(*, enabled: bool, days: str | None) -> None:
    """Caller commits. Turning reminders off with the days left blank keeps the saved schedule."""
    row = settings.ensure()
    if enabled or (days or "").strip():
        row.reminder_days = parse_days(days)
    row.reminders_enabled = enabled


def step_due(anchor: date, today: date, steps: list[int]) -> int | None:
    """The latest step whose day has come (the only one a run may send), or None."""
    passed = [d for d in steps if (today - anchor).days >= d]
    return max(passed) if passed else None


def _eligible(today: date):
    """Invoices that may get a reminder today (before the per-invoice step check)."""
    unfinished = exists().where(invoice_jobs.c.invoice_id == Invoice.id, invoice_jobs.c.job_id == Job.id,
                                Job.status != "finished")
    stmt = (select(Invoice.id).join(Customer, Customer.id == Invoice.customer_id)
            .where(Invoice.status.in_(charges.PAYABLE_INVOICE), Invoice.due_date.is_not(None),
                   Invoice.due_date < today, Invoice.sent_at.is_not(None), Invoice.reminder_anchor_date.is_not(None),
                   Invoice.total_cents > Invoice.paid_cents, not_(unfinished),
                   Customer.status.not_in(("archived", "blacklisted"))))
    if settings.get().autopay_enabled:  # AutoPay pays these: no reminder unless its charge failed
        stmt = stmt.where(or_(Customer.autopay_enabled.is_(False), Invoice.autopay_failed_at.is_not(None)))
    return stmt


def run() -> dict:
    business = settings.get()
    if not business.reminders_enabled:
        return {"sent": 0}
    steps = schedule()
    if not steps:
        return {"sent": 0}
    today = clock.today()
    sent, last_id = 0, 0
    while True:
        ids = db.session.scalars(_eligible(today).where(Invoice.id > last_id).order_by(Invoice.id)
                                 .limit(BATCH_SIZE)).all()
        if not ids:
            return {"sent": sent}
        last_id = ids[-1]
        for invoice_id in ids:
            sent += _remind(invoice_id, today, steps)


def _remind(invoice_id: int, today: date, steps: list[int]) -> int:
    invoice = get_existing(Invoice, invoice_id)
    customer = get_existing(Customer, invoice.customer_id)
    # _eligible selected it for having both dates
    assert invoice.reminder_anchor_date is not None and invoice.due_date is not None
    step = step_due(invoice.reminder_anchor_date, today, steps)
    if step is None or not customer.primary_email:
        return 0
    already = db.session.scalar(select(InvoiceReminder.id).where(
        InvoiceReminder.invoice_id == invoice.id, InvoiceReminder.anchor_date == invoice.reminder_anchor_date,
        InvoiceReminder.day_offset >= step))
    if already is not None:
        return 0
    reminder = InvoiceReminder(invoice_id=invoice.id, anchor_date=invoice.reminder_anchor_date, day_offset=step,
                               sent_at=clock.now())
    try:
        with db.session.begin_nested():
            db.session.add(reminder)
            db.session.flush()
    except IntegrityError:  # another runner sent this step a moment ago
        db.session.rollback()
        return 0
    email = mailer.queue_email(
        "invoice_reminder", customer.primary_email,
        {"invoice": invoice, "days_overdue": (today - invoice.due_date).days,
         "link": magic_links.portal_link(customer, f"/portal/invoices/{invoice.id}"),
         "subject_args": {"number": invoice.number}}, customer=customer)
    db.session.flush()
    reminder.email_id = email.id
    since = "the due date" if invoice.reminder_anchor_date == invoice.due_date else "it was last sent"
    activity.record(customer.id, "invoice", f"Reminder for invoice {invoice.number} sent ({step} day"
                    f"{'' if step == 1 else 's'} after {since})", invoice_id=invoice.id)
    db.session.commit()
    return 1


def history(invoice: Invoice) -> list[InvoiceReminder]:
    return list(db.session.scalars(select(InvoiceReminder).where(InvoiceReminder.invoice_id == invoice.id)
                                   .order_by(InvoiceReminder.sent_at)))


def status(invoice: Invoice) -> SimpleNamespace:
    """For the staff invoice page: the reminders sent, the date of the next one, or why there is none."""
    sent = history(invoice)
    why = _why_none(invoice)
    next_day = None
    if why is None:
        assert invoice.reminder_anchor_date is not None  # else _why_none says "no due date"
        done = [r.day_offset for r in sent if r.anchor_date == invoice.reminder_anchor_date]
        left = [d for d in schedule() if not any(o >= d for o in done)]
        if left:
            next_day = max(invoice.reminder_anchor_date + timedelta(days=left[0]), clock.today())
        else:
            why = "every step of the schedule was sent"
    return SimpleNamespace(reminders=sent, next_reminder=next_day, why_none=why)


def _why_none(invoice: Invoice) -> str | None:
    business = settings.get()
    if not business.reminders_enabled or not schedule():
        return "reminders are off"
    if invoice.status in ("paid", "void") or invoice.balance_cents <= 0:
        return "nothing is owed"
    if invoice.status == "draft" or invoice.sent_at is None:
        return "not sent yet"
    if invoice.reminder_anchor_date is None:
        return "no due date"
    if any(j.status != "finished" for j in invoice.jobs):
        return "its job is not finished"
    if invoice.customer.status in ("archived", "blacklisted"):  # as in _eligible: the runner skips them
        return f"the customer is {invoice.customer.status}"
    if not invoice.customer.primary_email:
        return "the customer has no email address"
    if business.autopay_enabled and invoice.customer.autopay_enabled and invoice.autopay_failed_at is None:
        return "AutoPay pays it"
    return None
