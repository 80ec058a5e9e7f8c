"""INV-3: automatic invoicing, per customer, set on the client card; run by `flask jobs run`.

Cadences: weekly and every 2 weeks (counted from the day it was turned on or changed), twice a month (1st and
15th), monthly (the 1st). On each cadence date (business time zone) the customer gets one email with every
eligible invoice attached as its own PDF. Eligible: an invoice whose jobs are all finished, finished after
automatic invoicing was turned on (the backlog is never emailed), not fully paid, not voided, not in an earlier
automatic email and not sent by hand since the last one. Finished work not on an invoice yet gets one invoice per
job first. Nothing eligible → no email. A cadence date missed while the runner was down is handled once, at the
next run; the customer row's "last cadence date" is claimed with a conditional UPDATE, so two runners never
send the same date twice.

Transactions: `run()` is a scheduler rule and commits per customer (the cadence date is claimed in that commit).
"""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import exists, func, or_, select, update

from portal import clock
from portal.extensions import db, execute_dml, get_existing
from portal.models import Customer, Invoice, Job, StaffUser, invoice_jobs
from portal.services.billing import invoices
from portal.services.errors import ServiceError, ValidationError
from portal.services.platform import activity
from portal.services.work import work_orders

CADENCES = {
    "weekly": "Weekly",
    "biweekly": "Every 2 weeks",
    "semimonthly": "Twice a month (1st and 15th)",
    "monthly": "Monthly (on the 1st)",
}
BATCH_SIZE = 100


def next_date(cadence: str, after: date) -> date:
    """The first cadence date after `after` (the last date handled, or the day it was turned on)."""
    if cadence == "weekly":
        return after + timedelta(days=7)
    if cadence == "biweekly":
        return after + timedelta(days=14)
    if cadence == "semimonthly" and after.day < 15:
        return after.replace(day=15)
    first_of_next = (after.replace(day=1) + timedelta(days=32)).replace(day=1)
    return first_of_next


def due_date(customer: Customer, today: date) -> date | None:
    """The latest cadence date that has come and was not handled yet (several missed → only the latest)."""
    if customer.auto_invoice_cadence not in CADENCES or customer.auto_invoice_last_run_on is None:
        return None
    found, day = None, next_date(customer.auto_invoice_cadence, customer.auto_invoice_last_run_on)
    while day <= today:
        found, day = day, next_date(customer.auto_invoice_cadence, day)
    return found


def upcoming(customer: Customer) -> date | None:
    """For the client card: the next date an email may go out."""
    if customer.auto_invoice_cadence not in CADENCES or customer.auto_invoice_last_run_on is None:
        return None
    pending = due_date(customer, clock.today())
    return pending or next_date(customer.auto_invoice_cadence, customer.auto_invoice_last_run_on)


def set_cadence(customer: Customer, cadence: str | None, actor: StaffUser) -> None:
    """Turn automatic invoicing on, change its cadence, or turn it off (empty). Caller commits."""
    cadence = (cadence or "").strip() or None
    if cadence is not None and cadence not in CADENCES:
        raise ValidationError("cadence", "Choose weekly, every 2 weeks, twice a month or monthly.")
    if cadence == customer.auto_invoice_cadence:
        return
    if cadence is not None and not customer.primary_email:
        raise ValidationError("cadence", "This customer has no email address to send invoices to.")
    if cadence is not None and not customer.can_log_in:
        raise ValidationError("cadence", "Archived or blacklisted customers cannot get automatic invoices.")
    was = customer.auto_invoice_cadence
    customer.auto_invoice_cadence = cadence
    today = clock.today()
    customer.auto_invoice_last_run_on = today if cadence else None
    if cadence is None:
        customer.auto_invoice_enabled_at = None
        activity.record(customer.id, "invoice", "Automatic invoicing turned off", staff=actor)
        return
    if was is None:
        customer.auto_invoice_enabled_at = clock.now()  # work finished from now on; the backlog stays as it is
    first = next_date(cadence, today)
    activity.record(customer.id, "invoice", f"Automatic invoicing {'changed to' if was else 'turned on'}: "
                    f"{CADENCES[cadence].lower()}; first email on {first.isoformat()} if anything is due",
                    staff=actor)


def _new_invoices(customer: Customer) -> None:
    """Finished work since turning it on that no invoice covers yet: one invoice per job."""
    enabled_at = customer.auto_invoice_enabled_at
    assert enabled_at is not None  # set_cadence sets it with the cadence
    for job in work_orders.uninvoiced_finished(customer):
        if job.line_items and job.finished_at and job.finished_at >= enabled_at:
            try:
                with db.session.begin_nested():
                    invoices.create(customer, None, lines=invoices.job_lines([job]), jobs=[job])
            except ServiceError as exc:  # e.g. a job whose lines add up to nothing: staff invoice it by hand
                activity.record(customer.id, "invoice", f"Automatic invoicing could not invoice job {job.number}: "
                                f"{exc.message}")
    db.session.flush()


def eligible(customer: Customer) -> list[Invoice]:
    since = customer.auto_invoice_last_sent_at or customer.auto_invoice_enabled_at
    unfinished_or_old = exists().where(
        invoice_jobs.c.invoice_id == Invoice.id, invoice_jobs.c.job_id == Job.id,
        or_(Job.status != "finished", Job.finished_at.is_(None), Job.finished_at < customer.auto_invoice_enabled_at))
    has_job = exists().where(invoice_jobs.c.invoice_id == Invoice.id)
    return list(db.session.scalars(
        select(Invoice).where(Invoice.customer_id == customer.id,
                              Invoice.status.in_(("draft", "open", "partially_paid")),
                              Invoice.total_cents > Invoice.paid_cents, Invoice.auto_invoiced_at.is_(None),
                              has_job, ~unfinished_or_old,
                              or_(Invoice.last_sent_at.is_(None), Invoice.last_sent_at < since))
        .order_by(Invoice.id)))


def _claim(customer_id: int, day: date) -> bool:
    result = execute_dml(
        update(Customer).where(Customer.id == customer_id, Customer.auto_invoice_cadence.is_not(None),
                               func.coalesce(Customer.auto_invoice_last_run_on, date(1970, 1, 1)) < day)
        .values(auto_invoice_last_run_on=day).execution_options(synchronize_session=False))
    return result.rowcount == 1


def run() -> dict:
    today = clock.today()
    sent, last_id = 0, 0
    while True:
        ids = db.session.scalars(select(Customer.id).where(Customer.auto_invoice_cadence.is_not(None),
                                                           Customer.id > last_id)
                                 .order_by(Customer.id).limit(BATCH_SIZE)).all()
        if not ids:
            return {"sent": sent}
        last_id = ids[-1]
        for customer_id in ids:
            sent += _run_one(customer_id, today)


def _run_one(customer_id: int, today: date) -> int:
    customer = get_existing(Customer, customer_id)
    day = due_date(customer, today)
    if day is None:
        return 0
    if not _claim(customer.id, day):  # another runner has this date (or did it)
        db.session.rollback()
        return 0
    customer = invoices.lock_customer(customer.id)
    if not customer.primary_email or not customer.can_log_in:
        activity.record(customer.id, "invoice", f"Automatic invoicing skipped on {day.isoformat()}: the customer "
                        "has no email address or cannot log in")
        db.session.commit()
        return 0
    _new_invoices(customer)
    chosen = eligible(customer)
    if not chosen:
        db.session.commit()
        return 0
    invoices.send_many(customer, chosen, None, automatic=True)
    customer.auto_invoice_last_sent_at = clock.now()
    db.session.commit()
    return 1


def cadence_choices() -> list[tuple[str, str]]:
    return [("", "Off")] + list(CADENCES.items())

