"""PAY-8: Stripe webhooks. Verified, stored by event id in the same transaction as their effect,
processed once; objects are re-fetched from Stripe so a late or out-of-order event cannot undo a
settled payment.
Transactions: each event is committed with its effect (the stored event id makes it run once).
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal import clock
from portal.extensions import db
from portal.models import Card, ChargeAttempt, Customer, ProcessedWebhookEvent
from portal.services.payments import cards, charges, disputes, gateway, refunds


class Rejected(Exception):
    """Bad signature, wrong secret, stale timestamp or a body that is not an event: 400, nothing changes."""


class TryLater(Exception):
    """Stripe could not be reached to re-fetch the object: 503 so Stripe delivers the event again."""


HANDLED = ("payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled",
           "charge.refunded", "charge.refund.updated", "setup_intent.succeeded", "payment_method.detached",
           # issue 14: what real Stripe sends and the sandbox never does
           "charge.dispute.created", "charge.dispute.updated", "charge.dispute.funds_withdrawn",
           "charge.dispute.closed", "payment_method.automatically_updated", "payment_method.updated")


def handle(payload: bytes, signature: str | None) -> str:
    secret = gateway.webhook_secret()
    if not secret:
        raise Rejected("no webhook secret is configured")
    try:
        event = gateway.construct_event(payload, signature, secret)
    except (ValueError, gateway.SignatureVerificationError) as exc:
        raise Rejected(str(exc)) from None
    except Exception as exc:  # signed, but not an event at all (a JSON list, a string): never a 500
        raise Rejected(f"not an event ({type(exc).__name__})") from None
    if not _looks_like_event(event):
        raise Rejected("not an event")
    db.session.add(ProcessedWebhookEvent(stripe_event_id=event.id, event_type=event.type, processed_at=clock.now()))
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return "duplicate"
    try:
        if event.type in HANDLED:
            _dispatch(event.type, event.data.object)
    except gateway.StripeError as exc:
        db.session.rollback()
        raise TryLater(str(exc)) from None
    except (KeyError, AttributeError, TypeError, ValueError) as exc:  # a signed event missing what its type needs
        db.session.rollback()
        raise Rejected(f"malformed {event.type} event ({type(exc).__name__})") from None
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # the same event committed by a concurrent delivery
        return "duplicate"
    return "processed"


def _looks_like_event(event) -> bool:
    """An event id, a type and a data.object with an id, all of the right kinds."""
    obj = gateway.get(event, "data", "object")
    return (isinstance(gateway.get(event, "id"), str) and isinstance(gateway.get(event, "type"), str)
            and obj is not None and isinstance(gateway.get(obj, "id"), str))


def _dispatch(kind: str, obj) -> None:
    if kind.startswith("payment_intent."):
        intent = gateway.retrieve_payment_intent(obj.id)
        attempt = _attempt_for(intent)
        if attempt is not None and attempt.status in charges.OPEN:
            charges.record_intent(attempt, intent)
        elif attempt is not None and attempt.status == "failed" and intent.status == "succeeded":
            charges.settle_succeeded(attempt, intent, late=True)  # money taken after all: record it
    elif kind == "charge.refunded":
        payment_intent_id = gateway.id_of(gateway.get(obj, "payment_intent"))
        if payment_intent_id:
            for stripe_refund in gateway.list_refunds(payment_intent_id):
                if refunds.on_stripe_refund(stripe_refund) is None:  # not ours: made in the Stripe dashboard
                    refunds.record_outside(stripe_refund)
    elif kind == "charge.refund.updated":
        refunds.on_stripe_refund(gateway.retrieve_refund(obj.id))
    elif kind == "setup_intent.succeeded":
        intent = gateway.retrieve_setup_intent(obj.id)
        _save_wallet_card(intent)
    elif kind in ("payment_method.automatically_updated", "payment_method.updated"):
        cards.refresh_from_stripe(gateway.retrieve_payment_method(obj.id))
    elif kind in ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.funds_withdrawn"):
        disputes.on_created(obj)
    elif kind == "charge.dispute.closed":
        disputes.on_closed(obj)
    elif kind == "payment_method.detached":
        pm = gateway.retrieve_payment_method(obj.id)
        if not pm.customer:
            cards.mark_detached(pm.id)


def _attempt_for(intent) -> ChargeAttempt | None:
    attempt = db.session.scalars(select(ChargeAttempt).where(
        ChargeAttempt.stripe_payment_intent_id == intent.id)).first()
    key = gateway.get(intent, "metadata", "attempt_key")
    if attempt is None and key:
        attempt = db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.idempotency_key == key)).first()
    return attempt


def _save_wallet_card(intent) -> None:
    """A wallet card whose page closed before it posted back still lands on file.
    Cards entered to pay once (metadata purpose=payment) are left to the payment form."""
    if gateway.get(intent, "metadata", "purpose") != "wallet" or intent.status != "succeeded":
        return
    customer = db.session.scalars(select(Customer).where(Customer.stripe_customer_id == intent.customer)).first()
    pm_id = gateway.id_of(gateway.get(intent, "payment_method"))
    if customer is None or not pm_id:
        return
    if db.session.scalars(select(Card.id).where(Card.stripe_payment_method_id == pm_id)).first():
        return
    added_by = gateway.get(intent, "metadata", "added_by") or "customer"
    cards.save_from_setup_intent(customer, intent.id, added_by=added_by)
