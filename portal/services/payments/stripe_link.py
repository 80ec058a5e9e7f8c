"""DATA-3: link a business's existing Stripe customers to ours and bring their saved cards in as cards on file.

`preview()` lists every Stripe customer of the account (paginated, 100 a page: real Stripe and the sandbox alike)
and says what `link()` would do with each: link it to the customer with its email, nothing (already linked),
create a customer (only when asked: `create_unmatched`), or leave it (no email match; the email matches a
customer linked to another Stripe customer; several Stripe customers share the email). `link()` does it: it
stores the Stripe customer id and adds each saved card (brand, last 4, expiry, postal code) as a card on file,
Stripe's default card becoming the default when the customer has none. It only reads from Stripe: nothing is
charged, nothing changes there. Running it again adds nothing (customers are found by their Stripe id first,
cards by their payment method id). Flushes; the caller commits once.

Cards are read when linking, not in the preview: that is one request per customer, which the preview of a large
account could not afford (`flask stripe-import` is the way for thousands of customers).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import func, select

from portal import clock
from portal.extensions import db
from portal.models import Card, Customer, CustomerEmail, CustomerPhone, StaffUser
from portal.services.payments import cards, gateway
from portal.services.platform import activity

CHUNK = 500
PAGE = 100  # Stripe's largest page
ADDED_BY = "stripe_import"

LINK, LINKED, CREATE, UNMATCHED, CONFLICT = "link", "linked", "create", "unmatched", "conflict"


@dataclass
class StripeCustomer:
    id: str
    email: str | None
    name: str | None
    phone: str | None
    default_card: str | None  # the payment method (or legacy card) Stripe charges by default


@dataclass
class Decision:
    stripe: StripeCustomer
    action: str  # LINK, LINKED, CREATE, UNMATCHED, CONFLICT
    customer_id: int | None = None
    customer_name: str | None = None
    reason: str = ""


@dataclass
class Preview:
    decisions: list[Decision]

    def of(self, action: str) -> list[Decision]:
        return [d for d in self.decisions if d.action == action]

    @property
    def counts(self) -> dict[str, int]:
        return {a: len(self.of(a)) for a in (LINK, LINKED, CREATE, UNMATCHED, CONFLICT)}


@dataclass
class Result:
    linked: int = 0
    created: int = 0
    cards_added: int = 0
    unchanged: int = 0
    left: list[Decision] = field(default_factory=list)  # unmatched and conflicts, with their reasons


def stripe_customers() -> Iterator[StripeCustomer]:
    after = None
    while True:
        page = gateway.list_customers(starting_after=after, limit=PAGE)
        for c in page.data:
            yield StripeCustomer(
                id=c.id, email=(gateway.get(c, "email") or "").strip().lower() or None,
                name=(gateway.get(c, "name") or "").strip() or None, phone=gateway.get(c, "phone"),
                default_card=gateway.id_of(gateway.get(c, "invoice_settings", "default_payment_method"))
                or gateway.id_of(gateway.get(c, "default_source")))
        if not page.has_more or not page.data:
            return
        after = page.data[-1].id


def preview(create_unmatched: bool = False) -> Preview:
    """What `link` would do with each Stripe customer now (reads Stripe and our customers, writes nothing)."""
    listed = list(stripe_customers())
    by_stripe_id = _ours_by_stripe_id([s.id for s in listed])
    by_email = _ours_by_email([s.email for s in listed if s.email])
    shared: dict[str, list[str]] = {}
    for s in listed:
        if s.email and s.id not in by_stripe_id:
            shared.setdefault(s.email, []).append(s.id)
    decisions = []
    for s in listed:
        if s.id in by_stripe_id:
            linked = by_stripe_id[s.id]
            decisions.append(Decision(s, LINKED, linked.id, linked.display_name, "already linked"))
            continue
        customer = by_email.get(s.email) if s.email else None
        if customer is None:
            action = CREATE if create_unmatched and (s.email or s.name) else UNMATCHED
            reason = "no customer has this email" if s.email else "no email at Stripe"
            decisions.append(Decision(s, action, reason="a new customer will be created" if action == CREATE
                                      else reason))
        elif len(shared.get(s.email or "", [])) > 1:
            others = ", ".join(i for i in shared[s.email or ""] if i != s.id)
            decisions.append(Decision(s, CONFLICT, customer.id, customer.display_name,
                                      f"other Stripe customers have the same email ({others}); link it by hand"))
        elif customer.stripe_customer_id:
            decisions.append(Decision(s, CONFLICT, customer.id, customer.display_name,
                                      f"already linked to another Stripe customer ({customer.stripe_customer_id})"))
        else:
            decisions.append(Decision(s, LINK, customer.id, customer.display_name))
    return Preview(decisions)


def _ours_by_stripe_id(ids: list[str]) -> dict[str, Customer]:
    found: dict[str, Customer] = {}
    for i in range(0, len(ids), CHUNK):
        for customer in db.session.scalars(select(Customer).where(Customer.stripe_customer_id.in_(ids[i:i + CHUNK]))):
            found[customer.stripe_customer_id or ""] = customer
    return found


def _ours_by_email(emails: list[str]) -> dict[str, Customer]:
    found: dict[str, Customer] = {}
    for i in range(0, len(emails), CHUNK):
        for email, customer in db.session.execute(
                select(CustomerEmail.email, Customer).join(Customer, Customer.id == CustomerEmail.customer_id)
                .where(func.lower(CustomerEmail.email).in_(emails[i:i + CHUNK]))
                .order_by(CustomerEmail.is_primary.desc(), CustomerEmail.id)):
            found.setdefault(email.lower(), customer)
    return found


def link(staff: StaffUser | None, create_unmatched: bool = False) -> Result:
    """Link, create when asked, and import cards, as `preview` says. Caller commits once."""
    result = Result()
    for d in preview(create_unmatched).decisions:
        if d.action in (UNMATCHED, CONFLICT):
            result.left.append(d)
            continue
        found = _create(d.stripe, staff) if d.action == CREATE else db.session.get(Customer, d.customer_id)
        if found is None:  # removed since the preview was read
            continue
        customer: Customer = found
        if d.action == CREATE:
            result.created += 1
        if d.action == LINK:
            customer.stripe_customer_id = d.stripe.id
            activity.record(customer.id, "card", f"Linked to the Stripe customer {d.stripe.id}", staff=staff)
            result.linked += 1
        added = _import_cards(customer, d.stripe, staff)
        result.cards_added += added
        if d.action == LINKED and not added:
            result.unchanged += 1
    db.session.flush()
    return result


def _create(s: StripeCustomer, staff: StaffUser | None) -> Customer:
    first, _, last = (s.name or "").rpartition(" ") if " " in (s.name or "") else (s.name or "", "", "")
    customer = Customer(first_name=(first or None) and first[:80], last_name=(last or None) and last[:80],
                        status="active", stripe_customer_id=s.id, created_at=clock.now())
    if s.email:
        customer.emails.append(CustomerEmail(email=s.email[:254], is_primary=True))
    if s.phone:
        customer.phones.append(CustomerPhone(number=s.phone[:32], kind="mobile"))
    db.session.add(customer)
    db.session.flush()
    activity.record(customer.id, "customer", f"Customer {customer.display_name} created from the Stripe customer "
                                             f"{s.id}", staff=staff)
    return customer


def _stripe_cards(stripe_customer_id: str) -> Iterator:
    after = None
    while True:
        page = gateway.list_card_payment_methods(stripe_customer_id, starting_after=after, limit=PAGE)
        yield from page.data
        if not page.has_more or not page.data:
            return
        after = page.data[-1].id


def _import_cards(customer: Customer, s: StripeCustomer, staff: StaffUser | None) -> int:
    """Each saved card not yet on file here becomes a card on file. Returns how many were added."""
    known = set(db.session.scalars(select(Card.stripe_payment_method_id).where(Card.customer_id == customer.id)))
    added: list[Card] = []
    for pm in _stripe_cards(s.id):
        if pm.id in known or db.session.scalar(select(Card.id).where(Card.stripe_payment_method_id == pm.id)):
            continue
        details = gateway.get(pm, "card")
        card = Card(customer_id=customer.id, stripe_payment_method_id=pm.id, brand=gateway.get(details, "brand"),
                    last4=gateway.get(details, "last4"), exp_month=gateway.get(details, "exp_month"),
                    exp_year=gateway.get(details, "exp_year"),
                    postal_code=gateway.get(pm, "billing_details", "address", "postal_code"),
                    funding=gateway.get(details, "funding"), kind="personal", added_by=ADDED_BY, is_default=False,
                    created_at=clock.now())
        db.session.add(card)
        added.append(card)
    if not added:
        return 0
    db.session.flush()
    if cards.default_card_id(customer.id) is None:
        default = next((c for c in added if c.stripe_payment_method_id == s.default_card), added[0])
        default.is_default = True
        db.session.flush()
    for card in added:
        activity.record(customer.id, "card", f"Card imported from Stripe: {card.label} "
                                             f"(exp {card.exp_month or 0:02d}/{card.exp_year or ''})"
                                             + (", default" if card.is_default else ""), staff=staff)
    return len(added)
