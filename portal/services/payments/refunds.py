"""R-1 … R-6: refunds. Our code enforces the rules (the sandbox lets refunds exceed the charge).

A refund is claimed before Stripe is called: the Refund row (unique key from the form) and a
conditional UPDATE that raises the payment's refunded amount only while it stays within the
payment. Two submissions of one form, or two forms at once, cannot refund more than was paid.

Transactions: like charges, a refund's claim is committed before Stripe is called and its outcome is committed
with its effects; this module commits, its callers do not need to.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from portal import clock
from portal.extensions import db, execute_dml, get_existing
from portal.models import (
    Adjustment,
    ChargeAttempt,
    Customer,
    Payment,
    PaymentStatus,
    PlanPayment,
    Refund,
    RefundStatus,
    StaffUser,
)
from portal.money import format_money
from portal.services.errors import ValidationError
from portal.services.payments import charges, gateway
from portal.services.platform import activity, magic_links, mailer, once, settings

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def refundable_cents(payment: Payment) -> int:
    return max(payment.amount_cents - payment.refunded_cents, 0)


def window_closes_at(payment: Payment) -> datetime:
    return payment.received_at + timedelta(days=settings.get().refund_window_days)


def plan_payment_ids(payment: Payment) -> list[int]:
    return [a.plan_payment_id for a in payment.allocations if a.plan_payment_id]


def why_not(payment: Payment) -> str | None:
    """The reason a refund is not possible now, or None (shown on the page before anyone tries)."""
    if payment.status == "refunded" or refundable_cents(payment) == 0:
        return "This payment has been fully refunded."
    if payment.method != "card" and plan_payment_ids(payment):
        return ("Cash, check and other payments of a service plan cannot be refunded through the plan. "
                "Cancel the plan instead.")
    if payment.method == "card" and clock.now() > window_closes_at(payment):
        days = settings.get().refund_window_days
        return (f"Card payments can be refunded for {days} days; this one was received on "
                f"{payment.received_at.date().isoformat()}, so the window closed on "
                f"{window_closes_at(payment).date().isoformat()}. Record a hand refund (cash or check) instead.")
    return None


def refund(payment: Payment, amount_cents: int, reason: str | None, actor: StaffUser, token: str | None, *,
           still_owed: bool = False) -> Refund:
    """Refund a payment fully or partly. Card payments go through Stripe; others are recorded by hand. Commits.

    R-7: the refunded money is given back, not owed again: the invoices it paid stay paid and read "Refunded" /
    "Partially refunded". `still_owed` (staff ticked "the customer still owes this") makes it owed again on them."""
    key = f"refund_{token}" if token and _TOKEN.match(token) else f"refund_{charges.new_token()}"
    existing = db.session.scalars(select(Refund).where(Refund.idempotency_key == key)).first()
    if existing is not None and existing.payment_id == payment.id:
        return existing  # the same form submitted again: its refund, before the rules it now fails
    if existing is not None:
        key = f"refund_{charges.new_token()}"  # a key from another payment's form is not this refund
    problem = why_not(payment)
    if problem:
        raise ValidationError("amount", problem)
    if amount_cents <= 0:
        raise ValidationError("amount", "Enter an amount above zero.")
    if still_owed and plan_payment_ids(payment):
        raise ValidationError("still_owed", "A plan payment refunded is not billed again: collect it with the plan's "
                                            "Pay button if the customer still owes it.")
    left = refundable_cents(payment)
    if amount_cents > left:
        raise ValidationError("amount", f"At most {format_money(left, payment.currency)} can still be refunded "
                                        f"(paid {format_money(payment.amount_cents, payment.currency)}, refunded "
                                        f"{format_money(payment.refunded_cents, payment.currency)}).")
    row = Refund(payment_id=payment.id, customer_id=payment.customer_id, amount_cents=amount_cents,
                 reason=(reason or "").strip()[:300] or None, method=payment.method, status="pending",
                 idempotency_key=key, created_by_id=actor.id, still_owed=still_owed, created_at=clock.now())
    found = once.add_or_existing(row, Refund.idempotency_key, key)
    if found is not row:
        return found
    claimed = execute_dml(
        update(Payment).where(Payment.id == payment.id,
                              Payment.refunded_cents + amount_cents <= Payment.amount_cents)
        .values(refunded_cents=Payment.refunded_cents + amount_cents)
        .execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        db.session.rollback()
        raise ValidationError("amount", "That is more than what remains refundable; the payment was refunded "
                                        "meanwhile. Reload the page.")
    db.session.refresh(payment)
    _payment_status(payment)
    if still_owed:
        _unapply(payment, amount_cents)
    else:
        _count_refunded(payment, amount_cents)
    customer = get_existing(Customer, payment.customer_id)
    activity.record(customer.id, "refund", f"Refund of {format_money(amount_cents, payment.currency)} started "
                    f"({payment.method}){': ' + row.reason if row.reason else ''}", staff=actor,
                    invoice_id=_first_invoice_id(payment))
    db.session.commit()
    if payment.method != "card":
        row.status, row.settled_at = "succeeded", clock.now()
        _receipt(row)
        db.session.commit()
        return row
    payment_intent_id = _payment_intent_of(payment)
    try:
        stripe_refund = gateway.create_refund(payment_intent_id=payment_intent_id,
                                              amount=amount_cents, metadata={"refund_key": key},
                                              idempotency_key=key)
    except gateway.StripeError as exc:
        failure = gateway.classify(exc)
        if failure.outcome != "unknown":
            fail(row, failure.message)
        db.session.commit()
        return row
    apply_stripe_status(row, stripe_refund)
    db.session.commit()
    return row


def _payment_intent_of(payment: Payment) -> str:
    """The Stripe PaymentIntent of a card payment: its charge attempt settled as succeeded, which records it."""
    attempt = get_existing(ChargeAttempt, payment.charge_attempt_id)
    if attempt.stripe_payment_intent_id is None:
        raise LookupError(f"Charge attempt {attempt.id} of card payment {payment.id} has no PaymentIntent")
    return attempt.stripe_payment_intent_id


def apply_stripe_status(row: Refund, stripe_refund) -> None:
    """Stripe's word on a refund. The receipt goes out when Stripe first accepts it."""
    # Claim the first answer once: the request, the webhook and the reconciler may all bring it.
    first_answer = row.stripe_refund_id is None and execute_dml(
        update(Refund).where(Refund.id == row.id, Refund.stripe_refund_id.is_(None))
        .values(stripe_refund_id=stripe_refund.id).execution_options(synchronize_session=False)).rowcount == 1
    db.session.refresh(row)
    if stripe_refund.status in ("failed", "canceled"):
        fail(row, gateway.get(stripe_refund, "failure_reason") or "The card network returned the refund.")
        return
    if stripe_refund.status == "succeeded" and row.status == "pending":
        row.status, row.settled_at = RefundStatus.SUCCEEDED, clock.now()
    if first_answer and stripe_refund.status in ("succeeded", "pending"):
        _receipt(row)


def _receipt(row: Refund) -> None:
    payment = get_existing(Payment, row.payment_id)
    customer = get_existing(Customer, payment.customer_id)
    activity.record(customer.id, "refund", f"Refund of {format_money(row.amount_cents, payment.currency)} "
                    f"{'completed' if row.status == 'succeeded' else 'sent to the bank'}",
                    invoice_id=_first_invoice_id(payment))
    if customer.primary_email:
        link = magic_links.portal_link(customer, f"/portal/payments/{payment.id}") if customer.can_log_in else None
        mailer.queue_email("refund_receipt", customer.primary_email, {"refund": row, "payment": payment, "link": link},
                           customer=customer)


def fail(row: Refund, reason: str | None) -> bool:
    """R-4: the refund failed; an Adjustment says the money stayed with the business and the balance returns."""
    claimed = execute_dml(
        update(Refund).where(Refund.id == row.id, Refund.status.in_(("pending", "succeeded")))
        .values(status="failed", failure_reason=(reason or "")[:300], settled_at=clock.now())
        .execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        return False
    db.session.refresh(row)
    payment = get_existing(Payment, row.payment_id)
    db.session.execute(update(Payment).where(Payment.id == payment.id)
                       .values(refunded_cents=Payment.refunded_cents - row.amount_cents)
                       .execution_options(synchronize_session=False))
    db.session.refresh(payment)
    _payment_status(payment)
    invoice_id = _reapply(payment, row.amount_cents) if row.still_owed else _count_refunded(payment, -row.amount_cents)
    invoice_id = invoice_id or _first_invoice_id(payment)
    db.session.add(Adjustment(customer_id=payment.customer_id, refund_id=row.id, payment_id=payment.id,
                              invoice_id=invoice_id, amount_cents=row.amount_cents,
                              reason=f"Refund failed ({reason or 'no reason given'}); the money stayed with the "
                                     "business", created_at=clock.now()))
    activity.record(payment.customer_id, "refund", f"Refund of {format_money(row.amount_cents, payment.currency)} "
                    f"failed: {reason or 'no reason given'}. Adjustment recorded; balance restored.",
                    invoice_id=invoice_id)
    return True


def _payment_status(payment: Payment) -> None:
    if payment.refunded_cents <= 0:
        payment.status = PaymentStatus.SUCCEEDED
    elif payment.refunded_cents >= payment.amount_cents:
        payment.status = PaymentStatus.REFUNDED
    else:
        payment.status = PaymentStatus.PARTIALLY_REFUNDED
    ids = plan_payment_ids(payment)
    if ids:  # SP-4: the plan's Payments section shows refunds
        db.session.execute(update(PlanPayment).where(PlanPayment.id.in_(ids), PlanPayment.payment_id == payment.id)
                           .values(status="paid" if payment.status == "succeeded" else payment.status)
                           .execution_options(synchronize_session=False))


def _first_invoice_id(payment: Payment) -> int | None:
    return next((a.invoice_id for a in payment.allocations if a.invoice_id), None)


def _count_refunded(payment: Payment, amount_cents: int) -> int | None:
    """R-7: count a refund (or, negative, a failed refund's return, R-4) on the invoices the payment paid, latest
    allocation first; what they were paid does not change, so nothing is owed again. Returns the first invoice."""
    left, back = abs(amount_cents), amount_cents < 0
    first = None
    for allocation in sorted(payment.allocations, key=lambda a: a.id, reverse=not back):
        if not allocation.invoice_id or left <= 0:
            continue
        invoice = charges.lock_invoice(allocation.invoice_id)
        room = invoice.refunded_cents if back else max(invoice.paid_cents - invoice.refunded_cents, 0)
        take = min(left, allocation.amount_cents, room)
        if take <= 0:
            continue
        invoice.refunded_cents += -take if back else take
        first = first or invoice.id
        left -= take
    return first


def _unapply(payment: Payment, amount_cents: int) -> None:
    """"The customer still owes this": the refunded money is owed again on the invoices the payment paid (latest
    allocation first)."""
    left = amount_cents
    for allocation in sorted(payment.allocations, key=lambda a: a.id, reverse=True):
        if not allocation.invoice_id or left <= 0:
            continue
        invoice = charges.lock_invoice(allocation.invoice_id)
        take = min(left, allocation.amount_cents, invoice.paid_cents)
        if take <= 0:
            continue
        invoice.paid_cents -= take
        charges.refresh_invoice_status(invoice)
        left -= take


def _reapply(payment: Payment, amount_cents: int) -> int | None:
    first = None
    left = amount_cents
    for allocation in sorted(payment.allocations, key=lambda a: a.id):
        if not allocation.invoice_id or left <= 0:
            continue
        invoice = charges.lock_invoice(allocation.invoice_id)
        take = min(left, allocation.amount_cents, max(invoice.total_cents - invoice.paid_cents, 0))
        if take <= 0:
            continue
        invoice.paid_cents += take
        charges.refresh_invoice_status(invoice)
        first = first or invoice.id
        left -= take
    return first


def on_stripe_refund(stripe_refund) -> Refund | None:
    """charge.refunded / charge.refund.updated: apply the re-fetched refund's status (PAY-8)."""
    row = db.session.scalars(select(Refund).where(Refund.stripe_refund_id == stripe_refund.id)).first()
    if row is None:
        key = gateway.get(stripe_refund, "metadata", "refund_key")
        row = db.session.scalars(select(Refund).where(Refund.idempotency_key == key)).first() if key else None
    if row is None:
        return None
    apply_stripe_status(row, stripe_refund)
    return row


def reconcile(batch_size: int = 100) -> dict:
    """Pending card refunds whose Stripe answer we did not record: look them up, never refund twice."""
    cutoff = clock.now() - timedelta(minutes=int(current_app.config["STRIPE_RECONCILE_AFTER_MINUTES"]))
    done = {"settled": 0, "errors": 0}
    last_id = 0
    while True:
        rows = db.session.scalars(select(Refund).where(Refund.status == "pending", Refund.method == "card",
                                                       Refund.created_at <= cutoff, Refund.id > last_id)
                                  .order_by(Refund.id).limit(batch_size)).all()
        if not rows:
            return done
        last_id = rows[-1].id
        _reconcile_rows(rows, done)


def _reconcile_rows(rows, done: dict) -> None:
    for row in rows:
        payment = get_existing(Payment, row.payment_id)
        try:
            if row.stripe_refund_id:
                found = gateway.retrieve_refund(row.stripe_refund_id)
            else:
                found = next((r for r in gateway.list_refunds(_payment_intent_of(payment))
                              if gateway.get(r, "metadata", "refund_key") == row.idempotency_key), None)
        except gateway.StripeError:
            db.session.rollback()
            done["errors"] += 1
            continue
        if found is None:
            fail(row, "The refund never reached Stripe")
        else:
            apply_stripe_status(row, found)
        db.session.commit()
        done["settled"] += 1


def record_outside(stripe_refund) -> Refund | None:
    """charge.refunded for a refund made outside the app (the Stripe dashboard): recorded once, like a refund
    staff made here without "the customer still owes this" (R-7), with its receipt. Caller commits (the webhook,
    with its event id); the Refund's unique Stripe id keeps a second event from recording it again."""
    if gateway.get(stripe_refund, "status") in ("failed", "canceled"):
        return None
    pi = gateway.id_of(gateway.get(stripe_refund, "payment_intent"))
    attempt = db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.stripe_payment_intent_id == pi)).first() \
        if pi else None
    payment = db.session.scalars(select(Payment).where(Payment.charge_attempt_id == attempt.id)).first() \
        if attempt is not None else None
    if payment is None:
        return None  # not one of our payments
    amount = min(int(gateway.get(stripe_refund, "amount", default=0)), refundable_cents(payment))
    if amount <= 0:
        return None
    claimed = execute_dml(
        update(Payment).where(Payment.id == payment.id, Payment.refunded_cents + amount <= Payment.amount_cents)
        .values(refunded_cents=Payment.refunded_cents + amount).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        return None
    succeeded = gateway.get(stripe_refund, "status") == "succeeded"
    row = Refund(payment_id=payment.id, amount_cents=amount, reason="Refunded in the Stripe dashboard",
                 method="card", status=RefundStatus.SUCCEEDED if succeeded else RefundStatus.PENDING,
                 idempotency_key=f"refund_stripe_{stripe_refund.id}"[:80], stripe_refund_id=stripe_refund.id,
                 created_at=clock.now(), settled_at=clock.now() if succeeded else None)
    db.session.add(row)
    db.session.flush()
    db.session.refresh(payment)
    _payment_status(payment)
    _count_refunded(payment, amount)
    activity.record(payment.customer_id, "refund", f"Refund of {format_money(amount, payment.currency)} made in the "
                    "Stripe dashboard recorded", invoice_id=_first_invoice_id(payment))
    _receipt(row)
    return row
