"""W-1 … W-6: cards on file. Card data goes from the browser to Stripe; we keep ids and display facts."""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from portal import clock
from portal.extensions import db, get_existing
from portal.models import Card, Customer, CustomerPlan, StaffUser
from portal.services import events
from portal.services.errors import NotFound, ServiceError, ValidationError
from portal.services.payments import gateway
from portal.services.platform import activity, magic_links, mailer

ONCE = "customer_once"  # added_by of a card entered to pay once, without "save this card"
IF_PAID = "customer_if_paid"  # entered to pay with "save this card": on file only once that payment succeeds
NOT_ON_FILE = (ONCE, IF_PAID)


_ACTIVE_CARDS = (select(Card).where(Card.customer_id == bindparam("customer_id"), Card.removed_at.is_(None),
                                    Card.added_by.not_in(NOT_ON_FILE))
                 .order_by(Card.is_default.desc(), Card.created_at.desc(), Card.id.desc()))  # built once: hot path


def active_cards(customer: Customer) -> list[Card]:
    return list(db.session.scalars(_ACTIVE_CARDS, {"customer_id": customer.id}))


def default_card(customer: Customer) -> Card | None:
    return db.session.scalars(select(Card).where(Card.customer_id == customer.id, Card.removed_at.is_(None),
                                                 Card.is_default.is_(True))).first()


def card_of(customer: Customer, card_id) -> Card:
    """A card on file of this customer (never another customer's, never a removed one)."""
    try:
        card_id = int(card_id)
    except (TypeError, ValueError):
        raise NotFound(_("Choose one of the cards on file.")) from None
    if not 0 < card_id < 2**31:
        raise NotFound(_("Choose one of the cards on file."))
    card = db.session.get(Card, card_id)
    if card is None or card.customer_id != customer.id:
        raise NotFound(_("Choose one of the cards on file."))
    if card.removed_at is not None:
        raise ValidationError("card_id", _("That card was removed; choose another card."))
    return card


def start_setup(customer: Customer, purpose: str = "wallet", added_by: str = "customer") -> str:
    """A SetupIntent for the card element; returns its client secret. Caller commits (Stripe customer id).

    purpose: "wallet" (the card goes on file) or "payment" (the payment form decides)."""
    stripe_customer = gateway.ensure_customer(customer)
    intent = gateway.create_setup_intent(stripe_customer, {"portal_customer_id": str(customer.id),
                                                           "purpose": purpose, "added_by": added_by})
    return intent.client_secret


def save_from_setup_intent(customer: Customer, setup_intent_id: str, *, added_by: str, actor: StaffUser | None = None,
                           kind: str = "personal", nickname: str | None = None, make_default: bool = False,
                           on_file: bool = True, if_paid: bool = False) -> Card:
    """Store the card a confirmed SetupIntent collected (W-6). Idempotent per payment method. Caller commits.

    `on_file=False` is a card used for one payment only: it is never default and `forget()` removes it after.
    `if_paid` (with `on_file=False`): "save this card" on a payment form — the card goes on file only when that
    payment succeeds (`keep_if_paid`); a declined one is forgotten like a card used once, and never default."""
    if not setup_intent_id or not str(setup_intent_id).startswith("seti_"):
        raise ValidationError("setup_intent", _("The card was not saved. Enter the card again."))
    try:
        intent = gateway.retrieve_setup_intent(setup_intent_id)
    except gateway.StripeError:
        raise ValidationError("setup_intent", _("The card was not saved. Enter the card again.")) from None
    if not customer.stripe_customer_id or intent.customer != customer.stripe_customer_id:
        raise NotFound(_("The card was not saved. Enter the card again."))
    if intent.status != "succeeded" or not intent.payment_method:
        raise ValidationError("setup_intent", _("The card was not confirmed. Enter the card again."))
    pm_id = gateway.id_of(intent.payment_method)
    assert pm_id is not None  # intent.payment_method is set (checked above); Stripe ids it
    return _store_payment_method(customer, pm_id, added_by=added_by, actor=actor, kind=kind, nickname=nickname,
                                 make_default=make_default, on_file=on_file, if_paid=if_paid)


def _store_payment_method(customer: Customer, pm_id: str, *, added_by: str, actor: StaffUser | None, kind: str,
                          nickname: str | None, make_default: bool, on_file: bool = True,
                          if_paid: bool = False) -> Card:
    existing = db.session.scalars(select(Card).where(Card.stripe_payment_method_id == pm_id)).first()
    if existing is not None:
        return _already_saved(customer, existing, actor=actor, kind=kind, nickname=nickname, make_default=make_default)
    try:
        pm = gateway.retrieve_payment_method(pm_id)
        if pm.customer != customer.stripe_customer_id:
            assert customer.stripe_customer_id is not None  # the SetupIntent was this Stripe customer's
            # Stripe attaches on a confirmed SetupIntent; the sandbox does not, so we finish the job.
            pm = gateway.attach_payment_method(pm_id, customer.stripe_customer_id)
    except gateway.StripeError as exc:
        failure = gateway.classify(exc)
        raise ValidationError("setup_intent", failure.message) from None
    details = pm.card
    card = Card(customer_id=customer.id, stripe_payment_method_id=pm_id, brand=details.brand, last4=details.last4,
                exp_month=details.exp_month, exp_year=details.exp_year,
                postal_code=gateway.get(pm, "billing_details", "address", "postal_code"),
                funding=gateway.get(details, "funding"), kind=kind if kind in ("personal", "hsa_fsa") else "personal",
                nickname=(nickname or "").strip() or None,
                added_by=added_by if on_file else (IF_PAID if if_paid else ONCE), is_default=False,
                created_at=clock.now())
    try:
        with db.session.begin_nested():
            db.session.add(card)
            db.session.flush()
    except IntegrityError:  # saved meanwhile by a concurrent request or the webhook
        existing = db.session.scalars(select(Card).where(Card.stripe_payment_method_id == pm_id)).one()
        return _already_saved(customer, existing, actor=actor, kind=kind, nickname=nickname, make_default=make_default)
    if not on_file:
        return card
    if make_default or default_card_id(customer.id, exclude=card.id) is None:
        _make_default(customer, card)
    activity.record(customer.id, "card", f"Card added: {card.label} (exp {card.exp_month:02d}/{card.exp_year})",
                    staff=actor, actor_kind="staff" if actor else "customer")
    return card


def keep_if_paid(card: Card | None) -> None:
    """The payment made with a card entered with "save this card" succeeded: the card goes on file now (default
    if the customer has none). Caller commits."""
    if card is None or card.added_by != IF_PAID or card.removed_at is not None:
        return
    card.added_by = "customer"
    customer = get_existing(Customer, card.customer_id)
    if default_card_id(customer.id, exclude=card.id) is None:
        _make_default(customer, card)
    activity.record(customer.id, "card", f"Card added: {card.label} (exp {card.exp_month or 0:02d}/{card.exp_year}), "
                    "saved with a payment that went through", actor_kind="customer")


def _already_saved(customer: Customer, card: Card, *, actor, kind, nickname, make_default) -> Card:
    """The same card posted again (double submit, or the webhook got there first): staff's details still apply."""
    if card.customer_id != customer.id:
        raise NotFound(_("The card was not saved. Enter the card again."))
    if actor is not None:
        card.nickname = (nickname or "").strip()[:60] or card.nickname
        if kind in ("personal", "hsa_fsa"):
            card.kind = kind
        if make_default and card.removed_at is None:
            _make_default(customer, card)
    return card


def default_card_id(customer_id: int, exclude: int | None = None) -> int | None:
    q = select(Card.id).where(Card.customer_id == customer_id, Card.removed_at.is_(None), Card.is_default.is_(True))
    if exclude is not None:
        q = q.where(Card.id != exclude)
    return db.session.scalar(q)


def _make_default(customer: Customer, card: Card) -> None:
    db.session.execute(update(Card).where(Card.customer_id == customer.id, Card.id != card.id,
                                          Card.is_default.is_(True)).values(is_default=False))
    card.is_default = True
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:
        # W-1: a concurrent request made another card default first; keep theirs.
        card.is_default = False


def set_default(customer: Customer, card_id, actor: StaffUser | None = None) -> Card:
    card = card_of(customer, card_id)
    if not card.is_default:
        old = db.session.get(Card, default_card_id(customer.id) or 0)
        _make_default(customer, card)
        events.default_card_changed.send(customer, old=old, new=card, actor=actor)  # D-8 for AutoPay
        activity.record(customer.id, "card", f"Default card: {card.label}", staff=actor,
                        actor_kind="staff" if actor else "customer")
    return card


def backs_something(customer: Customer) -> list[str]:
    """What the customer's cards keep running: AutoPay and active service plans (W-3)."""
    reasons = []
    if customer.autopay_enabled:
        reasons.append(_("AutoPay"))
    plans = db.session.scalars(select(CustomerPlan.name).where(CustomerPlan.customer_id == customer.id,
                                                               CustomerPlan.status == "active")).all()
    reasons.extend(_("service plan “%(name)s”", name=name) for name in plans)
    return reasons


def remove(customer: Customer, card_id, *, actor: StaffUser | None = None, confirmed: bool = False) -> Card:
    """W-3: the only card backing AutoPay or an active plan cannot be removed from the portal;
    staff may remove it after confirming, which turns AutoPay off and leaves plans without a card."""
    card = card_of(customer, card_id)
    others = [c for c in active_cards(customer) if c.id != card.id]
    backing = backs_something(customer)
    if not others and backing:
        if actor is None:
            raise ServiceError(_("This is your only card and it pays for %(what)s, so it cannot be removed here. "
                                 "Please contact us to change it, or add another card first.",
                                 what=", ".join(backing)))
        if not confirmed:
            raise ValidationError("confirm", f"This is the only card and it backs {', '.join(backing)}. Tick "
                                             "“I understand” to remove it: AutoPay turns off and the plan's future "
                                             "payments fail (and the customer is asked for a card) until a new card "
                                             "is added.")
        if customer.autopay_enabled:
            customer.autopay_enabled = False
            activity.record(customer.id, "card", "AutoPay turned off: its only card was removed", staff=actor)
    replacement = next((c for c in others if c.is_default), others[0] if others else None)
    events.card_removed.send(card, customer=customer, replacement=replacement, actor=actor)  # plans move on
    was_default = card.is_default
    card.is_default = False
    card.removed_at = clock.now()
    db.session.flush()
    if was_default and others:
        _make_default(customer, next((c for c in others), others[0]))
    if was_default:
        events.default_card_changed.send(customer, old=card, new=others[0] if others else None, actor=actor)
    _detach(card)
    activity.record(customer.id, "card", f"Card removed: {card.label}", staff=actor,
                    actor_kind="staff" if actor else "customer")
    return card


def forget(card: Card) -> None:
    """A card used once without "save this card": off file here and detached at Stripe. Caller commits."""
    if card.removed_at is not None:
        return
    card.is_default, card.removed_at = False, clock.now()
    _detach(card)


def _detach(card: Card) -> None:
    try:
        gateway.detach_payment_method(card.stripe_payment_method_id)
    except gateway.StripeError:
        return  # already detached at Stripe, or Stripe unreachable: the card is off file here either way


def mark_detached(pm_id: str) -> Card | None:
    """payment_method.detached (PAY-8): the card is gone at Stripe, so it is gone here too."""
    card = db.session.scalars(select(Card).where(Card.stripe_payment_method_id == pm_id,
                                                 Card.removed_at.is_(None))).first()
    if card is None:
        return None
    customer = get_existing(Customer, card.customer_id)
    card.is_default, card.removed_at = False, clock.now()
    db.session.flush()
    others = active_cards(customer)
    if others and default_card_id(customer.id) is None:
        _make_default(customer, others[0])
    for plan in db.session.scalars(select(CustomerPlan).where(CustomerPlan.card_id == card.id)):
        plan.card_id = others[0].id if others else None
    if not others and customer.autopay_enabled:
        customer.autopay_enabled = False
    activity.record(customer.id, "card", f"Card removed at Stripe: {card.label}")
    return card


def request_card_on_file(customer: Customer, actor: StaffUser) -> None:
    """W-4: email the customer a link to the portal wallet."""
    if not customer.primary_email:
        raise ValidationError("email", "This customer has no email address.")
    if not customer.can_log_in:
        raise ValidationError("email", "This customer cannot use the portal (archived or blacklisted).")
    link = magic_links.portal_link(customer, "/portal/wallet")
    mailer.queue_email("card_request", customer.primary_email, {"link": link}, customer=customer, actor=actor)
    activity.record(customer.id, "card", "Card on file requested by email", staff=actor)


def update_nickname(customer: Customer, card_id, nickname: str | None, kind: str | None, actor: StaffUser) -> Card:
    card = card_of(customer, card_id)
    card.nickname = (nickname or "").strip()[:60] or None
    if kind in ("personal", "hsa_fsa"):
        card.kind = kind
    activity.record(customer.id, "card", f"Card details edited: {card.label}", staff=actor)
    return card


def refresh_from_stripe(pm) -> Card | None:
    """payment_method.automatically_updated / .updated (issue 14): the card network reissued the card (new expiry,
    sometimes a new number) and Stripe updated the payment method in place. Brand, last 4 and expiry follow it; a
    changed expiry clears the D-7 warning, so the new date gets its own. Caller commits (the webhook)."""
    card = db.session.scalars(select(Card).where(Card.stripe_payment_method_id == pm.id)).first()
    details = gateway.get(pm, "card")
    if card is None or details is None:
        return None
    brand, last4 = gateway.get(details, "brand"), gateway.get(details, "last4")
    try:
        exp_month, exp_year = int(gateway.get(details, "exp_month")), int(gateway.get(details, "exp_year"))
    except (TypeError, ValueError):
        return None
    before = (card.label, card.exp_month, card.exp_year)
    card.brand, card.last4 = brand or card.brand, last4 or card.last4
    if (exp_month, exp_year) != (card.exp_month, card.exp_year):
        card.exp_month, card.exp_year = exp_month, exp_year
        card.expiry_warning_sent_at = None
    if before != (card.label, card.exp_month, card.exp_year):
        activity.record(card.customer_id, "card", f"Card updated by the card network: {before[0]} "
                        f"(exp {before[1] or '?'}/{before[2] or '?'}) is now {card.label} "
                        f"(exp {exp_month:02d}/{exp_year})")
    return card
