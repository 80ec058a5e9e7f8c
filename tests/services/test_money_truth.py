"""Issue 19: one answer to "what does this customer owe" (overview.owed), refunds that never reopen a debt (R-7),
credit on account applied oldest first, and a declined new card that does not stay on file.

Real parts: the Stripe sandbox for card charges and refunds, the SMTP capture server for reminders, the job runner
as `flask jobs run --as-of` runs it."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from portal import clock
from portal.extensions import db
from portal.models import (
    Adjustment,
    ChargeAttempt,
    Customer,
    Invoice,
    Job,
    Payment,
    PlanPayment,
    Refund,
    StaffUser,
)
from portal.services.billing import credit, invoices
from portal.services.overview import owed, portal_home
from portal.services.payments import charges, refunds
from portal.services.platform import settings
from tests.factories import (
    make_card,
    make_customer,
    make_invoice,
    make_job,
    make_paid_invoice,
    make_plan,
    make_staff,
)

LA = ZoneInfo("America/Los_Angeles")
TODAY = date(2026, 3, 20)


def _now():
    clock.set_now(datetime.combine(TODAY, time(10), LA))


def _staff() -> StaffUser:
    return db.session.get(StaffUser, make_staff("admin").id)


def _customer(tag: str) -> Customer:
    return db.session.get(Customer, make_customer("Olga", tag.title(), email=f"olga.{tag}@example.com").id)


def _paid(c, cents: int):
    invoice, card, ok = make_paid_invoice(c, cents, initiated_by="staff", actor=_staff())
    return db.session.get(Invoice, invoice.id), db.session.get(Payment, ok.payment.id)


def _refund(payment, cents, *, still_owed=False):
    return refunds.refund(db.session.get(Payment, payment.id), cents, "Goodwill", _staff(), charges.new_token(),
                          still_owed=still_owed)


# Each case builds one customer's money and says what the service must answer:
# (open invoice balances, plan payments owed, credit, to pay, invoice statuses shown).

def open_invoice(c):
    make_invoice(c, 10_000, due_date=TODAY - timedelta(days=3))


def partly_paid(c):
    inv = make_invoice(c, 10_000)
    charges.record_manual(c, method="cash", amount_cents=4_000, reference=None, actor=_staff(),
                          invoice=db.session.get(Invoice, inv.id))


def full_refund(c):
    _, payment = _paid(c, 10_000)
    _refund(payment, 10_000)


def partial_refund(c):
    _, payment = _paid(c, 10_000)
    _refund(payment, 3_000)


def partly_paid_then_refund(c):
    inv = make_invoice(c, 10_000)
    cash = charges.record_manual(c, method="cash", amount_cents=6_000, reference=None, actor=_staff(),
                                 invoice=db.session.get(Invoice, inv.id))
    _refund(cash, 2_000)  # the 4,000 still owed stays owed; the 2,000 given back is not owed again


def refund_still_owed(c):
    _, payment = _paid(c, 10_000)
    _refund(payment, 3_000, still_owed=True)


def failed_refund(c):
    _, payment = _paid(c, 10_000)
    row = _refund(payment, 3_000)
    refunds.fail(db.session.get(Refund, row.id), "closed card")
    db.session.commit()


def plan_failed(c):
    make_plan(c, price_cents=1_999, payments=[(TODAY - timedelta(days=5), "failed")])


def plan_overdue_and_paid(c):
    make_plan(c, price_cents=2_500, payments=[(TODAY - timedelta(days=40), "paid"),
                                              (TODAY - timedelta(days=10), "overdue"),
                                              (TODAY + timedelta(days=20), "scheduled")])


def plan_refunded(c):
    make_plan(c, price_cents=2_500, payments=[(TODAY - timedelta(days=10), "refunded"),
                                              (TODAY - timedelta(days=40), "partially_refunded"),
                                              (TODAY - timedelta(days=70), "marked_paid")])


def credit_and_invoice(c):
    charges.record_manual(c, method="cash", amount_cents=3_000, reference="on account", actor=_staff())
    make_invoice(c, 10_000)


def autopay_invoice(c):
    settings.ensure().autopay_enabled = True
    c.autopay_enabled = True
    db.session.commit()
    make_card(c.id)
    make_invoice(c, 7_500, due_date=TODAY + timedelta(days=2))


def everything(c):
    open_invoice(c)
    plan_failed(c)
    full_refund(c)


CASES = [
    # name, build, invoices owed, plans owed, credit, to pay, statuses shown
    ("open invoice", open_invoice, 10_000, 0, 0, 10_000, ["open"]),
    ("partly paid", partly_paid, 6_000, 0, 0, 6_000, ["partially_paid"]),
    ("paid then refunded in full", full_refund, 0, 0, 0, 0, ["refunded"]),
    ("paid then partly refunded", partial_refund, 0, 0, 0, 0, ["partially_refunded"]),
    ("partly paid then refunded", partly_paid_then_refund, 4_000, 0, 0, 4_000, ["partially_paid"]),
    ("refund staff say is still owed", refund_still_owed, 3_000, 0, 0, 3_000, ["partially_paid"]),
    ("refund that failed (R-4)", failed_refund, 0, 0, 0, 0, ["paid"]),
    ("failed plan payment", plan_failed, 0, 1_999, 0, 1_999, []),
    ("overdue plan payment beside paid and scheduled", plan_overdue_and_paid, 0, 2_500, 0, 2_500, []),
    ("refunded and marked-paid plan payments", plan_refunded, 0, 0, 0, 0, []),
    ("credit on account and an open invoice", credit_and_invoice, 10_000, 0, 3_000, 7_000, ["open"]),
    ("AutoPay customer", autopay_invoice, 7_500, 0, 0, 7_500, ["open"]),
    ("invoice, failed plan payment and a refunded invoice", everything, 10_000, 1_999, 0, 11_999,
     ["open", "refunded"]),
]


@pytest.mark.parametrize("name,build,invoices_cents,plans_cents,credit_cents,to_pay,shown", CASES,
                         ids=[c[0] for c in CASES])
def test_what_you_owe(app, ctx, stripe_sandbox, name, build, invoices_cents, plans_cents, credit_cents, to_pay,
                      shown):
    _now()
    c = _customer(name.split()[0])
    build(c)
    db.session.expire_all()
    answer = owed.for_customer(c)
    assert (answer.invoices_cents, answer.plans_cents, answer.credit_cents, answer.to_pay_cents) == (
        invoices_cents, plans_cents, credit_cents, to_pay)
    rows = db.session.scalars(select(Invoice).where(Invoice.customer_id == c.id).order_by(Invoice.id)).all()
    assert sorted(str(i.shown_status) for i in rows) == sorted(shown)
    # every screen reads the same answer: the portal home's balance, the staff dashboard's total
    home = portal_home.summary(c)
    assert home.balance_cents == to_pay and (home.owed.nothing_owed == (invoices_cents + plans_cents == 0))
    business = owed.business_totals()
    assert (business.invoices_cents, business.plans_cents) == (invoices_cents, plans_cents)


def test_credit_goes_to_the_oldest_invoice_first_and_each_step_is_on_the_feed(app, ctx, stripe_sandbox):
    _now()
    c = _customer("credit")
    newer = make_invoice(c, 4_000, due_date=TODAY + timedelta(days=10), number="INV-NEW")
    older = make_invoice(c, 5_000, due_date=TODAY - timedelta(days=10), number="INV-OLD")
    charges.record_manual(c, method="check", amount_cents=7_000, reference="1001", actor=_staff())
    assert credit.available_cents(c.id) == 7_000

    assert credit.run() == {"customers": 1, "applied_cents": 7_000}  # the `credit` rule of `flask jobs run`
    db.session.expire_all()
    assert (db.session.get(Invoice, older.id).status, db.session.get(Invoice, older.id).balance_cents) == ("paid", 0)
    assert db.session.get(Invoice, newer.id).balance_cents == 2_000
    assert credit.available_cents(c.id) == 0 and owed.for_customer(c).to_pay_cents == 2_000
    from portal.models import ActivityEvent
    feed = [e.summary for e in db.session.scalars(select(ActivityEvent).where(ActivityEvent.customer_id == c.id)
                                                  .order_by(ActivityEvent.id))]
    assert any("applied to invoice INV-OLD; balance $0.00" in s for s in feed), feed
    assert any("applied to invoice INV-NEW; balance $20.00" in s for s in feed), feed
    assert credit.run() == {"customers": 0, "applied_cents": 0}  # nothing twice


def test_an_invoice_sent_takes_the_credit_on_account(app, ctx, stripe_sandbox):
    _now()
    c = _customer("sent")
    charges.record_manual(c, method="cash", amount_cents=2_500, reference=None, actor=_staff())
    draft = make_invoice(c, 10_000, status="draft")
    invoices.send(db.session.get(Invoice, draft.id), None)
    db.session.commit()
    row = db.session.get(Invoice, draft.id)
    assert (row.status, row.balance_cents) == ("partially_paid", 7_500)


# --- a refund never brings back reminders, AutoPay or "past due" ------------------------------------------

def _at(day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime.combine(TODAY + timedelta(days=day), time(hour, minute), LA)


def test_a_refunded_invoice_is_never_reminded_autocharged_or_past_due(app, runner, stripe_sandbox, smtp):
    """Paid by AutoPay-enrolled customers' cards, refunded (in full / in part, one marked "still owed"), then
    `flask jobs run --as-of` on the reminder days and AutoPay nights after the due date."""
    with app.app_context():
        clock.set_now(_at(-20, 10))
        settings.ensure().autopay_enabled = True
        db.session.commit()
        made = {}
        for tag, cents, still_owed in (("full", 10_000, False), ("part", 4_000, False), ("owed", 2_500, True)):
            c = _customer(tag)
            c.autopay_enabled = True
            job = make_job(c, status="finished", visit_in_days=-1)
            invoice = db.session.get(Invoice, make_invoice(c, 10_000, status="draft", due_date=TODAY,
                                                           number=f"INV-R{tag.upper()}").id)
            invoice.jobs = [db.session.get(Job, job.id)]
            invoices.send(invoice, None)
            db.session.commit()
            card = make_card(c.id)
            ok = charges.charge_card(c, db.session.get(type(card), card.id), 10_000, token=charges.new_token(),
                                     invoice=invoice, off_session=True, initiated_by="system")
            assert ok.attempt.status == "succeeded"
            _refund(ok.payment, cents, still_owed=still_owed)
            made[tag] = SimpleNamespace(customer_id=c.id, invoice_id=invoice.id, email=c.primary_email)
        attempts_before = db.session.query(ChargeAttempt).count()
        db.session.remove()

    for day, hour in ((0, 0), (1, 0), (1, 9), (7, 9), (14, 9), (31, 0), (31, 9)):
        result = runner.invoke(args=["jobs", "run", "--as-of", _at(day, hour, 30).strftime("%Y-%m-%dT%H:%M")])
        assert result.exit_code == 0, result.output

    with app.app_context():
        for tag in ("full", "part"):
            who = made[tag]
            invoice = db.session.get(Invoice, who.invoice_id)
            assert invoice.balance_cents == 0 and invoice.shown_status in ("refunded", "partially_refunded")
            assert not [m for m in smtp.to(who.email) if "Reminder" in str(m["Subject"])]
            c = db.session.get(Customer, who.customer_id)
            assert owed.for_customer(c).nothing_owed and owed.for_customer(c).past_due == []
        # "still owed" is owed again: AutoPay charges it on its night and nothing else changes
        owed_again = db.session.get(Invoice, made["owed"].invoice_id)
        charged = db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.invoice_id == owed_again.id,
                                                                 ChargeAttempt.purpose == "autopay")).all()
        assert [(a.amount_cents, a.status) for a in charged] == [(2_500, "succeeded")]
        assert owed_again.balance_cents == 0
        assert db.session.query(ChargeAttempt).count() == attempts_before + 1
        assert db.session.scalars(select(Adjustment)).all() == []


def test_a_plan_payment_refunded_is_not_owed_and_cannot_be_marked_still_owed(app, ctx, stripe_sandbox):
    _now()
    c = _customer("planref")
    plan = make_plan(c, price_cents=2_500, payments=[(TODAY - timedelta(days=2), "failed")])
    card = make_card(c.id)
    row = db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan.id)).one()
    outcome = charges.charge_card(c, db.session.get(type(card), card.id), 2_500, token=charges.new_token(),
                                  purpose="plan_payments", off_session=True, initiated_by="staff", plan_id=plan.id,
                                  plan_payment_ids=[row.id], actor=_staff())
    assert outcome.attempt.status == "succeeded"
    with pytest.raises(refunds.ValidationError):
        _refund(outcome.payment, 1_000, still_owed=True)
    db.session.rollback()
    _refund(outcome.payment, 1_000)
    db.session.expire_all()
    assert db.session.get(PlanPayment, row.id).status == "partially_refunded"
    assert owed.for_customer(c).nothing_owed


def test_staff_see_credit_on_the_client_card_and_the_report_and_apply_it(app, client, login_staff, stripe_sandbox):
    import re

    from tests.helpers import csrf_token_from

    with app.app_context():
        _now()
        staff = make_staff("admin")
        c = make_customer("Cora", "Credit", email="cora.credit@example.com")
        charges.record_manual(db.session.get(Customer, c.id), method="cash", amount_cents=3_000, reference="over",
                              actor=db.session.get(StaffUser, staff.id))
        invoice = make_invoice(c, 10_000, number="INV-CREDIT-1")
    login_staff(staff)
    report = client.get("/admin/reports/transactions").get_data(True)
    assert re.search(r'data-total="credit">\$30\.00', report), report
    card = client.get(f"/admin/customers/{c.id}").get_data(True)
    assert re.search(r"data-credit>\$30\.00", card) and "Apply to open invoices" in card
    r = client.post(f"/admin/customers/{c.id}/apply-credit", data={"csrf_token": csrf_token_from(card)})
    assert r.status_code == 302
    card = client.get(r.headers["Location"]).get_data(True)
    assert "Credit of $30.00 applied to the open invoices." in card and re.search(r"data-credit>\$0\.00", card)
    with app.app_context():
        assert db.session.get(Invoice, invoice.id).balance_cents == 7_000


def test_a_plan_without_a_card_offers_the_wallet_card_in_one_tap(app, client, login_customer, stripe_sandbox):
    from portal.models import CustomerPlan
    from tests.helpers import csrf_token_from

    with app.app_context():
        _now()
        c = make_customer("Pia", "Plancard", email="pia.plancard@example.com")
        card = make_card(c.id)
        plan = make_plan(c, price_cents=2_500, next_billing_date=TODAY + timedelta(days=10))
    login_customer(c)
    home = client.get("/portal/").get_data(True)
    assert "Use Visa •••• 4242 for this plan" in home and "No card on file" not in home
    page = client.get(f"/portal/plans/{plan.id}").get_data(True)
    assert "Use Visa •••• 4242 for this plan" in page
    r = client.post(f"/portal/plans/{plan.id}/use-card", data={"csrf_token": csrf_token_from(page),
                                                               "card_id": str(card.id)})
    assert r.status_code == 302
    assert "Visa •••• 4242 now pays for Comfort Club." in client.get(r.headers["Location"]).get_data(True)
    with app.app_context():
        assert db.session.get(CustomerPlan, plan.id).card_id == card.id
    other = client.post(f"/portal/plans/{plan.id}/use-card", data={"csrf_token": csrf_token_from(page),
                                                                   "card_id": "999999"})
    assert other.status_code == 302  # another customer's or no card: refused with a message, nothing changes


def test_amount_errors_use_the_page_language(app, client, login_customer, stripe_sandbox):
    from tests.helpers import csrf_token_from

    with app.app_context():
        _now()
        c = make_customer("Elena", "Importe", email="elena.importe@example.com", language="es")
        card = make_card(c.id)
        invoice = make_invoice(c, 10_000)
    login_customer(c)
    page = client.get(f"/portal/invoices/{invoice.id}/pay?lang=es").get_data(True)
    assert "Pagar 100,00" in page  # the button names the amount
    r = client.post(f"/portal/invoices/{invoice.id}/pay", data={
        "csrf_token": csrf_token_from(page), "amount": "0,10", "card_id": str(card.id),
        "token": charges.new_token()})
    assert r.status_code == 400
    assert "0,50\xa0US$" in r.get_data(True) and "$0.50" not in r.get_data(True)


def test_pay_all_never_shows_or_pays_another_customers_plan_payment(app, client, login_customer, stripe_sandbox):
    with app.app_context():
        _now()
        mine = make_customer("Mia", "Mine", email="mia.mine@example.com")
        theirs = make_customer("Tom", "Theirs", email="tom.theirs@example.com")
        plan = make_plan(theirs, price_cents=1_999, payments=[(TODAY - timedelta(days=2), "failed")])
        row = db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan.id)).one()
    login_customer(mine)
    assert client.get(f"/portal/invoices/pay-all?plans={row.id}").status_code == 404
    assert client.get("/portal/invoices/pay-all?plans=1,x").status_code == 404
    page = client.get("/portal/invoices/pay-all").get_data(True)
    assert "Comfort Club" not in page and "There is nothing left to pay" in page
