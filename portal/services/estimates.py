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
from portal.extensions import db
from portal.models import Card, ChargeAttempt, Customer, Estimate, Payment
from portal.money import format_money
from portal.services import activity, charges, mailer, messages
from portal.services.errors import ServiceError, ValidationError

VISIBLE = ("sent", "approved", "declined", "converted", "expired")
MAX_REASON = 2000


def for_customer(customer: Customer) -> list[Estimate]:
    return list(db.session.scalars(select(Estimate).where(Estimate.customer_id == customer.id,
                                                          Estimate.status.in_(VISIBLE))
                                   .options(selectinload(Estimate.line_items))
                                   .order_by(Estimate.created_at.desc(), Estimate.id.desc())))


def open_for(customer: Customer) -> list[Estimate]:
    return [e for e in for_customer(customer) if is_open(e)]


def estimate_of(customer: Customer, estimate_id: int) -> Estimate | None:
    return db.session.scalars(select(Estimate).where(Estimate.id == estimate_id, Estimate.customer_id == customer.id,
                                                     Estimate.status.in_(VISIBLE))).first()


def is_expired(estimate: Estimate) -> bool:
    return estimate.status == "expired" or (
        estimate.status == "sent" and estimate.valid_until is not None and estimate.valid_until < clock.today())


def is_open(estimate: Estimate) -> bool:
    return estimate.status == "sent" and not is_expired(estimate)


def open_deposit_attempt(estimate: Estimate) -> ChargeAttempt | None:
    return db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.estimate_id == estimate.id,
                                                          ChargeAttempt.status.in_(charges.OPEN))).first()


def _refuse_unless_open(estimate: Estimate) -> None:
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
    """An estimate without a deposit. Exactly once, even for two clicks at the same time. Commits."""
    name = clean_name(name)
    _refuse_unless_open(estimate)
    if estimate.deposit_cents:
        raise ServiceError(_("This estimate needs a deposit; pay it to approve."))
    now = clock.now()
    result = db.session.execute(update(Estimate).where(Estimate.id == estimate.id, Estimate.status == "sent")
                                .values(status="approved", approved_at=now, approved_name=name,
                                        approved_ip=(ip or "")[:45] or None)
                                .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.rollback()
        raise ServiceError(_("This estimate is already approved."))
    db.session.refresh(estimate)
    _answered(estimate)
    db.session.commit()


def approve_with_deposit(customer: Customer, estimate: Estimate, name: str | None, ip: str | None, card: Card,
                         token: str | None) -> charges.Outcome:
    """Charge the deposit; the estimate is approved when the charge succeeds. Commits."""
    name = clean_name(name)
    _refuse_unless_open(estimate)
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


def on_deposit_paid(attempt: ChargeAttempt, payment: Payment) -> None:
    """Called when a deposit charge settles as succeeded. Caller commits."""
    estimate = db.session.get(Estimate, attempt.estimate_id)
    if estimate is None:
        return
    result = db.session.execute(update(Estimate).where(Estimate.id == estimate.id, Estimate.status == "sent")
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
    """Commits."""
    reason = (reason or "").strip() or None
    if reason and len(reason) > MAX_REASON:
        raise ValidationError("reason", _("Keep the reason under %(n)d characters.", n=MAX_REASON))
    if estimate.status == "declined":
        raise ServiceError(_("This estimate is already declined."))
    if estimate.status in ("approved", "converted"):
        raise ServiceError(_("This estimate is already approved. Send us a message to change it."))
    if is_expired(estimate) or estimate.status != "sent":
        raise ServiceError(_("This estimate cannot be answered now."))
    if open_deposit_attempt(estimate) is not None:
        raise ServiceError(_("Your deposit payment is being processed. Reload the page in a minute."))
    result = db.session.execute(update(Estimate).where(Estimate.id == estimate.id, Estimate.status == "sent")
                                .values(status="declined", declined_at=clock.now(), decline_reason=reason,
                                        approved_name=None, approved_ip=None)
                                .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.rollback()
        raise ServiceError(_("This estimate cannot be answered now."))
    db.session.refresh(estimate)
    _answered(estimate)
    db.session.commit()


def _answered(estimate: Estimate, deposit: Payment | None = None) -> None:
    customer = db.session.get(Customer, estimate.customer_id)
    total = format_money(estimate.total_cents, estimate.currency)
    if estimate.status == "approved":
        summary = (f"Estimate {estimate.number} ({total}) approved by {estimate.approved_name}"
                   + (f" with a deposit of {format_money(deposit.amount_cents, deposit.currency)}" if deposit else ""))
    else:
        summary = f"Estimate {estimate.number} ({total}) declined" + (
            f": {estimate.decline_reason[:200]}" if estimate.decline_reason else "")
    activity.record(customer.id, "estimate", summary, actor_kind="customer",
                    detail=f"IP {estimate.approved_ip}" if estimate.status == "approved" else None)
    for address in messages.staff_recipients(customer):
        mailer.queue_email("estimate_answered", address, {
            "estimate": estimate, "sender": customer, "deposit": deposit,
            "subject_args": {"number": estimate.number, "answer": estimate.status, "name": customer.display_name}},
                           language="en", log_activity=False)
