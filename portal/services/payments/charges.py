"""PAY-1 … PAY-7: charging cards on file and recording other payments.

Every card charge is a `ChargeAttempt` row committed *before* Stripe is called; its idempotency key
comes from that row. The outcome is recorded with a conditional UPDATE (pending/unknown → final), so
the request, the webhook and the reconciler can all try to settle one attempt and exactly one wins.
A timeout or a crash leaves the attempt `pending`/`unknown`; `reconcile()` (in `flask jobs run`)
looks it up at Stripe and settles it without ever creating a second PaymentIntent.

Transactions: the documented exception to "services flush, the caller commits once". The attempt row is
committed before Stripe is called (so a crash leaves a row the reconciler settles) and its settlement is
committed with everything it causes (payment, allocations, receipt email, feed, event receivers).
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import Update, bindparam, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from portal import clock
from portal.extensions import db, execute_dml, get_existing
from portal.labels import label
from portal.models import (
    Card,
    ChargeAttempt,
    ChargeAttemptInvoice,
    ChargeAttemptStatus,
    Customer,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentAllocation,
    PlanPayment,
    StaffUser,
)
from portal.money import MAX_CHARGE_CENTS, MIN_CHARGE_CENTS, format_money, format_money_here, percent_of
from portal.services import events
from portal.services.errors import NotFound, ServiceError, ValidationError, found, row_id
from portal.services.payments import cards, declines, gateway
from portal.services.platform import activity, magic_links, mailer, once, settings

OPEN = ("pending", "unknown")
PAYABLE_INVOICE = ("open", "partially_paid")
MANUAL_METHODS = ("cash", "check", "other")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_token() -> str:
    """A one-time form key: the same form submitted twice is one charge."""
    return secrets.token_urlsafe(18)


def fee_for(amount_cents: int) -> int:
    """PAY-5: percentage + fixed fee per successful card transaction (configurable)."""
    s = settings.get()
    return percent_of(amount_cents, s.fee_percent_bp) + s.fee_fixed_cents


def check_amount(amount_cents: int, balance_cents: int | None = None) -> None:
    """PAY-4 limits, and never more than what is owed."""
    currency = settings.currency()
    if amount_cents < MIN_CHARGE_CENTS:
        raise ValidationError("amount", _("The smallest card payment is %(min)s.",
                                          min=format_money_here(MIN_CHARGE_CENTS, currency)))
    if amount_cents > MAX_CHARGE_CENTS:
        raise ValidationError("amount", _("The largest card payment is %(max)s.",
                                          max=format_money_here(MAX_CHARGE_CENTS, currency)))
    if balance_cents is not None and amount_cents > balance_cents:
        raise ValidationError("amount", _("That is more than the balance of %(balance)s.",
                                          balance=format_money_here(balance_cents, currency)))


def invoice_of(customer: Customer, invoice_id) -> Invoice:
    ident = row_id(invoice_id)  # an out-of-range id is "not found", not a database error
    invoice = db.session.get(Invoice, ident) if ident is not None else None
    if invoice is None or invoice.customer_id != customer.id:
        raise NotFound(_("Invoice not found."))
    return invoice


def lock_invoice(invoice_id: int) -> Invoice:
    """The invoice row, locked until commit on PostgreSQL (SQLite serialises writers anyway), re-read fresh:
    balance checks and paid-amount changes of concurrent requests, webhooks and jobs queue up behind it."""
    return db.session.scalars(select(Invoice).where(Invoice.id == invoice_id).with_for_update()
                              .execution_options(populate_existing=True)).one()


def open_attempt_for(invoice: Invoice) -> ChargeAttempt | None:
    """The unsettled charge for this invoice: its own, or a "Pay all" charge (INV-4) that includes it."""
    shared = select(ChargeAttemptInvoice.attempt_id).where(ChargeAttemptInvoice.invoice_id == invoice.id)
    return db.session.scalars(select(ChargeAttempt).where(
        (ChargeAttempt.invoice_id == invoice.id) | ChargeAttempt.id.in_(shared),
        ChargeAttempt.status.in_(OPEN)).order_by(ChargeAttempt.id)).first()


@dataclass
class Outcome:
    attempt: ChargeAttempt
    payment: Payment | None = None
    explanation: declines.Explanation | None = None
    client_secret: str | None = None  # on-session 3-D Secure: the page finishes it with Stripe.js
    duplicate: bool = False

    @property
    def status(self) -> str:
        return "requires_action" if self.client_secret else self.attempt.status


# --- Charging -----------------------------------------------------------------------------------------

def charge_card(customer: Customer, card: Card, amount_cents: int, *, token: str | None, invoice: Invoice | None = None,
                purpose: str = "invoice", off_session: bool, initiated_by: str, actor: StaffUser | None = None,
                plan_payment_id: int | None = None, estimate_id: int | None = None, plan_id: int | None = None,
                plan_payment_ids: list[int] | None = None, key: str | None = None,
                invoices: list[Invoice] | None = None, plan_cents: int = 0, key_is_new: bool = False) -> Outcome:
    """Charge a card on file. Commits: the attempt before Stripe is called, the outcome after.
    `key`: a caller-made idempotency key (scheduled plan charges: one per payment and attempt number).
    `invoices`: INV-4 "Pay all": one charge of exactly their balances, allocated to each when it succeeds.
    `plan_cents`: the part of a "Pay all" charge that pays `plan_payment_ids` (P-1: everything owed at once).
    `key_is_new`: the caller claimed `key` in this transaction (a scheduled charge's attempt number), so no attempt
    has it: no look-up (the unique key still refuses a second one at the insert, answered as a duplicate)."""
    if key is None:
        token = token if token and _TOKEN.match(token) else new_token()
        key = f"charge_{token}"
    existing = None if key_is_new else db.session.scalars(
        select(ChargeAttempt).where(ChargeAttempt.idempotency_key == key)).first()
    if existing is not None:
        if existing.customer_id != customer.id:
            raise NotFound(_("Choose one of the cards on file."))
        return _outcome_of(existing, duplicate=True)  # the same form submitted twice
    if card.customer_id != customer.id:
        raise NotFound(_("Choose one of the cards on file."))
    if card.removed_at is not None:
        raise ValidationError("card_id", _("That card was removed; choose another card."))
    if invoice is not None:
        if invoice.customer_id != customer.id:
            raise NotFound(_("Invoice not found."))
        invoice = lock_invoice(invoice.id)
        _release_abandoned(invoice)
        if invoice.status not in PAYABLE_INVOICE:
            raise ValidationError("amount", _("This invoice is not open for payment (%(status)s).",
                                              status=label(invoice.status)))
        _refuse_if_busy(invoice)
    shares = _lock_shares(customer, invoices, amount_cents - plan_cents) if invoices else []
    check_amount(amount_cents, invoice.balance_cents if invoice is not None else None)
    attempt = ChargeAttempt(idempotency_key=key, customer_id=customer.id, card_id=card.id, amount_cents=amount_cents,
                            currency=settings.currency(), status="pending", purpose=purpose, off_session=off_session,
                            invoice_id=invoice.id if invoice else None, plan_payment_id=plan_payment_id,
                            estimate_id=estimate_id, plan_id=plan_id,
                            plan_payment_ids=",".join(str(i) for i in plan_payment_ids) if plan_payment_ids else None,
                            initiated_by=initiated_by,
                            initiated_by_staff_id=actor.id if actor else None, created_at=clock.now())
    attempt.invoice_shares = shares
    db.session.add(attempt)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        existing = db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.idempotency_key == key)).first()
        if existing is not None:
            return _outcome_of(existing, duplicate=True)
        raise ServiceError(_("A payment for this is already being processed. Wait a minute and reload "
                             "the page before trying again.")) from None
    return send(attempt)


def _refuse_if_busy(invoice: Invoice) -> None:
    if open_attempt_for(invoice) is not None:
        raise ServiceError(_("A payment for this is already being processed. Wait a minute and reload "
                             "the page before trying again."))


def _lock_shares(customer: Customer, invoices: list[Invoice], amount_cents: int) -> list[ChargeAttemptInvoice]:
    """INV-4: lock the invoices (in id order, so two payers never deadlock), check each is this customer's,
    open and not being paid already, and that the amount is exactly their balances together."""
    shares = []
    for invoice_id in sorted({i.id for i in invoices}):
        invoice = lock_invoice(invoice_id)
        if invoice.customer_id != customer.id:
            raise NotFound(_("Invoice not found."))
        _release_abandoned(invoice)
        if invoice.status not in PAYABLE_INVOICE or invoice.balance_cents <= 0:
            raise ValidationError("invoices", _("Invoice %(n)s is not open for payment (%(status)s).",
                                                n=invoice.number, status=label(invoice.status)))
        _refuse_if_busy(invoice)
        shares.append(ChargeAttemptInvoice(invoice_id=invoice.id, amount_cents=invoice.balance_cents))
    if sum(s.amount_cents for s in shares) != amount_cents:
        raise ValidationError("invoices", _("The balances changed; check the invoices and pay again."))
    return shares


def send(attempt: ChargeAttempt) -> Outcome:
    """Call Stripe for a committed attempt and record what it said."""
    customer = get_existing(Customer, attempt.customer_id)
    card = get_existing(Card, attempt.card_id)  # a charge is always made with a card
    metadata = {"attempt_key": attempt.idempotency_key, "attempt_id": str(attempt.id),
                "portal_customer_id": str(customer.id)}
    if attempt.invoice_id:
        metadata["invoice_id"] = str(attempt.invoice_id)
    if attempt.plan_id:
        metadata["plan_id"] = str(attempt.plan_id)
    try:
        stripe_customer = gateway.ensure_customer(customer)
        intent = gateway.create_payment_intent(
            amount=attempt.amount_cents, currency=attempt.currency, stripe_customer_id=stripe_customer,
            payment_method_id=card.stripe_payment_method_id, off_session=attempt.off_session,
            metadata=metadata, idempotency_key=attempt.idempotency_key)
    except gateway.StripeError as exc:
        failure = gateway.classify(exc)
        if failure.outcome == "unknown":
            mark_unknown(attempt, failure)
        elif failure.code == "rate_limit" and attempt.initiated_by == "system":
            # still rate limited after the gateway's back-offs: nothing was charged, the next run charges again
            settle_failed(attempt, "not_submitted", failure.message)
        else:
            settle_failed(attempt, failure.code, failure.message, failure.payment_intent_id)
        db.session.commit()
        return _outcome_of(attempt)
    outcome = record_intent(attempt, intent)
    db.session.commit()
    return outcome


def record_intent(attempt: ChargeAttempt, intent, *, reconciling: bool = False) -> Outcome:
    """Apply what Stripe says about the attempt's PaymentIntent. Caller commits."""
    status = intent.status
    payment = None
    if status not in ("succeeded", "requires_payment_method", "canceled") and (
            attempt.stripe_payment_intent_id is None and attempt.status in OPEN):
        attempt.stripe_payment_intent_id = intent.id  # (a settlement writes it with its claim)
    if status == "succeeded":
        payment = settle_succeeded(attempt, intent)
    elif status == "requires_action":
        if attempt.off_session or reconciling:
            # PAY-7: an off-session charge that needs the customer's bank is failed, and they get a link.
            give_up(attempt, intent.id, "The bank asked the cardholder to authenticate.")
        else:
            db.session.flush()
            return Outcome(attempt, client_secret=intent.client_secret)
    elif status in ("requires_payment_method", "canceled"):
        error = gateway.get(intent, "last_payment_error")
        code = gateway.get(error, "decline_code") or gateway.get(error, "code") or "card_declined"
        settle_failed(attempt, code, gateway.get(error, "message") or "The card was declined.", intent.id)
    # processing / requires_confirmation: still open; the webhook or the reconciler settles it.
    return _outcome_of(attempt, payment=payment)


def _release_abandoned(invoice: Invoice) -> None:
    release_if_abandoned(open_attempt_for(invoice))
    db.session.refresh(invoice)


def release_if_abandoned(attempt: ChargeAttempt | None) -> None:
    """A payment left waiting for the bank's confirmation (3-D Secure) does not block a new try: it is
    cancelled at Stripe first (or recorded, if it went through after all)."""
    if attempt is None or attempt.off_session or not attempt.stripe_payment_intent_id:
        return
    try:
        intent = gateway.retrieve_payment_intent(attempt.stripe_payment_intent_id)
    except gateway.StripeError:
        return
    if intent.status in ("requires_action", "requires_payment_method", "requires_confirmation"):
        give_up(attempt, intent.id, "Left unconfirmed; the customer started a new payment.")
    elif intent.status == "succeeded":
        settle_succeeded(attempt, intent)
    db.session.flush()


def give_up(attempt: ChargeAttempt, payment_intent_id: str, message: str) -> None:
    """Fail an attempt waiting for 3-D Secure, but only once Stripe confirms the cancel: if the customer
    finished authenticating meanwhile, the money was taken and the payment is recorded instead."""
    try:
        intent = gateway.cancel_payment_intent(payment_intent_id)
    except gateway.StripeError:
        try:
            intent = gateway.retrieve_payment_intent(payment_intent_id)
        except gateway.StripeError:
            return  # still open; the reconciler asks again later
    if intent.status == "succeeded":
        settle_succeeded(attempt, intent)
    elif intent.status == "canceled":
        settle_failed(attempt, "authentication_required", message, payment_intent_id)


def _outcome_of(attempt: ChargeAttempt, duplicate: bool = False, payment: Payment | None = None) -> Outcome:
    if payment is None:
        payment = db.session.scalars(select(Payment).where(Payment.charge_attempt_id == attempt.id)).first()
    explanation = declines.explain(attempt.decline_code) if attempt.status in ("failed", "unknown") else None
    return Outcome(attempt, payment=payment, explanation=explanation, duplicate=duplicate)


@lru_cache(maxsize=64)
def _claim_statement(columns: tuple[str, ...], from_statuses: tuple[str, ...]) -> Update:
    """The settling UPDATE for these columns, built once (every charge settles through it)."""
    return (update(ChargeAttempt)
            .where(ChargeAttempt.id == bindparam("attempt_id"), ChargeAttempt.status.in_(from_statuses))
            .values({column: bindparam(f"v_{column}") for column in columns})
            .execution_options(synchronize_session=False))


def _claim(attempt: ChargeAttempt, status: str, *, from_statuses=OPEN, **values) -> bool:
    """Move the attempt to a final state once: exactly one settler wins (request, webhook, reconciler).
    `values`: other columns written by the same UPDATE (one statement settles the row)."""
    now = clock.now()
    values = {"status": status, "settled_at": now if status in ("succeeded", "failed") else None, **values}
    result = execute_dml(_claim_statement(tuple(values), tuple(from_statuses)),
                         {"attempt_id": attempt.id, **{f"v_{k}": v for k, v in values.items()}})
    if result.rowcount != 1:
        db.session.refresh(attempt)
        return False
    values["status"] = ChargeAttemptStatus(status)
    if status not in ("succeeded", "failed"):
        del values["settled_at"]
    for key, value in values.items():
        set_committed_value(attempt, key, value)  # what the UPDATE wrote: no second UPDATE at flush
    return True


def settle_succeeded(attempt: ChargeAttempt, intent, *, late: bool = False) -> Payment | None:
    """`late`: Stripe says succeeded for an attempt we had settled as failed; the money was taken, so
    the payment is recorded (the invoice may end up overpaid; staff are told on the feed)."""
    if not _claim(attempt, "succeeded", from_statuses=OPEN + (("failed",) if late else ()),
                  stripe_payment_intent_id=attempt.stripe_payment_intent_id or intent.id,
                  stripe_charge_id=gateway.id_of(gateway.get(intent, "latest_charge")),
                  decline_code=None, failure_message=None):
        return None
    if late:
        activity.record(attempt.customer_id, "failure", "Stripe reported a charge we had recorded as failed as "
                        "succeeded; the payment is recorded now. Check the invoice for an overpayment.",
                        invoice_id=attempt.invoice_id)
    card = db.session.get(Card, attempt.card_id)
    cards.keep_if_paid(card)  # "save this card": on file now that its payment went through
    amount = int(gateway.get(intent, "amount") or attempt.amount_cents)
    fee = fee_for(amount)
    payment = Payment(customer_id=attempt.customer_id, kind="deposit" if attempt.purpose == "deposit" else "payment",
                      method="card", status="succeeded", amount_cents=amount, fee_cents=fee, net_cents=amount - fee,
                      refunded_cents=0, currency=attempt.currency, card_id=card.id if card else None,
                      card_brand=card.brand if card else None, card_last4=card.last4 if card else None,
                      charge_attempt_id=attempt.id, recorded_by_id=attempt.initiated_by_staff_id,
                      received_at=clock.now(), created_at=clock.now())
    db.session.add(payment)
    db.session.flush()
    set_committed_value(payment, "allocations", [])  # a new payment has none: the receipt reads them without a query
    invoice = db.session.get(Invoice, attempt.invoice_id) if attempt.invoice_id else None
    if invoice is not None:
        allocate(payment, invoice, amount)
    actor = db.session.get(StaffUser, attempt.initiated_by_staff_id) if attempt.initiated_by_staff_id else None
    what = f" for invoice {invoice.number}" if invoice else ""
    if attempt.invoice_shares:
        what = f" for invoices {_allocate_shares(attempt, payment)}"
    if attempt.purpose == "autopay":
        what += " (AutoPay)"
    events.charge_succeeded.send(attempt, payment=payment)  # deposits approve estimates, plan bills are paid
    if attempt.estimate_id:
        what = " (estimate deposit)"
    if attempt.plan_id:
        what = " (service plan)"
    activity.record(attempt.customer_id, "payment",
                    f"Card payment {format_money(amount, attempt.currency)}{what} "
                    f"({payment.card_brand or 'card'} •••• {payment.card_last4 or '????'}), fee "
                    f"{format_money(fee, attempt.currency)}", staff=actor,
                    actor_kind="staff" if actor else attempt.initiated_by, invoice_id=invoice.id if invoice else None,
                    plan_id=attempt.plan_id)
    send_receipt(payment, invoice, paid_invoices=None if attempt.invoice_shares else [])
    return payment


def settle_failed(attempt: ChargeAttempt, code: str | None, message: str | None, payment_intent_id: str | None = None
                  ) -> bool:
    if not _claim(attempt, "failed", decline_code=(code or "card_declined")[:60], failure_message=message,
                  stripe_payment_intent_id=attempt.stripe_payment_intent_id or payment_intent_id):
        return False
    explanation = declines.explain(attempt.decline_code)
    actor = db.session.get(StaffUser, attempt.initiated_by_staff_id) if attempt.initiated_by_staff_id else None
    card = db.session.get(Card, attempt.card_id)
    invoice = db.session.get(Invoice, attempt.invoice_id) if attempt.invoice_id else None
    activity.record(attempt.customer_id, "failure",
                    f"Card payment of {format_money(attempt.amount_cents, attempt.currency)} declined "
                    f"({card.label if card else 'card'}): {explanation.reason}",
                    detail=f"{attempt.decline_code}: {message or ''}", staff=actor,
                    actor_kind="staff" if actor else attempt.initiated_by, invoice_id=invoice.id if invoice else None,
                    plan_id=attempt.plan_id)
    retried = attempt.decline_code == "not_submitted" and attempt.initiated_by == "system"  # the next run charges
    if attempt.off_session and not attempt.plan_id and not retried:  # plan charges: the plan's dunning explains
        notify_failure(attempt, explanation, invoice)
    events.charge_failed.send(attempt, explanation=explanation, invoice=invoice)  # dunning, AutoPay
    return True


def mark_unknown(attempt: ChargeAttempt, failure: gateway.Failure) -> None:
    if not _claim(attempt, "unknown", from_statuses=("pending",)):
        return
    attempt.decline_code = failure.code
    attempt.failure_message = failure.message
    activity.record(attempt.customer_id, "failure",
                    f"Card payment of {format_money(attempt.amount_cents, attempt.currency)}: outcome not known yet "
                    f"({failure.message}); it is checked with Stripe automatically", detail=failure.code,
                    invoice_id=attempt.invoice_id)


def notify_failure(attempt: ChargeAttempt, explanation: declines.Explanation, invoice: Invoice | None) -> None:
    """PAY-6/PAY-7: the customer learns why and gets a link to pay (and authenticate) in the portal."""
    customer = get_existing(Customer, attempt.customer_id)
    if not customer.primary_email or not customer.can_log_in:
        return
    target = f"/portal/invoices/{invoice.id}/pay" if invoice is not None else "/portal/wallet"
    mailer.queue_email("payment_failed", customer.primary_email,
                       {"link": magic_links.portal_link(customer, target), "amount_cents": attempt.amount_cents,
                        "currency": attempt.currency, "invoice": invoice, "explanation": explanation,
                        "card": db.session.get(Card, attempt.card_id)},
                       customer=customer)


# --- Allocation and receipts ----------------------------------------------------------------------------

def add_allocation(payment: Payment, amount_cents: int, *, invoice_id: int | None = None,
                   plan_payment_id: int | None = None) -> None:
    """The one way money of a payment is given to an invoice or a plan payment: the allocation row, and the payment's
    allocated_cents (what is left is credit on account, billing.credit)."""
    allocation = PaymentAllocation(payment_id=payment.id, invoice_id=invoice_id, plan_payment_id=plan_payment_id,
                                   amount_cents=amount_cents)
    if "allocations" in sa_inspect(payment).dict:  # loaded (a new payment's starts empty): keep it current
        payment.allocations.append(allocation)
    else:
        db.session.add(allocation)
    payment.allocated_cents = (payment.allocated_cents or 0) + amount_cents


def allocate(payment: Payment, invoice: Invoice, amount_cents: int) -> None:
    add_allocation(payment, amount_cents, invoice_id=invoice.id)
    invoice = lock_invoice(invoice.id)
    invoice.paid_cents += amount_cents
    refresh_invoice_status(invoice)


def _allocate_shares(attempt: ChargeAttempt, payment: Payment) -> str:
    """INV-4: the one "Pay all" payment goes to each invoice, in this one transaction. A share larger than what
    an invoice still owes (it changed meanwhile) stays on the customer's account. Returns the numbers."""
    numbers = []
    for share in attempt.invoice_shares:
        invoice = lock_invoice(share.invoice_id)
        amount = min(share.amount_cents, invoice.balance_cents) if invoice.status in PAYABLE_INVOICE else 0
        if amount > 0:
            allocate(payment, invoice, amount)
        if amount < share.amount_cents:
            activity.record(attempt.customer_id, "payment", f"{format_money(share.amount_cents - amount)} of a "
                            f"“Pay all” payment was not needed on invoice {invoice.number}; it stays on the "
                            "customer's account", invoice_id=invoice.id)
        numbers.append(invoice.number)
    return ", ".join(numbers)


def refresh_invoice_status(invoice: Invoice) -> None:
    """INV-7: statuses follow payments and refunds."""
    if invoice.status in ("void", "draft"):
        return
    if invoice.paid_cents >= invoice.total_cents and invoice.total_cents > 0:
        invoice.status = InvoiceStatus.PAID
    elif invoice.paid_cents > 0:
        invoice.status = InvoiceStatus.PARTIALLY_PAID
    else:
        invoice.status = InvoiceStatus.OPEN


def send_receipt(payment: Payment, invoice: Invoice | None, *, paid_invoices: list[Invoice] | None = None) -> None:
    """`paid_invoices`: the invoices a payment without `invoice` paid, when the caller knows them (none for a plan
    bill's charge); otherwise read from its allocations."""
    customer = get_existing(Customer, payment.customer_id)
    if not customer.primary_email:
        return
    link = magic_links.portal_link(customer, f"/portal/payments/{payment.id}") if customer.can_log_in else None
    paid = [] if invoice is not None else paid_invoices if paid_invoices is not None else [
        db.session.get(Invoice, a.invoice_id) for a in payment.allocations
        if a.invoice_id]  # INV-4: a "Pay all" payment names each invoice
    plan_rows = [db.session.get(PlanPayment, a.plan_payment_id) for a in payment.allocations if a.plan_payment_id]
    mailer.queue_email("payment_receipt", customer.primary_email,
                       {"payment": payment, "invoice": invoice, "paid_invoices": paid, "link": link,
                        "plan_payments": [r for r in plan_rows if r is not None]},  # issue 19: named too
                       customer=customer)


# --- Hand-recorded payments (PAY-1) ---------------------------------------------------------------------

def record_manual(customer: Customer, *, method: str, amount_cents: int, reference: str | None, actor: StaffUser,
                  invoice: Invoice | None = None, token: str | None = None, commit: bool = True) -> Payment:
    """Cash, check or other, with a reference. Commits unless `commit` is False (the caller allocates it)."""
    key = f"manual_{token}" if token and _TOKEN.match(token) else None
    if key:
        existing = db.session.scalars(select(Payment).where(Payment.form_key == key)).first()
        if existing is not None:
            return existing  # the same form submitted twice
    if method not in MANUAL_METHODS:
        raise ValidationError("method", "Choose cash, check or other.")
    if amount_cents <= 0:
        raise ValidationError("amount", "Enter an amount above zero.")
    if amount_cents > MAX_CHARGE_CENTS:
        raise ValidationError("amount", "The amount is too large.")
    reference = (reference or "").strip()[:120] or None
    if method == "check" and not reference:
        raise ValidationError("reference", "Enter the check number.")
    if invoice is not None:
        if invoice.customer_id != customer.id:
            raise NotFound("Invoice not found.")
        invoice = lock_invoice(invoice.id)
        if open_attempt_for(invoice) is not None:
            raise ValidationError("amount", "A card payment for this invoice is still being confirmed with Stripe. "
                                            "Wait until it settles (a few minutes) before recording another payment.")
        if invoice.status not in PAYABLE_INVOICE:
            raise ValidationError("amount", f"This invoice is not open for payment ({invoice.status}).")
        if amount_cents > invoice.balance_cents:
            raise ValidationError("amount", f"That is more than the balance of "
                                            f"{format_money(invoice.balance_cents, invoice.currency)}.")
    payment = Payment(customer_id=customer.id, kind="payment", method=method, status="succeeded",
                      amount_cents=amount_cents, fee_cents=0, net_cents=amount_cents, refunded_cents=0,
                      currency=settings.currency(), reference=reference, recorded_by_id=actor.id, form_key=key,
                      received_at=clock.now(), created_at=clock.now())
    found = once.add_or_existing(payment, Payment.form_key, key)
    if found is not payment:
        return found
    if invoice is not None:
        allocate(payment, invoice, amount_cents)
    what = f" for invoice {invoice.number}" if invoice else ""
    ref = f" (ref {reference})" if reference else ""
    activity.record(customer.id, "payment", f"{method.title()} payment {format_money(amount_cents, payment.currency)}"
                    f"{what}{ref} recorded", staff=actor, invoice_id=invoice.id if invoice else None)
    send_receipt(payment, invoice)
    if commit:
        db.session.commit()
    return payment


# --- Reconciler (PAY-3, part of `flask jobs run`) -------------------------------------------------------

AUTHENTICATION_WINDOW = timedelta(hours=1)


def reconcile(batch_size: int = 100) -> dict:
    """Settle attempts whose outcome we did not record, by asking Stripe. Never creates a charge."""
    now = clock.now()
    cutoff = now - timedelta(minutes=int(current_app.config["STRIPE_RECONCILE_AFTER_MINUTES"]))
    done = {"succeeded": 0, "failed": 0, "still_open": 0, "errors": 0}
    last_id = 0
    while True:
        ids = db.session.scalars(select(ChargeAttempt.id).where(ChargeAttempt.status.in_(OPEN),
                                                                ChargeAttempt.created_at <= cutoff,
                                                                ChargeAttempt.id > last_id)
                                 .order_by(ChargeAttempt.id).limit(batch_size)).all()
        if not ids:
            return done
        sandbox: list[dict] = []  # the sandbox's PaymentIntents by attempt key, walked once per batch
        for attempt_id in ids:
            last_id = attempt_id
            attempt = db.session.get(ChargeAttempt, attempt_id)
            if attempt is None or attempt.status not in OPEN:
                continue
            try:
                intent = _intent_of(attempt, sandbox)
            except gateway.StripeError:
                db.session.rollback()
                done["errors"] += 1
                continue
            if intent is None:
                settle_failed(attempt, "not_submitted", "Stripe has no payment for this attempt; nothing was charged.")
            elif intent.status == "requires_action":
                # the customer may still be authenticating in the portal; after the window, give up
                if attempt.created_at <= now - AUTHENTICATION_WINDOW:
                    give_up(attempt, intent.id, "The payment was never confirmed with the bank.")
            else:
                record_intent(attempt, intent, reconciling=True)
            db.session.commit()
            done[attempt.status if attempt.status in ("succeeded", "failed") else "still_open"] += 1


def _intent_of(attempt: ChargeAttempt, sandbox: list[dict]):
    """The attempt's PaymentIntent at Stripe, or None if Stripe has none. The sandbox has no search: its whole list
    is walked once per reconciler batch (kept in `sandbox`) rather than once per attempt, which made a batch of open
    attempts (a killed run with a full worker pool leaves several) quadratic in the sandbox's size."""
    if attempt.stripe_payment_intent_id:
        return gateway.retrieve_payment_intent(attempt.stripe_payment_intent_id)
    if gateway.using_sandbox():
        if not sandbox:
            sandbox.append(gateway.sandbox_intents_by_key())
        return sandbox[0].get(attempt.idempotency_key)
    customer = get_existing(Customer, attempt.customer_id)
    return gateway.find_payment_intent(attempt.idempotency_key, customer.stripe_customer_id,
                                       int(attempt.created_at.timestamp()) - 300)


def customer_attempt(customer: Customer, attempt_id: int, *conditions) -> ChargeAttempt:
    """One of the customer's charge attempts (matching `conditions`), or NotFound: what the portal's "back from
    the bank" pages load."""
    return found(db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.id == attempt_id,
                                                                ChargeAttempt.customer_id == customer.id,
                                                                *conditions)).first(), "Payment not found.")


def forget_card_used_once(card_id: int | None) -> None:
    """A card entered without "save this card" leaves the file once its payment is settled (not while the
    bank's confirmation is pending: Stripe cannot finish a payment on a detached card). Caller commits."""
    card = db.session.get(Card, card_id) if card_id else None
    if card is None or card.added_by not in cards.NOT_ON_FILE or card.removed_at is not None:
        return
    open_attempt = db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.card_id == card.id,
                                                                  ChargeAttempt.status.in_(OPEN))).first()
    if open_attempt is None:
        cards.forget(card)
