"""P-5: customers approve an estimate with a typed name (time and IP kept) or decline it.

An estimate with a deposit is approved only together with paying the deposit: the typed name and IP
wait on the estimate while the card is charged, and the approval happens when the charge settles —
in the request, or later in the webhook or the reconciler (`on_deposit_paid`).
"""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from portal import clock
from portal.extensions import db, execute_dml, get_existing
from portal.models import Card, ChargeAttempt, Customer, Estimate, EstimateLineItem, EstimateStatus, Payment
from portal.money import format_money
from portal.pagination import paginate
from portal.services.crm import messages
from portal.services.errors import ServiceError, ValidationError, found
from portal.services.payments import charges
from portal.services.platform import activity, magic_links, mailer, settings
from portal.services.work import work_orders
from portal.services.work.line_items import Line

VISIBLE = ("sent", "approved", "declined", "converted", "expired")
MAX_REASON = 2000


def for_customer(customer: Customer, page=1, per_page: int = 25):
    """The customer's estimates, newest first, one page (a Pagination)."""
    return paginate(select(Estimate).where(Estimate.customer_id == customer.id, Estimate.status.in_(VISIBLE))
                    .options(selectinload(Estimate.line_items))
                    .order_by(Estimate.created_at.desc(), Estimate.id.desc()), page, per_page)


def open_for(customer: Customer, limit: int = 50) -> list[Estimate]:
    """Sent and not past their valid-until date, newest first."""
    return list(db.session.scalars(
        select(Estimate).where(Estimate.customer_id == customer.id, Estimate.status == "sent",
                               (Estimate.valid_until.is_(None)) | (Estimate.valid_until >= clock.today()))
        .options(selectinload(Estimate.line_items))
        .order_by(Estimate.created_at.desc(), Estimate.id.desc()).limit(limit)))


def estimate_of(customer: Customer, estimate_id: int) -> Estimate:
    """One of the customer's estimates they may see, or NotFound."""
    return found(db.session.scalars(select(Estimate).where(Estimate.id == estimate_id,
                                                           Estimate.customer_id == customer.id,
                                                           Estimate.status.in_(VISIBLE))).first(),
                 "Estimate not found.")


def load(estimate_id: int) -> Estimate:
    """An estimate by id (staff side), or NotFound."""
    return found(db.session.get(Estimate, estimate_id), "Estimate not found.")


def is_expired(estimate: Estimate) -> bool:
    return estimate.status == "expired" or (
        estimate.status == "sent" and estimate.valid_until is not None and estimate.valid_until < clock.today())


def is_open(estimate: Estimate) -> bool:
    return estimate.status == "sent" and not is_expired(estimate)


def open_deposit_attempt(estimate: Estimate) -> ChargeAttempt | None:
    return db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.estimate_id == estimate.id,
                                                          ChargeAttempt.status.in_(charges.OPEN))).first()


def lock(estimate: Estimate) -> Estimate:
    """The estimate's row, locked until commit (PostgreSQL): approving with a deposit and declining
    cannot interleave."""
    return db.session.scalars(select(Estimate).where(Estimate.id == estimate.id).with_for_update()
                              .execution_options(populate_existing=True)).one()


def refuse_unless_open(estimate: Estimate) -> None:
    if estimate.status in ("approved", "converted"):
        raise ServiceError(_("This estimate is already approved."))
    if estimate.status == "declined":
        raise ServiceError(_("This estimate was declined, so it can no longer be approved. Send us a message if "
                             "you changed your mind."))
    if is_expired(estimate):
        raise ServiceError(_("This estimate has expired. Send us a message and we will update it."))
    if estimate.status != "sent":
        raise ServiceError(_("This estimate cannot be answered now."))


def clean_name(name: str | None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("name", _("Type your full name to approve."))
    if len(name) > 160:
        raise ValidationError("name", _("Keep the name under %(n)d characters.", n=160))
    return name


def approve(estimate: Estimate, name: str | None, ip: str | None) -> None:
    """An estimate without a deposit. Exactly once, even for two clicks at the same time. Caller commits."""
    name = clean_name(name)
    refuse_unless_open(estimate)
    if estimate.deposit_cents:
        raise ServiceError(_("This estimate needs a deposit; pay it to approve."))
    now = clock.now()
    result = execute_dml(update(Estimate).where(Estimate.id == estimate.id, Estimate.status == "sent")
                                .values(status="approved", approved_at=now, approved_name=name,
                                        approved_ip=(ip or "")[:45] or None)
                                .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.rollback()
        raise ServiceError(_("This estimate is already approved."))
    db.session.refresh(estimate)
    _answered(estimate)


def approve_with_deposit(customer: Customer, estimate: Estimate, name: str | None, ip: str | None, card: Card,
                         token: str | None) -> charges.Outcome:
    """Charge the deposit; the estimate is approved when the charge succeeds. Commits."""
    name = clean_name(name)
    estimate = lock(estimate)
    refuse_unless_open(estimate)
    charges.release_if_abandoned(open_deposit_attempt(estimate))  # a 3-D Secure window closed unconfirmed
    db.session.refresh(estimate)
    refuse_unless_open(estimate)  # ... unless it went through after all
    if open_deposit_attempt(estimate) is not None:
        raise ServiceError(_("Your deposit payment is being processed. Reload the page in a minute."))
    estimate.approved_name = name
    estimate.approved_ip = (ip or "")[:45] or None
    db.session.flush()
    try:
        return charges.charge_card(customer, card, estimate.deposit_cents, token=token, purpose="deposit",
                                   off_session=False, initiated_by="customer", estimate_id=estimate.id)
    finally:
        db.session.refresh(estimate)


def on_deposit_paid(attempt: ChargeAttempt, *, payment: Payment) -> None:
    """A deposit charge settled as succeeded: the estimate is approved. Receiver of `events.charge_succeeded`;
    caller commits."""
    if not attempt.estimate_id:
        return
    estimate = db.session.get(Estimate, attempt.estimate_id)
    if estimate is None:
        return
    result = execute_dml(update(Estimate).where(Estimate.id == estimate.id, Estimate.status == "sent")
                                .values(status="approved", approved_at=clock.now(), deposit_payment_id=payment.id)
                                .execution_options(synchronize_session=False))
    db.session.refresh(estimate)
    if result.rowcount == 1:
        _answered(estimate, payment)
    else:
        activity.record(estimate.customer_id, "estimate",
                        f"Deposit {format_money(payment.amount_cents, payment.currency)} received for estimate "
                        f"{estimate.number}, which was already {estimate.status}; it is kept on account.")


def decline(estimate: Estimate, reason: str | None) -> None:
    """Caller commits."""
    reason = (reason or "").strip() or None
    if reason and len(reason) > MAX_REASON:
        raise ValidationError("reason", _("Keep the reason under %(n)d characters.", n=MAX_REASON))
    estimate = lock(estimate)
    if estimate.status == "declined":
        raise ServiceError(_("This estimate is already declined."))
    if estimate.status in ("approved", "converted"):
        raise ServiceError(_("This estimate is already approved. Send us a message to change it."))
    if is_expired(estimate) or estimate.status != "sent":
        raise ServiceError(_("This estimate cannot be answered now."))
    if open_deposit_attempt(estimate) is not None:
        raise ServiceError(_("Your deposit payment is being processed. Reload the page in a minute."))
    result = execute_dml(update(Estimate).where(Estimate.id == estimate.id, Estimate.status == "sent")
                                .values(status="declined", declined_at=clock.now(), decline_reason=reason,
                                        approved_name=None, approved_ip=None)
                                .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.rollback()
        raise ServiceError(_("This estimate cannot be answered now."))
    db.session.refresh(estimate)
    _answered(estimate)


def _answered(estimate: Estimate, deposit: Payment | None = None) -> None:
    customer = get_existing(Customer, estimate.customer_id)
    total = format_money(estimate.total_cents, estimate.currency)
    if estimate.status == "approved":
        summary = (f"Estimate {estimate.number} ({total}) approved by {estimate.approved_name}"
                   + (f" with a deposit of {format_money(deposit.amount_cents, deposit.currency)}" if deposit else ""))
    else:
        summary = f"Estimate {estimate.number} ({total}) declined" + (
            f": {estimate.decline_reason[:200]}" if estimate.decline_reason else "")
    activity.record(customer.id, "estimate", summary, actor_kind="customer",
                    detail=f"IP {estimate.approved_ip}" if estimate.status == "approved" else None)
    messages.email_staff(customer, "estimate_answered", {"estimate": estimate, "sender": customer, "deposit": deposit},
                         subject_args={"number": estimate.number, "answer": estimate.status}, log_activity=False)


# --- Staff side: create, send, convert (issue: staff admin) -----------------------------------------------

def _staff_terms(title: str | None, message: str | None, deposit_cents: int, valid_until, lines) -> tuple:
    title = " ".join((title or "").split())
    if not title:
        raise ValidationError("title", "Enter a title.")
    if len(title) > 200:
        raise ValidationError("title", "Keep the title under 200 characters.")
    message = (message or "").strip() or None
    if message and len(message) > 5000:
        raise ValidationError("message", "Keep the message under 5000 characters.")
    if not lines:
        raise ValidationError("lines", "Add at least one line.")
    total = sum(line.amount_cents for line in lines)
    if deposit_cents < 0 or deposit_cents > total:
        raise ValidationError("deposit", "The deposit must be between 0 and the estimate's total.")
    if 0 < deposit_cents < 50:
        raise ValidationError("deposit", "A deposit must be at least 0.50.")
    if valid_until is not None and valid_until < clock.today():
        raise ValidationError("valid_until", "“Valid until” cannot be in the past.")
    return title, message


def _set_lines(estimate: Estimate, lines) -> None:
    estimate.line_items.clear()
    for i, line in enumerate(lines):
        estimate.line_items.append(EstimateLineItem(description=line.description, quantity=line.quantity,
                                                    unit_price_cents=line.unit_price_cents, position=i))


def create(customer: Customer, staff, *, title: str | None, message: str | None, lines, deposit_cents: int = 0,
           valid_until=None) -> Estimate:
    title, message = _staff_terms(title, message, deposit_cents, valid_until, lines)
    estimate = Estimate(customer_id=customer.id, title=title, message=message, status="draft",
                        currency=settings.currency(), deposit_cents=deposit_cents, valid_until=valid_until,
                        created_by_id=staff.id, created_at=clock.now(),
                        number=settings.next_number("estimate", lambda n: db.session.scalar(
                            select(Estimate.id).where(Estimate.number == n))))
    _set_lines(estimate, lines)
    db.session.add(estimate)
    db.session.flush()
    activity.record(customer.id, "estimate", f"Estimate {estimate.number} “{title}” created by {staff.name}: "
                    f"{format_money(estimate.total_cents, estimate.currency)}", staff=staff)
    return estimate


def edit(estimate: Estimate, staff, *, title: str | None, message: str | None, lines, deposit_cents: int,
           valid_until) -> None:
    estimate = lock(estimate)
    if estimate.status not in ("draft", "sent"):
        raise ServiceError(f"An estimate that is {estimate.status} cannot be edited.")
    if open_deposit_attempt(estimate) is not None:
        raise ServiceError("The customer's deposit payment is being processed; wait for it to settle.")
    if estimate.status == "sent":
        # The customer must not approve a price they have not been sent: back to draft until it is sent again.
        estimate.status = EstimateStatus.DRAFT
    estimate.title, estimate.message = _staff_terms(title, message, deposit_cents, valid_until, lines)
    estimate.deposit_cents, estimate.valid_until = deposit_cents, valid_until
    _set_lines(estimate, lines)
    activity.record(estimate.customer_id, "estimate", f"Estimate {estimate.number} edited by {staff.name}",
                    staff=staff)


def send(estimate: Estimate, staff) -> None:
    """Email the customer a portal link that opens the estimate. Sent and resent alike."""
    customer = get_existing(Customer, estimate.customer_id)
    if estimate.status not in ("draft", "sent"):
        raise ServiceError(f"An estimate that is {estimate.status} is not sent again.")
    if is_expired(estimate) or (estimate.valid_until is not None and estimate.valid_until < clock.today()):
        raise ServiceError("This estimate's “valid until” date has passed; edit it before sending.")
    if not estimate.line_items:
        raise ServiceError("Add at least one line before sending.")
    if not customer.primary_email:
        raise ServiceError("This customer has no email address.")
    if not customer.can_log_in:
        raise ServiceError("Archived or blacklisted customers cannot be sent estimates.")
    resend = estimate.status == "sent"
    estimate.status = EstimateStatus.SENT
    estimate.sent_at = clock.now()
    link = magic_links.portal_link(customer, f"/portal/estimates/{estimate.id}")
    mailer.queue_email("estimate_sent", customer.primary_email,
                       {"estimate": estimate, "link": link, "subject_args": {"number": estimate.number}},
                       customer=customer, actor=staff)
    activity.record(customer.id, "estimate", f"Estimate {estimate.number} {'resent' if resend else 'sent'} by "
                    f"{staff.name}", staff=staff)


def convert_to_job(estimate: Estimate, staff):
    """An approved estimate becomes a job with the same lines (once)."""
    if estimate.status == "converted" and estimate.job_id:
        raise ServiceError("This estimate is already a job.")
    if estimate.status != "approved":
        raise ServiceError("Only an approved estimate can become a job.")
    result = execute_dml(update(Estimate).where(Estimate.id == estimate.id, Estimate.status == "approved")
                                .values(status="converted").execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise ServiceError("This estimate is already a job.")
    customer = get_existing(Customer, estimate.customer_id)
    job = work_orders.create_job(customer, staff, title=estimate.title, description=estimate.message,
                          lines=[Line(li.description, li.quantity, li.unit_price_cents) for li in estimate.line_items])
    db.session.refresh(estimate)
    estimate.job_id = job.id
    activity.record(customer.id, "estimate", f"Estimate {estimate.number} converted into job {job.number} by "
                    f"{staff.name}", staff=staff)
    return job


def staff_list(status: str | None = None, customer: Customer | None = None, limit: int = 100) -> list[Estimate]:
    q = select(Estimate).options(selectinload(Estimate.line_items), selectinload(Estimate.customer))
    if status:
        q = q.where(Estimate.status == status)
    if customer is not None:
        q = q.where(Estimate.customer_id == customer.id)
    return list(db.session.scalars(q.order_by(Estimate.created_at.desc(), Estimate.id.desc()).limit(limit)))
