"""DATA-3: a business already on Stripe links its Stripe customers to ours by email and brings their saved cards
in as cards on file (Settings › Payments and `flask stripe-import`), against the sandbox: nothing is charged, and
running it again adds nothing."""
from __future__ import annotations

import re

from sqlalchemy import select

from portal.extensions import db
from portal.models import ActivityEvent, Card, Customer
from tests.factories import make_customer, make_staff
from tests.helpers import csrf_token_from, sandbox_intents


def _stripe_customer(email: str | None, name: str, cards: list[tuple[str, int, int]], default: int | None = None):
    """A Stripe customer with saved cards, made as another tool would have (call inside an app context)."""
    from portal.services.payments import gateway

    stripe = gateway.client()
    customer = stripe.v1.customers.create(params={"name": name, **({"email": email} if email else {})})
    pms = []
    for number, month, year in cards:
        pm = stripe.v1.payment_methods.create(params={"type": "card", "card": {
            "number": number, "exp_month": month, "exp_year": year, "cvc": "123"}})
        stripe.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
        pms.append(pm.id)
    if default is not None:
        stripe.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pms[default]}})
    return customer.id, pms


def _cards(app) -> dict[str, list[tuple]]:
    with app.app_context():
        rows = db.session.execute(select(Customer.first_name, Card.last4, Card.exp_month, Card.exp_year,
                                         Card.is_default, Card.brand)
                                  .join(Card, Card.customer_id == Customer.id).order_by(Card.id)).all()
    found: dict[str, list[tuple]] = {}
    for first, *card in rows:
        found.setdefault(first, []).append(tuple(card))
    return found


def test_two_matched_customers_get_their_cards_nothing_is_charged_and_a_second_run_adds_nothing(
        app, client, login_staff, runner, stripe_sandbox, monkeypatch):
    from portal.services.payments import stripe_link

    monkeypatch.setattr(stripe_link, "PAGE", 1)  # every list is read page by page, as a large account's would be
    with app.app_context():
        owner, office = make_staff("admin"), make_staff("office")
        ana = make_customer("Ana", "Diaz", email="ana@example.com")
        ben = make_customer("Ben", "Ortiz", email="ben@example.com")
        make_customer("Cleo", "Nobody", email="cleo@example.com")
        ana_cus, ana_pms = _stripe_customer("ana@example.com", "Ana Diaz",
                                            [("4242424242424242", 12, 2030), ("4000056655665556", 3, 2031)], default=1)
        ben_cus, _ = _stripe_customer("Ben@Example.com", "Ben Ortiz", [("5555555555554444", 7, 2029)])
        _stripe_customer("dora@example.com", "Dora Stone", [("4242424242424242", 1, 2032)])
        _stripe_customer(None, "Walk-in", [])

    login_staff(office)
    assert client.get("/admin/settings/stripe-import").status_code == 403

    admin = app.test_client()
    login_staff(owner, c=admin)
    assert "Link existing Stripe customers" in admin.get("/admin/settings").get_data(True)
    page = admin.get("/admin/settings/stripe-import").get_data(True)
    counts = dict(re.findall(r'<dd data-count="(\w+)">(\d+)</dd>', page))
    assert counts == {"link": "2", "linked": "0", "create": "0", "unmatched": "2", "conflict": "0"}
    assert "Ana Diaz" in page and "dora@example.com" in page and "no customer has this email" in page

    r = admin.post("/admin/settings/stripe-import", data={"csrf_token": csrf_token_from(page)})
    assert r.status_code == 302
    done = admin.get(r.headers["Location"]).get_data(True)
    assert "Linked 2 customers, created 0, imported 3 cards." in done and "Nothing was charged." in done
    assert _cards(app) == {"Ana": [("4242", 12, 2030, False, "visa"), ("5556", 3, 2031, True, "visa")],
                           "Ben": [("4444", 7, 2029, True, "visa")]}
    with app.app_context():
        assert db.session.get(Customer, ana.id).stripe_customer_id == ana_cus
        assert db.session.get(Customer, ben.id).stripe_customer_id == ben_cus
        feed = db.session.scalars(select(ActivityEvent.summary).where(ActivityEvent.customer_id == ana.id)
                                  .order_by(ActivityEvent.id)).all()
        assert feed == [f"Linked to the Stripe customer {ana_cus}", "Card imported from Stripe: Visa •••• 4242 "
                        "(exp 12/2030)", "Card imported from Stripe: Visa •••• 5556 (exp 03/2031), default"]
        assert sandbox_intents() == []  # nothing charged
        card_page = admin.get(f"/admin/customers/{ana.id}").get_data(True)
    assert "5556" in card_page and "4242" in card_page

    again = runner.invoke(args=["stripe-import", "--yes"])
    assert again.exit_code == 0, again.output
    assert "To link: 0, already linked: 2" in again.output
    assert "Linked 0, created 0, cards imported 0." in again.output
    assert len(_cards(app)["Ana"]) == 2

    created = runner.invoke(args=["stripe-import", "--create-unmatched", "--yes"])
    assert created.exit_code == 0, created.output
    assert "Linked 0, created 2, cards imported 1." in created.output  # Dora and the walk-in (no card)
    assert _cards(app)["Dora"] == [("4242", 1, 2032, True, "visa")]
    third = runner.invoke(args=["stripe-import", "--create-unmatched", "--yes"])
    assert "Linked 0, created 0, cards imported 0." in third.output
    with app.app_context():
        assert sandbox_intents() == []
        walk_in = db.session.scalars(select(Customer).where(Customer.first_name == "Walk-in")).one()
        assert (walk_in.primary_email, walk_in.status, walk_in.stripe_customer_id is not None) == (None, "active", True)
        assert ana_pms[0] in db.session.scalars(select(Card.stripe_payment_method_id)).all()


def test_a_customer_linked_to_another_stripe_customer_is_left_alone(app, runner, stripe_sandbox):
    from portal.services.payments import gateway

    with app.app_context():
        ana = make_customer("Ana", "Diaz", email="ana@example.com")
        mine = gateway.client().v1.customers.create(params={"email": "ana@example.com"}).id
        db.session.get(Customer, ana.id).stripe_customer_id = mine
        db.session.commit()
        other, _ = _stripe_customer("ana@example.com", "Ana D.", [("4242424242424242", 12, 2030)])
    result = runner.invoke(args=["stripe-import", "--yes"])
    assert result.exit_code == 0, result.output
    assert f"{other}  ana@example.com → Ana Diaz (#{ana.id}): conflict (already linked to another Stripe " \
           f"customer ({mine}))" in result.output
    assert _cards(app) == {}
    declined = runner.invoke(args=["stripe-import"], input="n\n")
    assert "Nothing changed." in declined.output
