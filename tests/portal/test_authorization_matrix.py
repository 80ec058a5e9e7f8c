"""Section 1 / P-*: every portal object is loaded through the logged-in customer.

The routes are walked from the url_map, so a new portal route with an object id is covered the day it is
added: customer A asking for customer B's object gets 404 (GET and POST alike), an unknown id gets 404,
and an anonymous visitor is sent to /portal/login.
"""
from __future__ import annotations

from datetime import date

from portal import clock
from portal.extensions import db
from portal.models import ChargeAttempt, Payment
from portal.services.payments import charges
from tests.factories import make_card, make_customer, make_estimate, make_invoice, make_job, make_plan
from tests.helpers import csrf_token_from

PUBLIC = {"portal.auth.login", "portal.auth.magic", "portal.auth.sent", "portal.auth.logout"}


def _objects_of(customer) -> dict[str, int]:
    invoice = make_invoice(customer, 12_000)
    job = make_job(customer)
    estimate = make_estimate(customer, deposit_cents=5_000)
    plan = make_plan(customer, payments=[(date(2026, 10, 1), "paid")])
    card = make_card(customer.id)
    payment = Payment(customer_id=customer.id, method="cash", amount_cents=2_000, net_cents=2_000,
                      received_at=clock.now())
    db.session.add(payment)
    db.session.flush()
    charges.add_allocation(payment, 2_000, invoice_id=invoice.id)
    attempt = ChargeAttempt(idempotency_key=f"charge_matrix_{customer.id}", customer_id=customer.id, card_id=card.id,
                            amount_cents=5_000, status="failed", purpose="deposit", invoice_id=invoice.id,
                            estimate_id=estimate.id, initiated_by="customer")
    db.session.add(attempt)
    db.session.commit()
    return {"invoice_id": invoice.id, "visit_id": job.visits[0].id, "estimate_id": estimate.id, "plan_id": plan.id,
            "card_id": card.id, "payment_id": payment.id, "attempt_id": attempt.id}


def _url(rule, ids: dict) -> str:
    return rule.build({k: v for k, v in ids.items() if k in rule.arguments})[1]


def _object_routes(app):
    routes = [r for r in app.url_map.iter_rules()
              if r.endpoint.startswith("portal.") and r.endpoint not in PUBLIC and r.arguments]
    return sorted(routes, key=lambda r: r.rule)


def test_customer_a_gets_404_for_every_object_of_customer_b(app, client, login_customer, stripe_sandbox):
    with app.app_context():
        a = make_customer("Ana", "Alpha")
        b = make_customer("Ben", "Beta")
        own = _objects_of(a)
        theirs = _objects_of(b)
    routes = _object_routes(app)
    # the routes this matrix must cover (a new kind of object id fails the lookup below until it is added)
    assert {arg for r in routes for arg in r.arguments} <= set(theirs), [r.rule for r in routes]
    assert len(routes) >= 14, [r.rule for r in routes]
    login_customer(a)
    csrf = csrf_token_from(client.get("/portal/messages/new").get_data(True))
    checked = []
    for rule in routes:
        for ids in (theirs, {k: 987_654 for k in theirs}):
            url = _url(rule, ids)
            # and the mixed case: A's own parent object with B's child object
            urls = [url] + ([_url(rule, {**own, "attempt_id": ids["attempt_id"]})] if "attempt_id" in rule.arguments
                            else [])
            for target in urls:
                for method in sorted(rule.methods & {"GET", "POST"}):
                    r = client.get(target) if method == "GET" else client.post(target, data={"csrf_token": csrf})
                    assert r.status_code == 404, (method, target, r.status_code)
                    checked.append((method, target))
    # A's own objects are reachable on the GET pages (the 404s above are about ownership, not broken pages)
    for rule in routes:
        if "GET" in rule.methods and "attempt_id" not in rule.arguments and rule.endpoint != "portal.appointments.reschedule":
            assert client.get(_url(rule, own)).status_code == 200, rule.rule
    assert len(checked) >= 36


def test_anonymous_visitors_are_sent_to_the_login_page_from_every_portal_route(app, client):
    with app.app_context():
        c = make_customer()
        invoice = make_invoice(c)
    csrf = csrf_token_from(client.get("/portal/login").get_data(True))  # a valid form, just no login
    count = 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("portal.") or rule.endpoint in PUBLIC:
            continue
        url = rule.build({arg: invoice.id for arg in rule.arguments})[1]
        for method in sorted(rule.methods & {"GET", "POST"}):
            r = client.get(url) if method == "GET" else client.post(url, data={"csrf_token": csrf})
            assert r.status_code == 302, (method, url, r.status_code)
            assert r.headers["Location"].split("?")[0].endswith("/portal/login"), (method, url, r.headers["Location"])
            count += 1
    assert count >= 25
