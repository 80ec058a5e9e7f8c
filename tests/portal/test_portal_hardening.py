"""Bad input on portal pages gets a clear answer and changes nothing; never a 500."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import ChargeAttempt, Customer, Estimate, MessageRequest
from portal.money import MoneyError, parse_amount
from tests.factories import make_card, make_customer, make_estimate, make_invoice
from tests.helpers import csrf_token_from

HUGE = 99_999_999_999_999_999_999


@pytest.mark.parametrize("text,cents", [("49,99", 4_999), ("1.234,50", 123_450), ("1 234,50", 123_450),
                                        ("1,234.50", 123_450), ("1,234", 123_400), ("$12", 1_200), ("0,5", 50)])
def test_amounts_typed_in_any_of_the_portal_languages(text, cents):
    assert parse_amount(text) == cents


@pytest.mark.parametrize("text", ["1.234", "abc", "-5", "1e30", "12.345"])
def test_ambiguous_or_bad_amounts_are_refused(text):
    with pytest.raises(MoneyError):
        parse_amount(text)


def test_ids_past_the_database_range_are_404(app, client, login_customer):
    with app.app_context():
        c = make_customer()
    login_customer(c)
    for url in (f"/portal/invoices/{HUGE}", f"/portal/invoices/{HUGE}.pdf", f"/portal/estimates/{HUGE}",
                f"/portal/appointments/{HUGE}.ics", f"/portal/plans/{HUGE}", f"/portal/payments/{HUGE}"):
        assert client.get(url).status_code == 404, url


def test_a_card_id_past_the_range_is_a_message(app, client, login_customer, stripe_sandbox):
    with app.app_context():
        c = make_customer()
        invoice = make_invoice(c, 5_000)
    login_customer(c)
    html = client.get(f"/portal/invoices/{invoice.id}/pay").get_data(True)
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', html).group(1)
    r = client.post(f"/portal/invoices/{invoice.id}/pay", data={"csrf_token": csrf_token_from(html), "token": token,
                                                               "amount": "50.00", "card_id": str(HUGE)})
    assert r.status_code == 400 and "Choose one of the cards on file." in r.get_data(True)


def test_nul_characters_are_refused_before_any_view(app, client, login_customer):
    with app.app_context():
        c = make_customer()
    login_customer(c)
    csrf = csrf_token_from(client.get("/portal/messages/new").get_data(True))
    r = client.post("/portal/messages/new", data={"csrf_token": csrf, "name": "Ana", "body": "hi\x00there"})
    assert r.status_code == 400
    with app.app_context():
        assert db.session.scalars(select(MessageRequest)).all() == []


def test_switcher_on_a_page_shown_after_a_post_links_to_a_get_page(app, client, login_customer):
    with app.app_context():
        c = make_customer()
        est = make_estimate(c)
    login_customer(c)
    csrf = csrf_token_from(client.get(f"/portal/estimates/{est.id}").get_data(True))
    page = client.post(f"/portal/estimates/{est.id}/approve", data={"csrf_token": csrf, "name": ""}).get_data(True)
    links = re.findall(r'<a href="([^"]+)" lang="es"', page)
    assert links == ["/portal/?lang=es"]
    listing = client.get("/portal/invoices?show=paid").get_data(True)
    assert re.findall(r'<a href="([^"]+)" lang="ru"', listing)[0] in ("/portal/invoices?show=paid&amp;lang=ru",
                                                                      "/portal/invoices?lang=ru&amp;show=paid")


def test_language_chosen_before_login_becomes_the_preference(app, client, login_customer):
    with app.app_context():
        c = make_customer(language="en")
    client.get("/portal/login?lang=ru")
    login_customer(c)
    assert "Предстоящие списания" in client.get("/portal/").get_data(True)
    with app.app_context():
        assert db.session.get(Customer, c.id).preferred_language == "ru"


def test_error_pages_speak_the_customers_language(app, client, login_customer):
    with app.app_context():
        c = make_customer(language="es")
    login_customer(c)
    page = client.get("/portal/invoices/424242").get_data(True)
    assert "Página no encontrada" in page


def test_an_abandoned_bank_confirmation_does_not_block_the_deposit(app, client, login_customer, stripe_sandbox):
    with app.app_context():
        c = make_customer()
        est = make_estimate(c, deposit_cents=5_000)
        needs_3ds = make_card(c.id, "4000002500003155")
        plain = make_card(c.id, "4242424242424242")

    def approve(card_id):
        html = client.get(f"/portal/estimates/{est.id}").get_data(True)
        token = re.search(r'name="token" type="hidden" value="([^"]+)"', html).group(1)
        return client.post(f"/portal/estimates/{est.id}/approve", data={
            "csrf_token": csrf_token_from(html), "token": token, "name": "Maria", "card_id": str(card_id)})

    login_customer(c)
    assert "Confirm the payment with your bank" in approve(needs_3ds.id).get_data(True)  # window closed unconfirmed
    assert approve(plain.id).status_code == 302
    with app.app_context():
        assert db.session.get(Estimate, est.id).status == "approved"
        statuses = [a.status for a in db.session.scalars(select(ChargeAttempt).order_by(ChargeAttempt.id))]
        assert statuses == ["failed", "succeeded"]
