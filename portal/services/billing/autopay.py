"""INV-6: AutoPay. A global switch (Settings › Invoices › Automations) plus per-customer enrolment, which needs a
card on file. Every night between 00:00 and 02:00 business time, `flask jobs run` charges the full balance of each
due invoice of enrolled customers to their default card, once: an invoice has at most one AutoPay charge (a charge
that never reached Stripe is tried again with the next attempt number). A decline is explained to the customer
(with a pay link) and to staff, and turns the invoice's reminders back on (INV-5).
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from sqlalchemy import exists, func, select

from portal import clock
from portal.extensions import db, get_existing
from portal.models import Card, ChargeAttempt, Customer, Invoice, StaffUser
from portal.money import format_money
from portal.pagination import paginate
from portal.services.crm import messages
from portal.services.errors import ServiceError, ValidationError
from portal.services.payments import charges, declines
from portal.services.platform import activity, settings, workers

WINDOW_START_HOUR, WINDOW_END_HOUR = 0, 2
BATCH_SIZE = 100
PURPOSE = "autopay"


def default_card(customer: Customer) -> Card | None:
    return db.session.scalars(select(Card).where(Card.customer_id == customer.id, Card.is_default.is_(True),
                                                 Card.removed_at.is_(None))).first()


def enroll(customer: Customer, actor: StaffUser | None, enabled: bool) -> None:
    """Turn a customer's AutoPay on (needs a card on file) or off. Caller commits."""
    if enabled == customer.autopay_enabled:
        return
    if enabled:
        if not customer.can_log_in:
            raise ValidationError("autopay", "Archived or blacklisted customers cannot be enrolled in AutoPay.")
        card = default_card(customer)
        if card is None:
            raise ValidationError("autopay", "AutoPay needs a card on file. Add a card or send a card request first.")
        customer.autopay_enabled = True
        activity.record(customer.id, "card", f"AutoPay turned on: due invoices are charged to {card.label}",
                        staff=actor)
    else:
        customer.autopay_enabled = False
        activity.record(customer.id, "card", "AutoPay turned off", staff=actor)


def set_global(enabled: bool) -> None:
    """Caller commits."""
    settings.ensure().autopay_enabled = enabled


def in_window(local_hour: int) -> bool:
    return WINDOW_START_HOUR <= local_hour < WINDOW_END_HOUR


def _tried(invoice_id_column):
    """An AutoPay charge already reached Stripe (or is on its way) for the invoice."""
    return exists().where(ChargeAttempt.invoice_id == invoice_id_column, ChargeAttempt.purpose == PURPOSE,
                          func.coalesce(ChargeAttempt.decline_code, "") != "not_submitted")


def due_invoices(today: date):
    return (select(Invoice.id).join(Customer, Customer.id == Invoice.customer_id)
            .where(Customer.autopay_enabled.is_(True), Customer.status.not_in(("archived", "blacklisted")),
                   Invoice.status.in_(charges.PAYABLE_INVOICE), Invoice.due_date.is_not(None),
                   Invoice.due_date <= today, Invoice.total_cents > Invoice.paid_cents, ~_tried(Invoice.id)))


def run() -> dict:
    """Charge what is due, if it is AutoPay's hour. Safe to run often and on several machines at once."""
    if not settings.get().autopay_enabled:
        return {"charged": 0, "failed": 0}
    local = clock.local_now()
    if not in_window(local.hour):
        return {"charged": 0, "failed": 0}
    # the charges run on the jobs pool (JOBS_CONCURRENCY at once, each worker its own session)
    counted = workers.run(_due_ids(local.date()), _charge_one)
    return {key: counted[key] for key in ("charged", "failed")} | (
        {"rate_limited": counted["rate_limited"]} if counted["rate_limited"] else {})


def _due_ids(today: date) -> Iterator[int]:
    last_id = 0
    while True:
        ids = db.session.scalars(due_invoices(today).where(Invoice.id > last_id).order_by(Invoice.id)
                                 .limit(BATCH_SIZE)).all()
        db.session.rollback()
        if not ids:
            return
        last_id = ids[-1]
        yield from ids


def _charge_one(invoice_id: int) -> str | None:
    invoice = get_existing(Invoice, invoice_id)
    customer = get_existing(Customer, invoice.customer_id)
    card = default_card(customer)
    if card is None:
        return None  # enrolment needs a card; removing the last one turns AutoPay off
    lost = db.session.scalar(select(func.count()).select_from(ChargeAttempt).where(
        ChargeAttempt.invoice_id == invoice.id, ChargeAttempt.purpose == PURPOSE,
        ChargeAttempt.decline_code == "not_submitted")) or 0
    try:
        outcome = charges.charge_card(customer, card, invoice.balance_cents, token=None, invoice=invoice,
                                      purpose=PURPOSE, off_session=True, initiated_by="system",
                                      key=f"autopay_{invoice.id}_{lost + 1}")
    except ServiceError:  # paid, voided or being paid by someone else meanwhile
        db.session.rollback()
        return None
    if outcome.duplicate:
        return None  # another runner made this attempt
    return {"succeeded": "charged", "failed": "failed"}.get(outcome.attempt.status)


def on_failed(attempt: ChargeAttempt, *, explanation: declines.Explanation, invoice: Invoice | None) -> None:
    """The AutoPay charge was declined: reminders apply to the invoice again and staff are told (the customer
    gets the usual payment-failed email with a pay link). Receiver of `events.charge_failed`."""
    if attempt.purpose != PURPOSE or invoice is None or attempt.decline_code == "not_submitted":
        return  # (nothing reached Stripe: tonight's next run charges it with the next attempt number)
    invoice.autopay_failed_at = clock.now()
    customer = get_existing(Customer, attempt.customer_id)
    card = db.session.get(Card, attempt.card_id)
    messages.email_staff(customer, "payment_failed_staff",
                         {"invoice": invoice, "attempt": attempt, "explanation": explanation, "card": card},
                         admin_path=f"/admin/invoices/{invoice.id}", subject_args={"number": invoice.number})
    activity.record(customer.id, "invoice", f"AutoPay of {format_money(attempt.amount_cents, attempt.currency)} "
                    f"for invoice {invoice.number} failed; reminders apply to it again", invoice_id=invoice.id)


def on_default_card_changed(customer: Customer, *, old: Card | None, new: Card | None,
                            actor: StaffUser | None) -> None:
    """D-8: the customer (not staff) removed or replaced the card AutoPay charges; staff are told.
    Receiver of `events.default_card_changed`."""
    if actor is not None or not customer.autopay_enabled:
        return
    messages.email_staff(customer, "card_changed_staff", {"plan": None, "old": old, "new": new},
                         admin_path=f"/admin/customers/{customer.id}#cards")


def customers_without_card(page: int = 1, per_page: int = 50):
    """The AutoPay page's list: customers who can be served but have no card on file."""
    has_card = exists().where(Card.customer_id == Customer.id, Card.removed_at.is_(None))
    stmt = (select(Customer).where(~has_card, Customer.status.not_in(("archived", "blacklisted")))
            .order_by(Customer.last_name, Customer.first_name, Customer.company_name, Customer.id))
    return paginate(stmt, page, per_page)


def enrolled(limit: int = 200) -> list[tuple[Customer, Card | None]]:
    rows = db.session.scalars(select(Customer).where(Customer.autopay_enabled.is_(True))
                              .order_by(Customer.last_name, Customer.first_name, Customer.id).limit(limit)).all()
    ids = [c.id for c in rows]
    defaults = {c.customer_id: c for c in db.session.scalars(select(Card).where(
        Card.customer_id.in_(ids), Card.is_default.is_(True), Card.removed_at.is_(None)))} if ids else {}
    return [(c, defaults.get(c.id)) for c in rows]

