"""INV-6 AutoPay (and D-8 for AutoPay cards), as staff and customers meet it: enrolment on the client card, the
Settings › Automations switch, the nightly window run by `scheduler.run_due` (what `flask jobs run` runs) with the moved
clock and a server whose own time zone is not the business's, the PaymentIntents that reached the localstripe
sandbox, the emails the SMTP server received, the AutoPay page and the portal wallet.
"""
from __future__ import annotations

import html as htmllib
import os
import re
import time
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Card, ChargeAttempt, Customer, Invoice, InvoiceReminder, StaffUser
from portal.services.billing import invoices
from portal.services.payments import charges
from portal.services.platform import mailer, scheduler
from tests.factories import make_card, make_customer, make_invoice, make_staff
from tests.helpers import csrf_token_from, sandbox_intents, set_clock, staff_client

LA = ZoneInfo("America/Los_Angeles")  # the business time zone (config default)
GOOD, DECLINED = "4242424242424242", "4000000000000341"
DUE = date(2026, 3, 17)  # after the US switch to daylight time: Los Angeles is UTC-7, Tokyo UTC+9 (LA + 16 h)


# --- helpers -----------------------------------------------------------------------------------------------

@pytest.fixture
def tokyo_server():
    """The server's own time zone is Asia/Tokyo; the business's stays America/Los_Angeles."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    assert datetime.now().astimezone().utcoffset() == timedelta(hours=9)
    yield
    if previous is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = previous
    time.tzset()


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LA)


def run_at(app, day: date, hour: int, minute: int = 0) -> dict:
    with app.app_context():
        return scheduler.run_due(local(day, hour, minute))


def subjects(smtp, address: str) -> list[str]:
    return [str(m["Subject"]) for m in smtp.to(address)]


def flashes(html: str) -> list[tuple[str, str]]:
    return [(cat, htmllib.unescape(msg).strip())
            for cat, msg in re.findall(r'<div class="flash (\w+)" role="\w+">(.*?)</div>', html, re.S)]


def enrol(c, customer_id: int, enabled: str = "1"):
    """Staff press "Turn AutoPay on/off" on the client card; returns the client card they land on."""
    r = c.post(f"/admin/customers/{customer_id}/autopay", data={"csrf_token": c.csrf, "enabled": enabled},
               follow_redirects=True)
    assert r.status_code == 200, r.status_code
    return r.get_data(True)


def autopay_shown(html: str) -> str:
    m = re.search(r"<dd data-autopay>(\w+)", html)
    assert m, "no AutoPay line on the client card"
    return m.group(1)


def switch_global(app, login_staff, admin, on: bool) -> None:
    """An admin saves Settings › Automations."""
    c = staff_client(app, login_staff, admin)
    data = {"csrf_token": c.csrf, "reminders_enabled": "y", "reminder_days": "1, 7, 14, 30"}
    if on:
        data["autopay_enabled"] = "y"
    r = c.post("/admin/settings/automations", data=data, follow_redirects=True)
    assert ("success", "Automation settings saved.") in flashes(r.get_data(True))


def sent_invoice(app, customer, staff, *, total: int, due: date, paid: int = 0) -> Invoice:
    """An invoice staff sent by hand (so it is open and reminders may apply), `paid` of it paid in cash."""
    with app.app_context():
        invoice = make_invoice(customer, total_cents=total, status="draft", due_date=due)
        invoices.send(db.session.get(Invoice, invoice.id), db.session.get(StaffUser, staff.id))
        db.session.commit()
        if paid:
            charges.record_manual(db.session.get(Customer, customer.id), method="cash", amount_cents=paid,
                                  reference=None, actor=db.session.get(StaffUser, staff.id),
                                  invoice=db.session.get(Invoice, invoice.id))
        mailer.deliver_pending()  # what the request would have delivered after it committed
        return invoice


def fresh_invoice(app, invoice_id: int) -> Invoice:
    with app.app_context():
        invoice = db.session.get(Invoice, invoice_id)
        db.session.expunge(invoice)
        return invoice


@pytest.fixture
def people(app):
    with app.app_context():
        return {"admin": make_staff("admin", email="owner@brightair.test"), "office": make_staff("office"),
                "tech": make_staff("technician")}


def enrolled_customer(app, login_staff, office, first: str, last: str, number: str = GOOD):
    """A customer with a card on file whom staff enrolled in AutoPay on the client card."""
    with app.app_context():
        customer = make_customer(first, last)
        card = make_card(customer.id, number)
    html = enrol(staff_client(app, login_staff, office), customer.id)
    assert autopay_shown(html) == "on"
    return customer, card


# --- 1. Enrolment ------------------------------------------------------------------------------------------

def test_enrolment_needs_a_card_on_file(app, login_staff, stripe_sandbox, smtp, people, frozen_clock):
    with app.app_context():
        without = make_customer("Cora", "Nocard")
        with_card = make_customer("Carl", "Hascard")
        make_card(with_card.id, GOOD)
    c = staff_client(app, login_staff, people["office"])

    html = enrol(c, without.id)
    assert ("error", "AutoPay needs a card on file. Add a card or send a card request first.") in flashes(html)
    assert autopay_shown(html) == "off"
    with app.app_context():
        assert db.session.get(Customer, without.id).autopay_enabled is False

    html = enrol(c, with_card.id)
    [(kind, message)] = flashes(html)
    assert kind == "success" and message.startswith("AutoPay turned on.")
    assert "switched off for the business" in message  # the global switch is off by default: staff are told
    assert autopay_shown(html) == "on"
    with app.app_context():
        assert db.session.get(Customer, with_card.id).autopay_enabled is True

    html = enrol(c, with_card.id, "0")
    assert ("success", "AutoPay turned off.") in flashes(html) and autopay_shown(html) == "off"


# --- 2. The nightly window, business time zone ≠ server time zone -------------------------------------------

def test_due_invoice_charged_once_in_the_business_night_window(app, login_staff, stripe_sandbox, smtp, people,
                                                                tokyo_server):
    set_clock(DUE - timedelta(days=14), 10)
    switch_global(app, login_staff, people["admin"], True)
    customer, card = enrolled_customer(app, login_staff, people["office"], "Ines", "Nightly")
    invoice = sent_invoice(app, customer, people["office"], total=18_750, due=DUE, paid=5_000)
    later = sent_invoice(app, customer, people["office"], total=9_900, due=DUE + timedelta(days=2))
    smtp.clear()

    # the day before: 08:30 in LA is already 00:30 of the due date in Tokyo, 17:30 is 00:30 of it in UTC,
    # 23:30 is the last half hour of the day before. None of them is AutoPay's hour.
    for hour, minute in ((8, 30), (17, 30), (23, 30)):
        result = run_at(app, DUE - timedelta(days=1), hour, minute)
        assert result["autopay"] == {"charged": 0, "failed": 0}, (hour, result)
    assert sandbox_intents(stripe_sandbox) == []

    # 00:30 on the due date, business time: the balance is charged to the default card, once
    assert run_at(app, DUE, 0, 30)["autopay"] == {"charged": 1, "failed": 0}
    [pi] = sandbox_intents(stripe_sandbox)
    assert pi["amount"] == 13_750 and pi["status"] == "succeeded"
    with app.app_context():
        assert pi["payment_method"] == db.session.get(Card, card.id).stripe_payment_method_id
    paid = fresh_invoice(app, invoice.id)
    assert paid.status == "paid" and paid.paid_cents == 18_750
    assert subjects(smtp, customer.primary_email) == ["Payment receipt from Bright Air"]
    assert "$137.50" in smtp.text(smtp.to(customer.primary_email)[0])

    # still inside the window, and again the next night: nothing is charged twice
    run_at(app, DUE, 1, 30)
    run_at(app, DUE, 1, 59)
    assert len(sandbox_intents(stripe_sandbox)) == 1
    assert fresh_invoice(app, later.id).status == "open"  # due in two days: not tonight

    # the later invoice's due date: a run at 03:00 (and at 02:00 sharp) is outside the window
    for hour in (3, 2, 12):
        assert run_at(app, DUE + timedelta(days=2), hour)["autopay"] == {"charged": 0, "failed": 0}
    assert len(sandbox_intents(stripe_sandbox)) == 1 and fresh_invoice(app, later.id).status == "open"
    # … and the next night's window catches it (it is still due)
    assert run_at(app, DUE + timedelta(days=3), 0, 5)["autopay"] == {"charged": 1, "failed": 0}
    pis = sandbox_intents(stripe_sandbox)
    assert sorted(p["amount"] for p in pis) == [9_900, 13_750]
    assert fresh_invoice(app, later.id).status == "paid"
    assert subjects(smtp, customer.primary_email).count("Payment receipt from Bright Air") == 2
    with app.app_context():
        assert len(db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.purpose == "autopay")).all()) == 2


def test_global_switch_off_charges_nothing(app, login_staff, stripe_sandbox, smtp, people, tokyo_server):
    set_clock(DUE - timedelta(days=14), 10)
    customer, _ = enrolled_customer(app, login_staff, people["office"], "Olga", "Switchoff")
    invoice = sent_invoice(app, customer, people["office"], total=12_000, due=DUE)
    for hour, minute in ((0, 10), (0, 45), (1, 30)):
        assert run_at(app, DUE, hour, minute)["autopay"] == {"charged": 0, "failed": 0}
    assert sandbox_intents(stripe_sandbox) == []
    assert fresh_invoice(app, invoice.id).status == "open"
    # the admin turns the switch on: the next night charges it
    set_clock(DUE, 10)
    switch_global(app, login_staff, people["admin"], True)
    assert run_at(app, DUE + timedelta(days=1), 0, 30)["autopay"] == {"charged": 1, "failed": 0}
    assert [p["amount"] for p in sandbox_intents(stripe_sandbox)] == [12_000]


def test_invoice_due_tomorrow_is_not_charged_tonight(app, login_staff, stripe_sandbox, smtp, people, tokyo_server):
    set_clock(DUE - timedelta(days=14), 10)
    switch_global(app, login_staff, people["admin"], True)
    customer, _ = enrolled_customer(app, login_staff, people["office"], "Tom", "Tomorrow")
    invoice = sent_invoice(app, customer, people["office"], total=12_000, due=DUE + timedelta(days=1))
    with app.app_context():  # a customer with a card but not enrolled: never charged
        not_enrolled = make_customer("Nia", "Notenrolled")
        make_card(not_enrolled.id, GOOD)
    theirs = sent_invoice(app, not_enrolled, people["office"], total=4_000, due=DUE)
    run_at(app, DUE, 0, 30)
    run_at(app, DUE, 1, 30)
    assert sandbox_intents(stripe_sandbox) == []
    assert fresh_invoice(app, invoice.id).status == "open" and fresh_invoice(app, theirs.id).status == "open"


# --- 3. A declined AutoPay charge ------------------------------------------------------------------------------

def test_declined_autopay_emails_both_sides_and_turns_reminders_back_on(app, login_staff, stripe_sandbox, smtp,
                                                                        people, tokyo_server):
    set_clock(DUE - timedelta(days=14), 10)
    switch_global(app, login_staff, people["admin"], True)  # reminders on too (1, 7, 14, 30 days)
    customer, card = enrolled_customer(app, login_staff, people["office"], "Dana", "Declined", DECLINED)
    invoice = sent_invoice(app, customer, people["office"], total=20_000, due=DUE)
    smtp.clear()

    assert run_at(app, DUE, 0, 30)["autopay"] == {"charged": 0, "failed": 1}
    [pi] = sandbox_intents(stripe_sandbox)
    assert pi["amount"] == 20_000 and pi["status"] != "succeeded"

    [failed] = smtp.to(customer.primary_email)
    assert str(failed["Subject"]) == "Your payment to Bright Air did not go through"
    body = smtp.text(failed)
    assert "$200.00" in body and invoice.number in body
    [link] = re.findall(r"http://portal\.test/portal/magic/\S+", body)
    set_clock(DUE, 7)  # the customer opens it in the morning
    r = app.test_client().get(link.replace("http://portal.test", ""))
    assert r.status_code == 302 and r.headers["Location"] == f"/portal/invoices/{invoice.id}/pay"

    [staff_email] = smtp.to("owner@brightair.test")
    assert str(staff_email["Subject"]) == f"AutoPay payment failed: Dana Declined, invoice {invoice.number}"
    assert smtp.text(staff_email).strip() and smtp.html(staff_email).strip()
    assert f"/admin/invoices/{invoice.id}" in smtp.text(staff_email)

    after = fresh_invoice(app, invoice.id)
    assert after.status == "open" and after.paid_cents == 0
    assert after.autopay_failed_at == local(DUE, 0, 30)

    # the next night: no second charge, and the reminder (due + 1) goes out in the same run
    smtp.clear()
    result = run_at(app, DUE + timedelta(days=1), 0, 30)
    assert result["autopay"] == {"charged": 0, "failed": 0}
    assert len(sandbox_intents(stripe_sandbox)) == 1
    assert subjects(smtp, customer.primary_email) == \
        [f"Reminder: invoice {invoice.number} from Bright Air is past due"]
    with app.app_context():
        assert len(db.session.scalars(select(InvoiceReminder).where(InvoiceReminder.invoice_id == invoice.id))
                   .all()) == 1
    run_at(app, DUE + timedelta(days=2), 0, 30)
    assert len(sandbox_intents(stripe_sandbox)) == 1 and len(smtp.to(customer.primary_email)) == 1


def test_no_reminder_for_an_autopay_invoice_whose_charge_has_not_failed(app, login_staff, stripe_sandbox, smtp,
                                                                        people, tokyo_server):
    """The other side of the decline test: enrolled after the window, its past-due invoice gets no reminder
    before AutoPay has tried it (reminders are on); it is charged the next night instead."""
    set_clock(DUE - timedelta(days=14), 10)
    switch_global(app, login_staff, people["admin"], True)
    with app.app_context():
        customer = make_customer("Rosa", "Latecomer")
        make_card(customer.id, GOOD)
    invoice = sent_invoice(app, customer, people["office"], total=8_000, due=DUE)
    set_clock(DUE, 9)
    assert autopay_shown(enrol(staff_client(app, login_staff, people["office"]), customer.id)) == "on"
    smtp.clear()
    run_at(app, DUE + timedelta(days=1), 0, 30)
    assert subjects(smtp, customer.primary_email) == ["Payment receipt from Bright Air"]
    assert fresh_invoice(app, invoice.id).status == "paid"


# --- 4. The AutoPay page ---------------------------------------------------------------------------------------

def test_autopay_page_lists_customers_without_a_card_and_requests_one(app, login_staff, stripe_sandbox, smtp,
                                                                     people, frozen_clock):
    with app.app_context():
        nocard = make_customer("Wanda", "Withoutcard")
        noemail = make_customer("Earl", "Noemail", email=None)
        carded = make_customer("Kurt", "Carded")
        make_card(carded.id, GOOD)
        archived = make_customer("Arch", "Ived", status="archived")
    c = staff_client(app, login_staff, people["office"])
    r = c.get("/admin/autopay")
    assert r.status_code == 200
    html = r.get_data(True)
    assert f'href="/admin/customers/{nocard.id}#cards"' in html
    assert f'href="/admin/customers/{noemail.id}#cards"' in html
    assert f"/admin/customers/{carded.id}" not in html and f"/admin/customers/{archived.id}" not in html
    assert "Customers without a card on file (2)" in html
    assert len(re.findall(r"Request card on file</button>", html)) == 1  # the one without email has no button
    assert f'action="/admin/customers/{nocard.id}/card-request"' in html

    r = c.post(f"/admin/customers/{nocard.id}/card-request", data={"csrf_token": c.csrf, "back": "autopay"})
    assert r.status_code == 302 and r.headers["Location"] == "/admin/autopay"
    page = c.get("/admin/autopay").get_data(True)
    assert ("success", f"Card request emailed to {nocard.primary_email}.") in flashes(page)
    [email] = smtp.to(nocard.primary_email)
    assert str(email["Subject"]) == "Please add a card on file with Bright Air"
    assert re.search(r"http://portal\.test/portal/magic/\S+", smtp.text(email))

    tech = staff_client(app, login_staff, people["tech"])
    assert tech.get("/admin/autopay").status_code == 403
    r = tech.post(f"/admin/customers/{nocard.id}/card-request", data={"csrf_token": tech.csrf, "back": "autopay"})
    assert r.status_code == 403
    r = tech.post(f"/admin/customers/{carded.id}/autopay", data={"csrf_token": tech.csrf, "enabled": "1"})
    assert r.status_code == 403
    assert len(smtp.to(nocard.primary_email)) == 1
    with app.app_context():
        assert db.session.get(Customer, carded.id).autopay_enabled is False


# --- 5. D-8: the customer replaces the card AutoPay charges ----------------------------------------------------

def _make_default_in_portal(app, login_customer, customer_id: int, card_id: int) -> str:
    c = app.test_client()
    login_customer(SimpleNamespace(id=customer_id), c=c)
    wallet = c.get("/portal/wallet").get_data(True)
    assert f"/portal/wallet/cards/{card_id}/default" in wallet
    r = c.post(f"/portal/wallet/cards/{card_id}/default", data={"csrf_token": csrf_token_from(wallet)},
               follow_redirects=True)
    assert r.status_code == 200
    with app.app_context():
        assert db.session.get(Card, card_id).is_default
    return r.get_data(True)


def test_replacing_the_autopay_card_in_the_portal_tells_staff(app, login_staff, login_customer, stripe_sandbox,
                                                              smtp, people, frozen_clock):
    customer, first = enrolled_customer(app, login_staff, people["office"], "Pia", "Portalcard")
    with app.app_context():
        second = make_card(customer.id, "5555555555554444")
        plain = make_customer("Lou", "Nolautopay")
        make_card(plain.id, GOOD)
        plain_second = make_card(plain.id, "5555555555554444")
    smtp.clear()

    _make_default_in_portal(app, login_customer, customer.id, second.id)
    [email] = smtp.to("owner@brightair.test")
    assert str(email["Subject"]) == "Pia Portalcard changed a card that backs a plan or AutoPay"
    assert f"/admin/customers/{customer.id}" in smtp.text(email)
    assert smtp.html(email).strip()

    # a customer not on AutoPay (and with no plan) changes their default card: staff are not bothered
    _make_default_in_portal(app, login_customer, plain.id, plain_second.id)
    assert len(smtp.to("owner@brightair.test")) == 1
