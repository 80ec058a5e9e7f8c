"""Issue 14: chargebacks. Stripe sends `charge.dispute.created` when a cardholder disputes a card payment and
`charge.dispute.closed` when the bank decides. The payment then reads "Disputed", staff are told (an email and
the dashboard, through the `payment_disputed` event), and a lost dispute is recorded as an Adjustment: the
disputed amount left the business.

The dispute is taken from the signed event itself (the local sandbox has no disputes API to re-fetch it from);
a late `created` after `closed` changes nothing. Caller commits (the webhook, with its event id).
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal import clock
from portal.extensions import db, get_existing
from portal.models import Adjustment, ChargeAttempt, Dispute, Payment
from portal.money import format_money
from portal.services import events
from portal.services.payments import gateway
from portal.services.platform import activity

REASONS = {
    "fraudulent": "the cardholder says they did not make it",
    "duplicate": "charged twice",
    "product_not_received": "service not received",
    "product_unacceptable": "service not as described",
    "subscription_canceled": "the cardholder says the plan was cancelled",
    "credit_not_processed": "a promised refund was not made",
    "unrecognized": "the cardholder does not recognise the charge",
    "general": "no reason given",
}


def reason_text(reason: str | None) -> str:
    return REASONS.get(reason or "general", (reason or "general").replace("_", " "))


def _payment_for(obj) -> Payment | None:
    """The card payment a dispute is about: by its PaymentIntent, else by its charge."""
    attempt = None
    pi = gateway.id_of(gateway.get(obj, "payment_intent"))
    if pi:
        attempt = db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.stripe_payment_intent_id == pi)).first()
    charge = gateway.id_of(gateway.get(obj, "charge"))
    if attempt is None and charge:
        attempt = db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.stripe_charge_id == charge)).first()
    if attempt is None:
        return None
    return db.session.scalars(select(Payment).where(Payment.charge_attempt_id == attempt.id)).first()


def _amount(obj, payment: Payment) -> int:
    try:
        return int(gateway.get(obj, "amount", default=payment.amount_cents))
    except (TypeError, ValueError):
        return payment.amount_cents


def on_created(obj) -> Dispute | None:
    """charge.dispute.created (also .updated / .funds_withdrawn): record the dispute once."""
    dispute_id = gateway.get(obj, "id")
    if not isinstance(dispute_id, str):
        return None
    row = db.session.scalars(select(Dispute).where(Dispute.stripe_dispute_id == dispute_id)).first()
    if row is not None:
        if row.is_open:
            row.status = str(gateway.get(obj, "status", default=row.status))[:30]
        return row
    payment = _payment_for(obj)
    if payment is None:
        return None  # not one of our payments
    row = Dispute(stripe_dispute_id=dispute_id, payment_id=payment.id, customer_id=payment.customer_id,
                  amount_cents=_amount(obj, payment), currency=payment.currency,
                  reason=str(gateway.get(obj, "reason", default="general"))[:60],
                  status=str(gateway.get(obj, "status", default="needs_response"))[:30], opened_at=clock.now())
    db.session.add(row)
    db.session.flush()
    activity.record(payment.customer_id, "payment", f"Payment of {format_money(payment.amount_cents, payment.currency)}"
                    f" disputed by the cardholder ({reason_text(row.reason)}): "
                    f"{format_money(row.amount_cents, row.currency)} held by the bank until it decides.")
    events.payment_disputed.send(row, payment=payment, closed=False)
    return row


def on_closed(obj) -> Dispute | None:
    """charge.dispute.closed: won (the money comes back) or lost (an Adjustment records that it left)."""
    row = on_created(obj)  # a closed dispute we never heard open is recorded first
    if row is None or not row.is_open:
        return row
    row.status = str(gateway.get(obj, "status", default="lost"))[:30]
    row.closed_at = clock.now()
    payment = get_existing(Payment, row.payment_id)
    if row.status == "lost":
        db.session.add(Adjustment(customer_id=row.customer_id, payment_id=payment.id, amount_cents=-row.amount_cents,
                                  reason=f"Dispute lost ({reason_text(row.reason)}): the bank returned "
                                         f"{format_money(row.amount_cents, row.currency)} to the cardholder",
                                  created_at=clock.now()))
    outcome = {"won": "won: the money stays with the business", "lost": "lost: the money went back to the cardholder",
               "warning_closed": "closed without a chargeback"}.get(row.status, row.status.replace("_", " "))
    activity.record(row.customer_id, "payment", f"Dispute of {format_money(row.amount_cents, row.currency)} "
                    f"{outcome}.")
    events.payment_disputed.send(row, payment=payment, closed=True)
    return row


def open_disputes(limit: int = 20) -> list[Dispute]:
    """The dashboard's entry: disputes the bank has not decided yet, oldest first."""
    return list(db.session.scalars(select(Dispute).where(Dispute.closed_at.is_(None))
                                   .options(selectinload(Dispute.customer))
                                   .order_by(Dispute.opened_at, Dispute.id).limit(limit)))


def of_payment(payment: Payment) -> list[Dispute]:
    return list(db.session.scalars(select(Dispute).where(Dispute.payment_id == payment.id).order_by(Dispute.id)))
