"""INV-2, INV-7: sending an invoice to the customer (email with a magic link that opens it in the portal)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from portal import clock
from portal.extensions import db, get_existing
from portal.models import (
    Customer,
    Estimate,
    Invoice,
    InvoiceLineItem,
    InvoiceStatus,
    Job,
    Payment,
    PaymentAllocation,
    Refund,
    StaffUser,
)
from portal.money import MAX_CHARGE_CENTS, format_money, percent_of
from portal.pagination import paginate
from portal.services.billing import credit
from portal.services.crm.customers import contains_pattern
from portal.services.errors import NotFound, ServiceError, ValidationError, found
from portal.services.payments import charges, ledger
from portal.services.platform import activity, magic_links, mailer, settings
from portal.services.work import work_orders
from portal.services.work.line_items import Line


def send(invoice: Invoice, actor: StaffUser | None) -> None:
    """Send or resend. A draft becomes open; a resend restarts the reminder schedule (INV-5). Caller commits."""
    customer = get_existing(Customer, invoice.customer_id)
    to = _check_sendable(invoice, customer)
    resend = _mark_sent(invoice)
    credit.apply(customer, actor=actor, invoices=[invoice])  # credit on account pays what it can first
    link = magic_links.portal_link(customer, f"/portal/invoices/{invoice.id}")
    mailer.queue_email("invoice_sent", to,
                       {"invoice": invoice, "link": link, "subject_args": {"number": invoice.number}},
                       customer=customer, actor=actor)
    activity.record(customer.id, "invoice", f"Invoice {invoice.number} {'resent' if resend else 'sent'}",
                    staff=actor, invoice_id=invoice.id)


def _check_sendable(invoice: Invoice, customer: Customer) -> str:
    """The address to send the invoice to, or ServiceError."""
    if invoice.status == "void":
        raise ServiceError(f"Invoice {invoice.number} is void and cannot be sent.")
    if not invoice.line_items or invoice.total_cents <= 0:
        raise ServiceError("Add at least one line with an amount before sending.")
    if not customer.primary_email:
        raise ServiceError("This customer has no email address.")
    if not customer.can_log_in:
        raise ServiceError("Archived or blacklisted customers cannot be sent invoices.")
    return customer.primary_email


def _mark_sent(invoice: Invoice) -> bool:
    """A draft becomes open. Reminders count from the due date; a resend (or a first send after the due date)
    restarts them from today (INV-5). Returns whether it was a resend."""
    now, today = clock.now(), clock.today()
    resend = invoice.sent_at is not None
    if invoice.status == "draft":
        invoice.status = InvoiceStatus.OPEN
        charges.refresh_invoice_status(invoice)  # a credited deposit makes it partially paid
    invoice.sent_at = invoice.sent_at or now
    invoice.last_sent_at = now
    invoice.reminder_anchor_date = max(today, invoice.due_date) if invoice.due_date is not None else None
    return resend


def pay_all_path(invoices: list[Invoice]) -> str:
    return "/portal/invoices/pay-all?ids=" + ",".join(str(i.id) for i in sorted(invoices, key=lambda i: i.id))


def send_many(customer: Customer, chosen: list[Invoice], actor: StaffUser | None, *, automatic: bool = False):
    """INV-3, INV-4: one email with each invoice attached as its own PDF, a link to each in the portal and one
    "Pay all" link. Batch sends are manual sends: a resent invoice's reminders restart. Caller commits."""
    if not chosen:
        raise ValidationError("invoice_ids", "Choose at least one invoice.")
    if len({i.customer_id for i in chosen}) > 1 or chosen[0].customer_id != customer.id:
        raise ValidationError("invoice_ids", "All the invoices must belong to this customer.")
    for invoice in chosen:
        to = _check_sendable(invoice, customer)
        if invoice.status not in ("draft", "open", "partially_paid") or invoice.balance_cents <= 0:
            raise ValidationError("invoice_ids", f"Invoice {invoice.number} is {invoice.status.replace('_', ' ')} "
                                                 "and has nothing to pay.")
    chosen = sorted(chosen, key=lambda i: i.id)
    now = clock.now()
    for invoice in chosen:
        _mark_sent(invoice)
        if automatic:
            invoice.auto_invoiced_at = now
    credit.apply(customer, actor=actor, invoices=chosen)  # credit on account pays what it can first
    items = [(i, magic_links.portal_link(customer, f"/portal/invoices/{i.id}")) for i in chosen]
    email = mailer.queue_email(
        "invoices_sent", to,
        {"items": items, "automatic": automatic, "total_cents": sum(i.balance_cents for i in chosen),
         "currency": chosen[0].currency, "pay_all_link": magic_links.portal_link(customer, pay_all_path(chosen))},
        customer=customer, actor=actor, attachments=[("invoice_pdf", i.id) for i in chosen])
    how = "Automatic invoicing sent" if automatic else "Sent in one email"
    numbers = ", ".join(i.number for i in chosen)
    activity.record(customer.id, "invoice", f"{how}: invoice{'s' if len(chosen) > 1 else ''} {numbers}",
                    staff=actor, invoice_id=chosen[0].id)
    return email


# --- Creating and changing invoices (INV-2) -------------------------------------------------------------

def _totals(invoice: Invoice) -> None:
    invoice.subtotal_cents = sum(li.amount_cents for li in invoice.line_items)
    invoice.discount_cents = percent_of(invoice.subtotal_cents, invoice.discount_bp)
    invoice.tax_cents = percent_of(invoice.subtotal_cents - invoice.discount_cents, invoice.tax_bp)
    invoice.total_cents = invoice.subtotal_cents - invoice.discount_cents + invoice.tax_cents


def _check_total(invoice: Invoice) -> None:
    if invoice.total_cents <= 0 and invoice.subtotal_cents > 0:
        raise ValidationError("discount_percent", "This discount leaves nothing to invoice; nothing needs sending.")
    if invoice.total_cents <= 0:
        raise ValidationError("lines", "The invoice total must be above zero.")
    if invoice.total_cents > MAX_CHARGE_CENTS:
        raise ValidationError("lines", f"The invoice total cannot be more than {format_money(MAX_CHARGE_CENTS)}.")


def _check_terms(discount_bp: int | None, tax_bp: int | None, issue_date: date | None, due_date: date | None,
                 notes: str | None):
    if discount_bp is None or not 0 <= discount_bp <= 10_000:
        raise ValidationError("discount_percent", "The discount must be between 0 % and 100 %.")
    if tax_bp is None or not 0 <= tax_bp <= 5_000:
        raise ValidationError("tax_percent", "The tax must be between 0 % and 50 %.")
    if issue_date is None:
        raise ValidationError("issue_date", "Enter the issue date.")
    if due_date is not None and due_date < issue_date:
        raise ValidationError("due_date", "The due date cannot be before the issue date.")
    notes = (notes or "").strip() or None
    if notes and len(notes) > 5000:
        raise ValidationError("notes", "Keep the notes under 5000 characters.")
    return notes


def _set_lines(invoice: Invoice, lines: list[Line]) -> None:
    invoice.line_items.clear()
    for i, line in enumerate(lines):
        invoice.line_items.append(InvoiceLineItem(description=line.description, quantity=line.quantity,
                                                  unit_price_cents=line.unit_price_cents, position=i))


def create(customer: Customer, staff: StaffUser | None, *, lines: list[Line], jobs: Sequence[Job] = (),
           discount_bp: int | None = None, tax_bp: int | None = None, issue_date: date | None = None,
           due_date: date | None = None, notes: str | None = None) -> Invoice:
    """A draft invoice; by default the customer's personal discount and the business's tax and terms."""
    business = settings.get()
    discount_bp = customer.discount_bp if discount_bp is None else discount_bp
    tax_bp = business.default_tax_bp if tax_bp is None else tax_bp
    issue_date = issue_date or clock.today()
    if due_date is None:
        due_date = issue_date + timedelta(days=business.invoice_due_days or 14)
    notes = _check_terms(discount_bp, tax_bp, issue_date, due_date, notes)
    if not lines:
        raise ValidationError("lines", "Add at least one line.")
    for job in jobs:
        if job.customer_id != customer.id:
            raise ValidationError("lines", "A job of another customer cannot be on this invoice.")
    invoice = Invoice(customer_id=customer.id, status="draft", currency=settings.currency(), issue_date=issue_date,
                      due_date=due_date, discount_bp=discount_bp, tax_bp=tax_bp, paid_cents=0, notes=notes,
                      created_by_id=staff.id if staff else None, created_at=clock.now(),
                      number=settings.next_number("invoice", lambda n: db.session.scalar(
                          select(Invoice.id).where(Invoice.number == n))))
    _set_lines(invoice, lines)
    invoice.jobs = list(jobs)
    _totals(invoice)
    _check_total(invoice)
    db.session.add(invoice)
    db.session.flush()
    _credit_deposits(invoice, jobs)
    what = f" for job{'s' if len(jobs) > 1 else ''} {', '.join(j.number for j in jobs)}" if jobs else ""
    by = staff.name if staff else "automatic invoicing"
    activity.record(customer.id, "invoice", f"Invoice {invoice.number}{what} created by {by}: "
                    f"{format_money(invoice.total_cents, invoice.currency)}", staff=staff, invoice_id=invoice.id)
    return invoice


def _credit_deposits(invoice: Invoice, jobs: Sequence[Job]) -> None:
    """The deposit paid when the customer approved an estimate counts toward the invoice of its job."""
    if not jobs:
        return
    deposits = db.session.scalars(select(Payment).join(Estimate, Estimate.deposit_payment_id == Payment.id)
                                  .where(Estimate.job_id.in_([j.id for j in jobs]))).all()
    for payment in deposits:
        used = db.session.scalar(select(func.coalesce(func.sum(PaymentAllocation.amount_cents), 0))
                                 .where(PaymentAllocation.payment_id == payment.id)) or 0
        free = payment.amount_cents - payment.refunded_cents - used
        amount = min(free, invoice.total_cents - invoice.paid_cents)
        if amount > 0:
            charges.allocate(payment, invoice, amount)
            activity.record(invoice.customer_id, "invoice", f"Deposit {format_money(amount, payment.currency)} "
                            f"credited to invoice {invoice.number}", invoice_id=invoice.id)


def update(invoice: Invoice, staff: StaffUser, *, lines: list[Line], discount_bp: int | None, tax_bp: int | None,
           issue_date: date | None, due_date: date | None, notes: str | None) -> None:
    invoice = charges.lock_invoice(invoice.id)  # a payment settling now waits for this edit (and vice versa)
    if invoice.status not in ("draft", "open") or (invoice.status == "open" and invoice.paid_cents):
        raise ServiceError("Only a draft or an unpaid open invoice can be edited; void it and create a new one.")
    if charges.open_attempt_for(invoice) is not None:
        raise ServiceError("A card payment for this invoice is being processed; wait for it to settle.")
    if issue_date is not None and due_date is None:  # cleared: the business's standard terms
        due_date = issue_date + timedelta(days=settings.get().invoice_due_days or 14)
    invoice.notes = _check_terms(discount_bp, tax_bp, issue_date, due_date, notes)
    assert discount_bp is not None and tax_bp is not None and issue_date is not None  # _check_terms refuses None
    if not lines:
        raise ValidationError("lines", "Add at least one line.")
    invoice.discount_bp, invoice.tax_bp, invoice.issue_date, invoice.due_date = discount_bp, tax_bp, issue_date, \
        due_date
    _set_lines(invoice, lines)
    _totals(invoice)
    _check_total(invoice)
    if invoice.total_cents < invoice.paid_cents:
        raise ValidationError("lines", "The total cannot be less than what is already credited "
                                       f"({format_money(invoice.paid_cents, invoice.currency)}).")
    if invoice.sent_at is not None and invoice.last_sent_at == invoice.sent_at:
        invoice.reminder_anchor_date = invoice.due_date  # never resent by hand: reminders follow the due date
    activity.record(invoice.customer_id, "invoice", f"Invoice {invoice.number} edited by {staff.name}: "
                    f"{format_money(invoice.total_cents, invoice.currency)}", staff=staff, invoice_id=invoice.id)


def job_lines(jobs: list[Job]) -> list[Line]:
    prefix = len(jobs) > 1
    return [Line(((f"{job.number}: " if prefix else "") + li.description)[:300], li.quantity, li.unit_price_cents)
            for job in jobs for li in job.line_items]


def from_job(job: Job, staff: StaffUser) -> Invoice:
    customer = lock_customer(job.customer_id)
    if job.status != "finished":
        raise ServiceError("Finish the job before invoicing it.")
    if work_orders.invoiced(job):
        raise ServiceError("This job is already on an invoice.")
    if not job.line_items:
        raise ServiceError("Add line items to the job first.")
    return create(customer, staff, lines=job_lines([job]), jobs=[job])


def invoice_all_unpaid_work(customer: Customer, staff: StaffUser) -> Invoice:
    """C-8: one invoice for every finished job not on an invoice yet. The customer row is locked, so a double
    click (or two staff at once) makes one invoice: the second finds nothing left."""
    customer = lock_customer(customer.id)
    jobs = [j for j in work_orders.uninvoiced_finished(customer) if j.line_items]
    if not jobs:
        raise ServiceError("There is no finished, un-invoiced work for this customer.")
    return create(customer, staff, lines=job_lines(jobs), jobs=jobs)


def _release_deposits(invoice: Invoice) -> None:
    """A voided invoice gives back the estimate deposits credited on it: they return to the customer's account."""
    rows = db.session.execute(select(PaymentAllocation).join(Payment, Payment.id == PaymentAllocation.payment_id)
                              .where(PaymentAllocation.invoice_id == invoice.id, Payment.kind == "deposit")).scalars()
    for allocation in rows:
        invoice.paid_cents -= allocation.amount_cents
        activity.record(invoice.customer_id, "invoice", f"Deposit {format_money(allocation.amount_cents)} released "
                        f"from invoice {invoice.number}; it stays on the customer's account", invoice_id=invoice.id)
        db.session.delete(allocation)
    db.session.flush()


def lock_customer(customer_id: int) -> Customer:
    return db.session.scalars(select(Customer).where(Customer.id == customer_id).with_for_update()
                              .execution_options(populate_existing=True)).one()


def void(invoice: Invoice, staff: StaffUser, reason: str | None) -> None:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("reason", "Say why the invoice is voided.")
    if len(reason) > 300:
        raise ValidationError("reason", "Keep the reason under 300 characters.")
    invoice = charges.lock_invoice(invoice.id)
    if invoice.status == "void":
        raise ServiceError("This invoice is already void.")
    _release_deposits(invoice)
    if invoice.paid_cents - invoice.refunded_cents > 0:  # fully refunded money no longer holds it
        raise ServiceError("This invoice has payments; refund them first, then void it.")
    if charges.open_attempt_for(invoice) is not None:
        raise ServiceError("A card payment for this invoice is being processed; wait for it to settle.")
    invoice.status, invoice.voided_at, invoice.void_reason = InvoiceStatus.VOID, clock.now(), reason
    activity.record(invoice.customer_id, "invoice", f"Invoice {invoice.number} voided by {staff.name}: {reason}",
                    staff=staff, invoice_id=invoice.id)


@dataclass
class InvoiceList:
    invoices: list[Invoice]
    page: int
    pages: int
    total: int


def search(*, status: str | None = None, q: str | None = None, page: int = 1, per_page: int = 50) -> InvoiceList:
    stmt = select(Invoice)  # the customer joins only for a search: counting every invoice needs no join
    if status == "overdue":
        stmt = stmt.where(Invoice.status.in_(charges.PAYABLE_INVOICE), Invoice.due_date < clock.today())
    elif status in ("draft", "open", "partially_paid", "paid", "void"):
        stmt = stmt.where(Invoice.status == status)
    if q and q.strip():
        term = contains_pattern(q.strip())
        stmt = stmt.join(Customer, Customer.id == Invoice.customer_id).where(
            or_(*(func.lower(column).like(term, escape="\\")
                  for column in (Invoice.number, Customer.first_name, Customer.last_name, Customer.company_name))))
    result = paginate(stmt.options(selectinload(Invoice.customer))
                      .order_by(Invoice.issue_date.desc(), Invoice.id.desc()), page, per_page)
    return InvoiceList(list(result.items), result.page, max(result.pages, 1), result.total)


def pay_all_selection(customer: Customer, raw_ids: str | None) -> tuple[list[Invoice], list[Invoice]]:
    """INV-4: the invoices a "Pay all" link names (no ids: every open invoice of the customer), split into those
    still to pay and those paid or voided since. Any id that is not one of this customer's sent invoices → NotFound
    (G-5), so a link never reveals or pays someone else's invoice."""
    raw = [p.strip() for p in (raw_ids or "").split(",") if p.strip()]
    if not raw:
        return [i for i in ledger.open_invoices(customer) if i.balance_cents > 0], []
    if len(raw) > 50 or not all(p.isascii() and p.isdigit() and 0 < int(p) < 2**31 for p in raw):
        raise NotFound("Invoice not found.")
    ids = {int(p) for p in raw}
    rows = db.session.scalars(select(Invoice).where(Invoice.id.in_(ids), Invoice.customer_id == customer.id,
                                                    Invoice.status != "draft").order_by(Invoice.id)).all()
    if len(rows) != len(ids):
        raise NotFound("Invoice not found.")
    payable = [i for i in rows if i.status in charges.PAYABLE_INVOICE and i.balance_cents > 0]
    return payable, [i for i in rows if i not in payable]



def load(invoice_id: int) -> Invoice:
    """An invoice by id (staff side), or NotFound; a customer's own: `payments.charges.invoice_of`."""
    return found(db.session.get(Invoice, invoice_id), "Invoice not found.")


def by_ids(ids: list[int]) -> list[Invoice]:
    return list(db.session.scalars(select(Invoice).where(Invoice.id.in_(ids)))) if ids else []


# --- The portal's view of a customer's invoices (P-2, P-3) -------------------------------------------------

VISIBLE_TO_CUSTOMER = ("open", "partially_paid", "paid", "void")  # drafts are the business's own


def for_customer(customer: Customer, invoice_id: int) -> Invoice:
    """One of the customer's sent invoices, or NotFound (another customer's, a draft, or none)."""
    return found(db.session.scalars(select(Invoice).where(Invoice.id == invoice_id,
                                                          Invoice.customer_id == customer.id,
                                                          Invoice.status.in_(VISIBLE_TO_CUSTOMER))).first(),
                 "Invoice not found.")


def customer_list(customer: Customer, show: str, page, per_page: int = 25):
    """The customer's invoices, newest first: `show` "open" (still to pay), "paid" or anything else (all)."""
    q = select(Invoice).where(Invoice.customer_id == customer.id, Invoice.status.in_(VISIBLE_TO_CUSTOMER))
    if show == "open":
        q = q.where(Invoice.status.in_(charges.PAYABLE_INVOICE))
    elif show == "paid":
        q = q.where(Invoice.status == "paid")
    return paginate(q.order_by(Invoice.issue_date.desc(), Invoice.id.desc()), page, per_page)


def payments_of(invoice: Invoice) -> tuple[list, list[Refund]]:
    """The payments allocated to the invoice as (Payment, cents on this invoice), and their refunds."""
    rows = list(db.session.execute(select(Payment, PaymentAllocation.amount_cents).join(PaymentAllocation)
                                   .where(PaymentAllocation.invoice_id == invoice.id)
                                   .order_by(Payment.received_at)).all())
    ids = [p.id for p, _ in rows]
    refunds = list(db.session.scalars(select(Refund).where(Refund.payment_id.in_(ids))
                                      .order_by(Refund.created_at))) if ids else []
    return rows, refunds
