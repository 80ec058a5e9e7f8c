"""Callable factories (docs/architecture.md). Each adds, commits and returns the object; call inside an app context."""
from __future__ import annotations

import itertools

from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import Address, Customer, CustomerEmail, CustomerPhone, StaffUser

PASSWORD = "correct horse battery"
_seq = itertools.count(1)
# One cheap hash for every factory user: the KDF is the slow part of a test otherwise.
_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")


def _detached(obj, *relationships):
    """Commit, load what tests read, and detach: the object stays readable after its app context ends."""
    db.session.commit()
    db.session.refresh(obj)
    for name in relationships:
        getattr(obj, name)
    db.session.expunge(obj)
    return obj


def make_staff(role: str = "admin", email: str | None = None, name: str | None = None, active: bool = True,
               password_hash: str | None = _HASH) -> StaffUser:
    n = next(_seq)
    user = StaffUser(email=email or f"staff{n}@brightair.test", name=name or f"Staff {n}", role=role,
                     password_hash=password_hash, is_active_account=active)
    db.session.add(user)
    return _detached(user)


def make_customer(first_name: str = "Maria", last_name: str | None = None, email: str | None = "auto",
                  status: str = "active", language: str = "en", phone: str | None = "(555) 201-3344",
                  **fields) -> Customer:
    n = next(_seq)
    last_name = last_name or f"Lopez{n}"
    customer = Customer(first_name=first_name, last_name=last_name, status=status, preferred_language=language,
                        **fields)
    if email == "auto":
        email = f"{first_name}.{last_name}@example.com".lower()
    if email:
        customer.emails.append(CustomerEmail(email=email.lower(), is_primary=True))
    if phone:
        customer.phones.append(CustomerPhone(number=phone, kind="mobile"))
    customer.addresses.append(Address(kind="service", line1=f"{n} Oak St", city="Springfield", region="CA",
                                      postal_code="90210"))
    db.session.add(customer)
    return _detached(customer, "emails", "phones", "addresses", "tags")


def make_invoice(customer, total_cents: int = 25_000, status: str = "open", number: str | None = None,
                 due_date=None, lines: list[tuple[str, int]] | None = None):
    """An invoice with one line per (description, cents); total = sum of lines."""
    from datetime import date, timedelta

    from portal.models import Invoice, InvoiceLineItem

    n = next(_seq)
    lines = lines or [("Service call", total_cents)]
    total = sum(cents for _, cents in lines)
    invoice = Invoice(customer_id=customer.id, number=number or f"INV-{5000 + n}", status=status,
                      issue_date=date(2026, 3, 1), due_date=due_date or date(2026, 3, 1) + timedelta(days=14),
                      subtotal_cents=total, total_cents=total, paid_cents=0, currency="USD")
    for i, (description, cents) in enumerate(lines):
        invoice.line_items.append(InvoiceLineItem(description=description, quantity=1, unit_price_cents=cents,
                                                  position=i))
    db.session.add(invoice)
    return _detached(invoice, "line_items")


def sandbox_card(customer_id: int, number: str = "4242424242424242", exp_month: int = 12, exp_year: int = 2030,
                 postal_code: str = "90210", purpose: str = "wallet") -> str:
    """Do what Stripe.js does in the browser: confirm a SetupIntent with card details at the sandbox.
    Returns the SetupIntent id (what our server receives). Call inside an app context."""
    import requests

    from portal.services.payments import cards, gateway

    customer = db.session.get(Customer, customer_id)
    secret = cards.start_setup(customer, purpose=purpose)
    db.session.commit()
    seti = secret.split("_secret_")[0]
    r = requests.post(f"{gateway.sandbox_url()}/v1/setup_intents/{seti}/confirm", timeout=10, json={
        "key": gateway.publishable_key(), "use_stripe_sdk": True, "client_secret": secret,
        "payment_method_data": {"type": "card", "card": {"number": number, "exp_month": str(exp_month),
                                                         "exp_year": str(exp_year), "cvc": "123"},
                                "billing_details": {"address": {"postal_code": postal_code}}}})
    assert r.status_code == 200, r.text
    if r.json()["status"] == "requires_action":  # the cardholder completes 3-D Secure in Stripe.js's window
        r = requests.post(f"{gateway.sandbox_url()}/v1/setup_intents/{seti}/confirm", timeout=10, json={
            "key": gateway.publishable_key(), "use_stripe_sdk": True, "client_secret": secret})
        assert r.json()["status"] == "succeeded", r.text
    return seti


def make_card(customer_id: int, number: str = "4242424242424242", **kwargs):
    """A card on file saved through the sandbox exactly as the wallet does it."""
    from portal.models import Card
    from portal.services.payments import cards

    seti = sandbox_card(customer_id, number, **kwargs)
    card = cards.save_from_setup_intent(db.session.get(Customer, customer_id), seti, added_by="customer")
    return _detached(db.session.get(Card, card.id))


def make_paid_invoice(customer, amount_cents: int = 25_000, *, initiated_by: str = "staff", actor=None):
    """An open invoice of `amount_cents` paid in full by a card charge (off session) through the sandbox, as staff or
    the system charge a card on file. Returns (invoice, card, charge outcome); the charge is asserted succeeded."""
    from portal.models import Invoice
    from portal.services.payments import charges

    invoice = make_invoice(customer, amount_cents)
    card = make_card(customer.id)
    outcome = charges.charge_card(db.session.get(Customer, customer.id), card, amount_cents, token=charges.new_token(),
                                  invoice=db.session.get(Invoice, invoice.id), off_session=True,
                                  initiated_by=initiated_by, actor=actor)
    assert outcome.attempt.status == "succeeded"
    return invoice, card, outcome


def make_unrecorded_charge(customer_id: int, invoice_id: int, card, amount_cents: int, *, currency: str = "USD",
                           **attempt_fields):
    """A card charge for an invoice that Stripe (the sandbox) made but we never recorded: the ChargeAttempt row as
    the process left it (`status` pending unless given, plus `attempt_fields`) and its PaymentIntent created at the
    sandbox with the attempt's key. Returns (attempt, PaymentIntent)."""
    from portal.models import ChargeAttempt
    from portal.services.payments import charges, gateway

    customer = db.session.get(Customer, customer_id)
    attempt_fields.setdefault("status", "pending")
    attempt = ChargeAttempt(idempotency_key="charge_" + charges.new_token(), customer_id=customer_id,
                            card_id=card.id, amount_cents=amount_cents, currency="USD", purpose="invoice",
                            off_session=True, invoice_id=invoice_id, **attempt_fields)
    db.session.add(attempt)
    db.session.commit()
    intent = gateway.create_payment_intent(amount=amount_cents, currency=currency,
                                           stripe_customer_id=customer.stripe_customer_id,
                                           payment_method_id=card.stripe_payment_method_id, off_session=True,
                                           metadata={"attempt_key": attempt.idempotency_key},
                                           idempotency_key=attempt.idempotency_key)
    return attempt, intent


def make_job(customer, title: str = "AC tune-up", *, visit_in_days: float | None = 3, hours: float = 2,
             technician=None, status: str = "scheduled", address: str | None = None, plan_id: int | None = None):
    """A job; with `visit_in_days`, one visit that many days from the clock's now (negative: in the past)."""
    from datetime import timedelta

    from portal import clock
    from portal.models import Job, JobLineItem, Visit

    n = next(_seq)
    job = Job(customer_id=customer.id, number=f"J-{7000 + n}", title=title, status=status, address=address,
              technician_id=technician.id if technician else None, plan_id=plan_id)
    job.line_items.append(JobLineItem(description=title, quantity=1, unit_price_cents=15_000))
    if visit_in_days is not None:
        start = clock.now().replace(microsecond=0) + timedelta(days=visit_in_days)
        job.visits.append(Visit(starts_at=start, ends_at=start + timedelta(hours=hours), status="scheduled",
                                technician_id=technician.id if technician else None))
    db.session.add(job)
    return _detached(job, "visits", "line_items")


def make_estimate(customer, *, deposit_cents: int = 0, status: str = "sent", valid_until=None,
                  lines: list[tuple[str, int]] | None = None, title: str = "New heat pump system"):
    from portal import clock
    from portal.models import Estimate, EstimateLineItem

    n = next(_seq)
    estimate = Estimate(customer_id=customer.id, number=f"E-{8000 + n}", title=title, status=status,
                        deposit_cents=deposit_cents, valid_until=valid_until, currency="USD",
                        sent_at=clock.now() if status != "draft" else None)
    for i, (description, cents) in enumerate(lines or [("Heat pump, installed", 800_000), ("Permit", 25_000)]):
        estimate.line_items.append(EstimateLineItem(description=description, quantity=1, unit_price_cents=cents,
                                                    position=i))
    db.session.add(estimate)
    return _detached(estimate, "line_items")


def make_plan(customer, *, status: str = "active", price_cents: int = 1999, payments: list[tuple] = (),
              card_id: int | None = None, next_billing_date=None):
    """A monthly plan; `payments` are (due_date, status) rows."""
    from portal.models import CustomerPlan, PlanPayment

    plan = CustomerPlan(customer_id=customer.id, name="Comfort Club", status=status, frequency="monthly",
                        offered_frequencies="monthly", price_cents=price_cents, payment_method="card",
                        card_id=card_id, next_billing_date=next_billing_date)
    db.session.add(plan)
    db.session.flush()
    for due, pay_status in payments:
        db.session.add(PlanPayment(plan_id=plan.id, due_date=due, amount_cents=price_cents, status=pay_status,
                                   method="card", card_id=card_id))
    return _detached(plan)


def make_active_plan(customer, card, first_due, price: int = 2_500):
    """An active monthly card plan whose next bill is due on `first_due` (anchor = that day), as an accepted plan
    looks one cycle later. Stays attached to the session (tests read and change it)."""
    from datetime import timedelta

    from portal import clock
    from portal.models import CustomerPlan

    plan = CustomerPlan(customer_id=customer.id, name="Comfort Club", status="active", frequency="monthly",
                        offered_frequencies="monthly", price_monthly_cents=price, price_cents=price,
                        payment_method="card", card_id=card.id, billing_anchor_day=first_due.day,
                        start_date=first_due - timedelta(days=31), next_billing_date=first_due,
                        accepted_at=clock.now(), currency="USD")
    db.session.add(plan)
    db.session.commit()
    return plan
