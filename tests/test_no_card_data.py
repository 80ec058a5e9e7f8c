"""G-4: no card number or CVC is ever in our database, logs or emails.

A Luhn-valid number (and a CVC-like value) is posted to every field of every form, as a staff
admin and as a customer, on every POST route; a real card is also saved and charged through the
sandbox the way the browser does it. Then the whole database and the captured logs are searched.
"""
import logging
import re

import requests
from flask_wtf import FlaskForm
from sqlalchemy import text

from portal.extensions import db
from portal.models import Customer
from portal.services.payments import charges
from portal.services.platform import magic_links, mailer
from tests.factories import make_card, make_customer, make_invoice, make_staff
from tests.helpers import csrf_token_from

NUMBER = "4000056655665556"  # Luhn-valid test Visa debit
CVC = "737"


PLAUSIBLE = {"amount": "5.00", "method": "check", "kind": "personal", "card_id": "1", "invoice_id": "",
             "role": "office", "email": "someone@example.com", "status": "active", "preferred_language": "en",
             "cvc": CVC}


def _all_form_fields(app) -> set[str]:
    import admin.forms  # noqa: F401
    import portal.forms.auth  # noqa: F401
    import portal.forms.payments  # noqa: F401

    names, todo = set(), list(FlaskForm.__subclasses__())
    with app.test_request_context():
        while todo:
            cls = todo.pop()
            todo.extend(cls.__subclasses__())
            names |= {n for n in cls(meta={"csrf": False})._fields}
    return names | {"number", "card_number", "cardnumber", "cvc", "cvv", "card[number]", "card[cvc]"}


def _path(rule, ids) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: str(ids.get(m.group(1), 1)), rule.rule)


def _dump(app) -> str:
    chunks = []
    with app.app_context():
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(text(f'SELECT * FROM "{table.name}"')):
                chunks.append(" ".join(str(v) for v in row))
    return "\n".join(chunks)


def test_card_numbers_never_reach_our_database_logs_or_emails(app, live_server, stripe_sandbox, smtp, caplog):
    caplog.set_level(logging.DEBUG)
    with app.app_context():
        staff = make_staff("admin")
        c = make_customer("Ana", "Diaz", email="ana@example.com")
        invoice = make_invoice(c, 50_000)
        card = make_card(c.id, NUMBER)  # the browser's way: straight to Stripe
        outcome = charges.charge_card(db.session.get(Customer, c.id), card, 1_000, token=None,
                                      invoice=invoice, off_session=True, initiated_by="staff")
        assert outcome.attempt.status == "succeeded"
        link = magic_links.portal_link(db.session.get(Customer, c.id))
        ids = {"customer_id": c.id, "card_id": card.id, "invoice_id": invoice.id, "payment_id": outcome.payment.id,
               "attempt_id": outcome.attempt.id, "staff_id": staff.id, "user_id": staff.id, "email_id": 1}
    fields = _all_form_fields(app)

    staff_session, customer_session = requests.Session(), requests.Session()
    login = staff_session.get(f"{live_server}/admin/login").text
    r = staff_session.post(f"{live_server}/admin/login", data={"email": staff.email, "password": "correct horse battery",
                                                               "csrf_token": csrf_token_from(login)})
    assert r.url.endswith("/admin/"), r.url
    assert customer_session.get(link).url.endswith("/portal/")
    posted = refused = 0
    for session, home in ((staff_session, "/admin/"), (customer_session, "/portal/wallet")):
        csrf = csrf_token_from(session.get(live_server + home).text)
        for rule in app.url_map.iter_rules():
            if "POST" not in rule.methods or rule.endpoint.endswith("logout") or rule.endpoint.startswith("webhooks"):
                continue
            # every field holds the number; then plausible values with the number in each free-text field
            everything = {name: (CVC if "cvc" in name or "cvv" in name else NUMBER) for name in fields}
            plausible = {**{name: f"ref {NUMBER}" for name in fields}, **PLAUSIBLE}
            for data in (everything, plausible):
                data["csrf_token"] = csrf
                r = session.post(live_server + _path(rule, ids), data=data, allow_redirects=False)
                assert r.status_code < 500, (rule.rule, r.status_code)
                if data is plausible and r.status_code == 400:
                    refused += "Card numbers cannot be entered here" in r.text
                posted += 1
    assert posted >= 40 and refused >= 20  # the guard, not luck, kept them out

    with app.app_context():
        mailer.deliver_pending()
    dump = _dump(app)
    assert NUMBER not in dump
    # a stored CVC would be a value on its own, not three digits inside a hash, id or timestamp
    assert not re.search(rf"(?<![0-9A-Za-z.:$/_-]){CVC}(?![0-9A-Za-z.:$/_-])", dump), "a CVC-like value was stored"
    logs = caplog.text
    assert NUMBER not in logs and f"cvc={CVC}" not in logs
    assert smtp.messages, "the charge's receipt email was expected"
    for msg in smtp.messages:
        assert NUMBER not in msg.as_string()
    # the card is on file by its last 4 digits only
    assert "5556" in dump


def test_the_card_number_guard_tells_numbers_from_other_digits():
    from portal.card_guard import contains_card_number

    assert contains_card_number("4242 4242 4242 4242") and contains_card_number("check 4000-0566-5566-5556")
    assert not contains_card_number("4242 4242 4242 4241")  # fails Luhn
    assert not contains_card_number("+1 (555) 201-3344") and not contains_card_number("1042")
    assert not contains_card_number("0000000000000000") and not contains_card_number("seti_1Abc2345678901234")
