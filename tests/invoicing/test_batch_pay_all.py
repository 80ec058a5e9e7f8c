"""INV-4: batch invoicing by hand with one "Pay all" link that pays the invoices together.

Through the pages, as staff and customers meet them (Flask test client, SQLite, the localstripe sandbox, a real
SMTP server): staff tick invoices on the client card, the customer gets one email with each invoice as a PDF and
one "Pay all" link, follows it and pays once for the sum. One PaymentIntent in the sandbox, one Payment allocated
to each invoice in one transaction; a decline leaves nothing half paid; bad input is refused with a clear message
and never charges, emails or answers 500. The browser's Stripe.js step is `tests.factories.sandbox_card`.
"""
from __future__ import annotations

import html as html_lib
import re
from urllib.parse import urlsplit

import requests
from sqlalchemy import func, select

from portal import clock
from portal.extensions import db
from portal.models import (
    ChargeAttempt,
    ChargeAttemptInvoice,
    Customer,
    Invoice,
    Payment,
    PaymentAllocation,
    QueuedEmail,
    StaffUser,
)
from portal.services.payments import charges
from tests.factories import make_card, make_customer, make_invoice, make_staff, sandbox_card
from tests.helpers import csrf_token_from, log_in_customer, log_in_staff, sandbox_intents, wait_for_email

GOOD, DECLINED, THREE_DS = "4242424242424242", "4000000000000341", "4000002500003155"
BATCH_SUBJECT = "Your invoices from Bright Air"


# --- helpers -------------------------------------------------------------------------------------------------

def hidden(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', page)
    assert m, f"no hidden {name} on the page"
    return m.group(1)


def text_of(page: str) -> str:
    """What a reader sees: tags dropped, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", page)))


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def fresh(model, id_):
    return db.session.scalars(select(model).where(model.id == id_).execution_options(populate_existing=True)).one()


def people(app, *, balances=(12_000, 8_050), number_prefix="INV-71", card: str | None = GOOD):
    """A customer with open invoices (not sent yet), an admin, optionally a saved card."""
    with app.app_context():
        admin = make_staff("admin")
        customer = make_customer("Nina", "Park", email="nina.park@example.com")
        invoices = [make_invoice(customer, cents, number=f"{number_prefix}{i}") for i, cents in enumerate(balances)]
        saved = make_card(customer.id, card) if card else None
    return customer, admin, invoices, saved


def staff_send(app, admin, customer_id: int, invoice_ids: list, follow: bool = True):
    """Staff tick invoices on the client card and press "Send selected in one email"."""
    staff = app.test_client()
    log_in_staff(staff, admin)
    card = staff.get(f"/admin/customers/{customer_id}").get_data(True)
    r = staff.post(f"/admin/customers/{customer_id}/invoices/send",
                   data={"csrf_token": csrf_token_from(card), "invoice_id": [str(i) for i in invoice_ids]})
    assert r.status_code == 302, r.status_code
    return text_of(staff.get(r.headers["Location"]).get_data(True)) if follow else r


def follow_magic(c, link: str):
    """The customer clicks the emailed link: logged in and sent on to the page it names."""
    r = c.get(urlsplit(link).path)
    assert r.status_code == 302, r.status_code
    return r.headers["Location"]


def pay_all_form(c, url: str) -> tuple[str, dict]:
    r = c.get(url)
    assert r.status_code == 200, (url, r.status_code)
    page = r.get_data(True)
    return page, {"csrf_token": csrf_token_from(page), "token": hidden(page, "token"), "ids": hidden(page, "ids"),
                  "total": hidden(page, "total")}


def portal_client(app, customer):
    return log_in_customer(app, app.test_client(), customer)


# --- 1. The whole journey: staff batch → one email → pay all with a saved card -----------------------------

def test_staff_batch_one_email_with_both_pdfs_and_pay_all_charges_once_for_the_sum(app, stripe_sandbox, smtp):
    customer, admin, (a, b), card = people(app)
    flash = staff_send(app, admin, customer.id, [a.id, b.id])
    assert "2 invoices sent to nina.park@example.com in one email with a “Pay all” link." in flash

    [msg] = wait_for_email(smtp, "nina.park@example.com", BATCH_SUBJECT)
    assert len(smtp.to("nina.park@example.com")) == 1  # one email for both invoices
    files = sorted((part.get_filename(), part.get_content_type(), part.get_content())
                   for part in msg.iter_attachments())
    assert [(f, t) for f, t, _ in files] == [("invoice-INV-710.pdf", "application/pdf"),
                                            ("invoice-INV-711.pdf", "application/pdf")]
    assert all(data.startswith(b"%PDF") for _, _, data in files)
    text, html = smtp.text(msg), smtp.html(msg)
    assert "Invoice INV-710" in text and "Invoice INV-711" in text and "Total due: $200.50" in text
    pay_links = re.findall(r"Pay all of them at once: (\S+)", text)
    assert len(pay_links) == 1 and pay_links[0] in html and "Pay all of them at once" in html
    with app.app_context():
        [email] = db.session.scalars(select(QueuedEmail).where(QueuedEmail.template == "invoices_sent")).all()
        assert email.status == "sent"
        assert {fresh(Invoice, a.id).status, fresh(Invoice, b.id).status} == {"open"}
        assert fresh(Invoice, a.id).sent_at is not None and fresh(Invoice, b.id).sent_at is not None

    # the customer follows the "Pay all" link: logged in on the pay-all page for exactly these invoices
    c = app.test_client()
    target = follow_magic(c, pay_links[0])
    assert target == f"/portal/invoices/pay-all?ids={a.id},{b.id}"
    page, form = pay_all_form(c, target)
    seen = text_of(page)
    assert "INV-710" in seen and "INV-711" in seen and "$120.00" in seen and "$80.50" in seen
    assert "One payment of $200.50 pays every invoice above in full." in seen and "Pay $200.50" in seen
    assert form["total"] == "20050" and form["ids"] == f"{a.id},{b.id}"

    r = c.post("/portal/invoices/pay-all", data={**form, "card_id": str(card.id)})
    assert r.status_code == 302 and "/portal/payments/" in r.headers["Location"], r.get_data(True)[:500]

    pis = sandbox_intents(stripe_sandbox)
    assert [(pi["amount"], pi["status"]) for pi in pis] == [(20_050, "succeeded")]
    with app.app_context():
        [payment] = db.session.scalars(select(Payment)).all()
        assert payment.amount_cents == 20_050 and payment.method == "card" and payment.status == "succeeded"
        allocations = db.session.scalars(select(PaymentAllocation).order_by(PaymentAllocation.invoice_id)).all()
        assert [(x.payment_id, x.invoice_id, x.amount_cents) for x in allocations] == \
            [(payment.id, a.id, 12_000), (payment.id, b.id, 8_050)]
        for inv in (a, b):
            row = fresh(Invoice, inv.id)
            assert row.status == "paid" and row.balance_cents == 0
        attempt = db.session.get(ChargeAttempt, payment.charge_attempt_id)
        assert attempt.stripe_payment_intent_id == pis[0]["id"] and attempt.purpose == "invoices"
    receipt = text_of(c.get(r.headers["Location"]).get_data(True))
    assert "Thank you! We received your payment of $200.50." in receipt
    assert re.search(r"INV-710 ?: \$120\.00 · balance left \$0\.00", receipt), receipt
    assert re.search(r"INV-711 ?: \$80\.50 · balance left \$0\.00", receipt), receipt
    [receipt_email] = wait_for_email(smtp, "nina.park@example.com", "Payment receipt")
    assert "$200.50" in smtp.text(receipt_email)
    # the one receipt names every invoice it paid
    assert "Invoice: INV-710" in smtp.text(receipt_email) and "Invoice: INV-711" in smtp.text(receipt_email)
    # the invoices list no longer offers them
    assert "INV-710" not in text_of(c.get("/portal/invoices").get_data(True))


# --- 2. Pay all with a new card ----------------------------------------------------------------------------

def test_pay_all_with_a_new_card(app, stripe_sandbox, smtp):
    customer, admin, (a, b), _ = people(app, balances=(4_000, 6_500), card=None)
    staff_send(app, admin, customer.id, [a.id, b.id])
    [msg] = wait_for_email(smtp, "nina.park@example.com", BATCH_SUBJECT)
    link = re.search(r"Pay all of them at once: (\S+)", smtp.text(msg)).group(1)
    c = app.test_client()
    page, form = pay_all_form(c, follow_magic(c, link))
    assert "A new card" in page and "data-card-element" in page
    with app.app_context():
        seti = sandbox_card(customer.id, purpose="payment")
    r = c.post("/portal/invoices/pay-all", data={**form, "card_id": "new", "setup_intent": seti, "save_card": "y"})
    assert r.status_code == 302 and "/portal/payments/" in r.headers["Location"], r.get_data(True)[:500]
    assert [(pi["amount"], pi["status"]) for pi in sandbox_intents(stripe_sandbox)] == [(10_500, "succeeded")]
    with app.app_context():
        assert [fresh(Invoice, i.id).status for i in (a, b)] == ["paid", "paid"]
        [payment] = db.session.scalars(select(Payment)).all()
        assert payment.amount_cents == 10_500 and count(PaymentAllocation) == 2
    assert "•••• 4242" in text_of(c.get("/portal/wallet").get_data(True))  # "save this card" was ticked


# --- 3. A declined card: one failed charge, nothing allocated, both still open ------------------------------

def test_declined_pay_all_leaves_both_invoices_open_and_nothing_allocated(app, stripe_sandbox, smtp):
    customer, admin, (a, b), card = people(app, card=DECLINED)
    staff_send(app, admin, customer.id, [a.id, b.id])
    c = portal_client(app, customer)
    _, form = pay_all_form(c, f"/portal/invoices/pay-all?ids={a.id},{b.id}")
    r = c.post("/portal/invoices/pay-all", data={**form, "card_id": str(card.id)})
    seen = text_of(r.get_data(True))
    assert r.status_code == 402 and "The payment did not go through." in seen
    assert "INV-710" in seen and "Pay $200.50" in seen  # the page offers to try again for the same invoices
    assert hidden(r.get_data(True), "token") != form["token"]  # a new try is a new attempt
    pis = sandbox_intents(stripe_sandbox)
    assert len(pis) == 1 and pis[0]["status"] != "succeeded"
    with app.app_context():
        assert count(Payment) == 0 and count(PaymentAllocation) == 0
        for inv in (a, b):
            row = fresh(Invoice, inv.id)
            assert row.status == "open" and row.paid_cents == 0
        [attempt] = db.session.scalars(select(ChargeAttempt)).all()
        assert attempt.status == "failed" and attempt.amount_cents == 20_050
        assert charges.open_attempt_for(fresh(Invoice, a.id)) is None  # nothing left blocking a new try
    assert not [m for m in smtp.to("nina.park@example.com") if "receipt" in str(m["Subject"]).lower()]


# --- 4. Bad input ------------------------------------------------------------------------------------------

def test_staff_batch_bad_input_is_refused_with_a_message_and_emails_nobody(app, smtp):
    customer, admin, (a, _b), _ = people(app, card=None)
    with app.app_context():
        other = make_customer("Omar", "Other", email="omar@example.com")
        theirs = make_invoice(other, 5_000, number="INV-7999")
        paid = make_invoice(customer, 3_000, number="INV-7888", status="paid")
        row = fresh(Invoice, paid.id)
        row.paid_cents = row.total_cents
        db.session.commit()

    flash = staff_send(app, admin, customer.id, [a.id, theirs.id])
    assert "All the invoices must belong to this customer." in flash
    flash = staff_send(app, admin, customer.id, [a.id, paid.id])
    assert "Invoice INV-7888 is paid and has nothing to pay." in flash
    flash = staff_send(app, admin, customer.id, [])
    assert "Tick the invoices to send." in flash
    flash = staff_send(app, admin, customer.id, ["abc"])
    assert "That is not an invoice of this customer." in flash
    flash = staff_send(app, admin, customer.id, [a.id, 987654])
    assert "That is not an invoice of this customer." in flash
    with app.app_context():
        assert count(QueuedEmail) == 0
        assert fresh(Invoice, a.id).sent_at is None and fresh(Invoice, theirs.id).sent_at is None
    assert smtp.messages == []


def test_pay_all_with_another_customers_invoice_is_404_and_charges_nothing(app, stripe_sandbox):
    customer, admin, (a, b), card = people(app)
    with app.app_context():
        other = make_customer("Omar", "Other", email="omar@example.com")
        theirs = make_invoice(other, 5_000, number="INV-7999")
        from portal.services.billing import invoices
        invoices.send(fresh(Invoice, theirs.id), db.session.get(StaffUser, admin.id))
        db.session.commit()
        for inv in (a, b):
            invoices.send(fresh(Invoice, inv.id), db.session.get(StaffUser, admin.id))
            db.session.commit()
    c = portal_client(app, customer)
    assert c.get(f"/portal/invoices/pay-all?ids={a.id},{theirs.id}").status_code == 404
    assert c.get(f"/portal/invoices/pay-all?ids={theirs.id}").status_code == 404
    assert c.get("/portal/invoices/pay-all?ids=1;DROP").status_code == 404
    _, form = pay_all_form(c, f"/portal/invoices/pay-all?ids={a.id}")
    r = c.post("/portal/invoices/pay-all", data={**form, "ids": f"{a.id},{theirs.id}", "total": "17000",
                                                 "card_id": str(card.id)})
    assert r.status_code == 404
    assert sandbox_intents(stripe_sandbox) == []
    with app.app_context():
        assert count(ChargeAttempt) == 0 and fresh(Invoice, theirs.id).status == "open"


def test_an_invoice_paid_meanwhile_is_shown_as_paid_and_only_the_rest_is_charged(app, stripe_sandbox, smtp):
    customer, admin, (a, b), card = people(app)
    staff_send(app, admin, customer.id, [a.id, b.id])
    with app.app_context():  # the customer paid INV-710 in cash at the office
        charges.record_manual(db.session.get(Customer, customer.id), method="cash", amount_cents=12_000,
                              reference=None, actor=db.session.get(StaffUser, admin.id),
                              invoice=fresh(Invoice, a.id))
    c = portal_client(app, customer)
    page, form = pay_all_form(c, f"/portal/invoices/pay-all?ids={a.id},{b.id}")
    seen = text_of(page)
    assert "Invoice INV-710 is already paid." in seen
    assert "Pay $80.50" in seen and "Pay $200.50" not in seen and form["ids"] == str(b.id)
    r = c.post("/portal/invoices/pay-all", data={**form, "card_id": str(card.id)})
    assert r.status_code == 302, r.get_data(True)[:500]
    assert [(pi["amount"], pi["status"]) for pi in sandbox_intents(stripe_sandbox)] == [(8_050, "succeeded")]
    with app.app_context():
        card_payment = db.session.scalars(select(Payment).where(Payment.method == "card")).one()
        assert [(x.invoice_id, x.amount_cents) for x in card_payment.allocations] == [(b.id, 8_050)]
        assert fresh(Invoice, a.id).paid_cents == 12_000 and fresh(Invoice, b.id).status == "paid"

    # everything paid: the link now says so and offers nothing to pay
    page = c.get(f"/portal/invoices/pay-all?ids={a.id},{b.id}").get_data(True)
    assert "There is nothing left to pay on these invoices." in text_of(page) and 'name="card_id"' not in page


def test_a_stale_total_is_refused_with_409_and_charges_nothing(app, stripe_sandbox):
    customer, admin, (a, b), card = people(app)
    staff_send(app, admin, customer.id, [a.id, b.id])
    c = portal_client(app, customer)
    _, form = pay_all_form(c, f"/portal/invoices/pay-all?ids={a.id},{b.id}")
    assert form["total"] == "20050"
    with app.app_context():  # a partial cash payment lands between the page and the click
        charges.record_manual(db.session.get(Customer, customer.id), method="cash", amount_cents=2_000,
                              reference=None, actor=db.session.get(StaffUser, admin.id),
                              invoice=fresh(Invoice, b.id))
    r = c.post("/portal/invoices/pay-all", data={**form, "card_id": str(card.id)})
    seen = text_of(r.get_data(True))
    assert r.status_code == 409
    assert "The balances changed since you opened this page. Check the total and pay again." in seen
    assert "Pay $180.50" in seen  # the page now shows the new total
    assert sandbox_intents(stripe_sandbox) == []
    with app.app_context():
        assert count(ChargeAttempt) == 0
        assert fresh(Invoice, a.id).status == "open" and fresh(Invoice, b.id).status == "partially_paid"
    # a tampered total is the same: refused, nothing charged
    _, form = pay_all_form(c, f"/portal/invoices/pay-all?ids={a.id},{b.id}")
    r = c.post("/portal/invoices/pay-all", data={**form, "total": "100", "card_id": str(card.id)})
    assert r.status_code == 409 and sandbox_intents(stripe_sandbox) == []


def test_the_same_pay_all_form_posted_twice_charges_once(app, stripe_sandbox, smtp):
    customer, admin, (a, b), card = people(app)
    staff_send(app, admin, customer.id, [a.id, b.id])
    c = portal_client(app, customer)
    _, form = pay_all_form(c, f"/portal/invoices/pay-all?ids={a.id},{b.id}")
    first = c.post("/portal/invoices/pay-all", data={**form, "card_id": str(card.id)})
    assert first.status_code == 302
    again = c.post("/portal/invoices/pay-all", data={**form, "card_id": str(card.id)})
    assert again.status_code in (302, 409)
    if again.status_code == 302:
        assert again.headers["Location"] == first.headers["Location"]  # the same receipt
    else:  # the invoices are paid by the first post: the page says so
        seen = text_of(again.get_data(True))
        assert "Invoice INV-710 is already paid." in seen and "There is nothing left to pay on these invoices." in seen
    # the token alone is what makes it one charge: the attempt row exists, the service returns it
    with app.app_context():
        attempt = db.session.scalars(select(ChargeAttempt)).one()
        outcome = charges.charge_card(db.session.get(Customer, customer.id), card, 20_050,
                                      token=form["token"], invoices=[], purpose="invoices", off_session=False,
                                      initiated_by="customer")
        assert outcome.duplicate and outcome.attempt.id == attempt.id
        assert count(Payment) == 1 and count(PaymentAllocation) == 2
    assert [(pi["amount"], pi["status"]) for pi in sandbox_intents(stripe_sandbox)] == [(20_050, "succeeded")]
    assert len([m for m in smtp.to("nina.park@example.com") if "Payment receipt" in str(m["Subject"])]) == 1


# --- 5. An open "Pay all" charge blocks paying one of its invoices alone ------------------------------------

def test_an_open_pay_all_charge_blocks_paying_one_of_its_invoices_alone(app, stripe_sandbox):
    customer, admin, (a, b), card = people(app)
    staff_send(app, admin, customer.id, [a.id, b.id])
    with app.app_context():  # a "Pay all" charge on its way to Stripe (committed, no answer yet)
        attempt = ChargeAttempt(idempotency_key="charge_inflight-pay-all-0001", customer_id=customer.id,
                                card_id=card.id, amount_cents=20_050, currency="USD", status="pending",
                                purpose="invoices", off_session=False, initiated_by="customer",
                                created_at=clock.now())
        attempt.invoice_shares = [ChargeAttemptInvoice(invoice_id=a.id, amount_cents=12_000),
                                  ChargeAttemptInvoice(invoice_id=b.id, amount_cents=8_050)]
        db.session.add(attempt)
        db.session.commit()
    c = portal_client(app, customer)
    page = c.get(f"/portal/invoices/{b.id}/pay").get_data(True)
    r = c.post(f"/portal/invoices/{b.id}/pay", data={"csrf_token": csrf_token_from(page),
                                                      "token": hidden(page, "token"), "amount": "80.50",
                                                      "card_id": str(card.id)})
    assert r.status_code == 409
    assert "A payment for this is already being processed." in text_of(r.get_data(True))
    # nor can a second "Pay all" for the same invoices start
    _, form = pay_all_form(c, f"/portal/invoices/pay-all?ids={a.id},{b.id}")
    r = c.post("/portal/invoices/pay-all", data={**form, "card_id": str(card.id)})
    assert r.status_code == 409 and "already being processed" in text_of(r.get_data(True))
    # staff cannot charge it by hand either
    with app.app_context():
        try:
            charges.charge_card(db.session.get(Customer, customer.id), card, 8_050, token=None,
                                invoice=fresh(Invoice, b.id), purpose="invoice", off_session=False,
                                initiated_by="staff", actor=db.session.get(StaffUser, admin.id))
        except charges.ServiceError as exc:
            assert "already being processed" in exc.message
        else:
            raise AssertionError("a second charge started while the pay-all charge is open")
        db.session.rollback()
        assert count(ChargeAttempt) == 1 and count(Payment) == 0
        assert [fresh(Invoice, i.id).status for i in (a, b)] == ["open", "open"]
    assert sandbox_intents(stripe_sandbox) == []


def test_a_pay_all_waiting_for_3d_secure_is_cancelled_before_an_invoice_is_paid_alone(app, stripe_sandbox):
    """The 3-D Secure window left open does not block forever (the app's rule for abandoned confirmations), but
    the waiting "Pay all" PaymentIntent is cancelled first: never two charges for the same invoice."""
    customer, admin, (a, b), card = people(app, card=THREE_DS)
    staff_send(app, admin, customer.id, [a.id, b.id])
    c = portal_client(app, customer)
    _, form = pay_all_form(c, f"/portal/invoices/pay-all?ids={a.id},{b.id}")
    r = c.post("/portal/invoices/pay-all", data={**form, "card_id": str(card.id)})
    assert r.status_code == 200 and "/portal/invoices/pay-all/" in r.get_data(True)  # the bank's window
    [pi] = sandbox_intents(stripe_sandbox)
    assert pi["status"] == "requires_action" and pi["amount"] == 20_050
    with app.app_context():
        [pending] = db.session.scalars(select(ChargeAttempt)).all()
        assert pending.status == "pending" and charges.open_attempt_for(fresh(Invoice, b.id)).id == pending.id

    page = c.get(f"/portal/invoices/{b.id}/pay").get_data(True)
    assert "A payment for this invoice is being processed." in text_of(page)  # the page warns first
    r = c.post(f"/portal/invoices/{b.id}/pay", data={"csrf_token": csrf_token_from(page),
                                                      "token": hidden(page, "token"), "amount": "80.50",
                                                      "card_id": str(card.id)})
    assert r.status_code == 200 and "Confirm the payment with your bank" in text_of(r.get_data(True))
    pis = {p["id"]: p for p in sandbox_intents(stripe_sandbox)}
    assert pis.pop(pi["id"])["status"] == "canceled"  # the pay-all charge can no longer take the money
    assert [(p["amount"], p["status"]) for p in pis.values()] == [(8_050, "requires_action")]
    with app.app_context():
        assert fresh(ChargeAttempt, pending.id).status == "failed"
        assert count(Payment) == 0 and count(PaymentAllocation) == 0
        assert [fresh(Invoice, i.id).status for i in (a, b)] == ["open", "open"]


# --- 6. A refund staff mark "still owed" re-opens the invoices of a pay-all payment, latest allocation first ---

def test_a_partial_refund_of_a_pay_all_payment_reopens_the_latest_allocated_invoice_first(app, stripe_sandbox,
                                                                                          smtp):
    """R-7: only with "the customer still owes this" ticked; without it a refund reopens nothing (test_money_truth)."""
    customer, admin, (a, b), card = people(app)
    staff_send(app, admin, customer.id, [a.id, b.id])
    c = portal_client(app, customer)
    _, form = pay_all_form(c, f"/portal/invoices/pay-all?ids={a.id},{b.id}")
    r = c.post("/portal/invoices/pay-all", data={**form, "card_id": str(card.id)})
    assert r.status_code == 302
    with app.app_context():
        payment = db.session.scalars(select(Payment)).one()
        last = max(payment.allocations, key=lambda x: x.id)
        assert last.invoice_id == b.id  # allocated in invoice order: INV-711 last

    staff = app.test_client()
    log_in_staff(staff, admin)

    def refund(amount: str):
        page = staff.get(f"/admin/payments/{payment.id}").get_data(True)
        r = staff.post(f"/admin/payments/{payment.id}/refund", data={
            "csrf_token": csrf_token_from(page), "token": hidden(page, "token"), "amount": amount,
            "reason": "Goodwill", "still_owed": "y"})
        assert r.status_code == 302, text_of(r.get_data(True))[:500]
        return text_of(staff.get(r.headers["Location"]).get_data(True))

    assert "Refunded $50.00." in refund("50.00")
    with app.app_context():
        a_row, b_row = fresh(Invoice, a.id), fresh(Invoice, b.id)
        assert (a_row.status, a_row.balance_cents) == ("paid", 0)
        assert (b_row.status, b_row.balance_cents) == ("partially_paid", 5_000)
        assert fresh(Payment, payment.id).status == "partially_refunded"
    assert "$50.00" in text_of(c.get(f"/portal/invoices/{b.id}").get_data(True))

    refund("100.00")  # the rest of INV-711 (30.50) and then INV-710 (69.50)
    with app.app_context():
        a_row, b_row = fresh(Invoice, a.id), fresh(Invoice, b.id)
        assert (b_row.status, b_row.balance_cents) == ("open", 8_050)
        assert (a_row.status, a_row.balance_cents) == ("partially_paid", 6_950)
    refunds = [pi for pi in sandbox_intents(stripe_sandbox)]
    assert len(refunds) == 1  # refunds never create a charge
    r = requests.get(f"{stripe_sandbox['url']}/v1/refunds?limit=100",
                     headers={"Authorization": "Bearer sk_test_sandbox"}, timeout=10)
    assert sorted(x["amount"] for x in r.json()["data"]) == [5_000, 10_000]
    assert len([m for m in smtp.to("nina.park@example.com") if "Refund from Bright Air" in str(m["Subject"])]) == 2
