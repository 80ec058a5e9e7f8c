"""Service plans through the pages (Flask test client, SQLite, the localstripe sandbox, a real SMTP server).

SP-1 … SP-13, D-8, REP-2, REP-3 and the issue's bad-input list, as staff and customers meet them: the forms they
post (with CSRF tokens), the pages and messages they get back, the emails they receive, and what reached the sandbox.
The browser's Stripe.js step (confirming a SetupIntent with card details) is `tests.factories.sandbox_card`.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from portal import clock
from portal.extensions import db
from portal.models import Card, ChargeAttempt, CustomerPlan, Payment, PlanPayment, PlanTemplate, Refund
from portal.services.platform import scheduler
from tests.factories import make_card, make_customer, make_invoice, make_job, make_staff, sandbox_card
from tests.helpers import csrf_token_from, sandbox_intents, set_clock, wait_for_email

LA = ZoneInfo("America/Los_Angeles")  # the business time zone (config default)
GOOD, DECLINED = "4242424242424242", "4000000000000341"
TODAY = date(2026, 3, 2)  # frozen_clock: 2026-03-02 17:00 UTC = 09:00 in Los Angeles


# --- helpers -------------------------------------------------------------------------------------------------

def succeeded(pis: list[dict]) -> list[int]:
    return [pi["amount"] for pi in pis if pi["status"] == "succeeded"]


def hidden(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', html)
    assert m, f"no hidden {name} on the page"
    return m.group(1)


def get_form(client, url: str) -> tuple[str, str]:
    r = client.get(url)
    assert r.status_code == 200, (url, r.status_code, r.get_data(True)[:400])
    html = r.get_data(True)
    return html, csrf_token_from(html)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def fresh(model, id_):
    return db.session.scalars(select(model).where(model.id == id_).execution_options(populate_existing=True)).one()


def plan_rows(plan_id: int) -> list[PlanPayment]:
    return list(db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan_id)
                                   .order_by(PlanPayment.due_date).execution_options(populate_existing=True)))


def add_plan(customer, *, status: str = "active", method: str = "card", card=None, frequency: str | None = "monthly",
             prices: dict | None = None, next_billing: date | None = None, name: str = "Comfort Club") -> CustomerPlan:
    """A customer plan as the pages leave it (prices per offered frequency, the chosen one if accepted)."""
    prices = prices or {"monthly": 3_000}
    plan = CustomerPlan(customer_id=customer.id, name=name, status=status, currency="USD",
                        offered_frequencies=",".join(prices), payment_method=method,
                        card_id=card.id if card else None, visits_per_year=2,
                        **{f"price_{f}_cents": cents for f, cents in prices.items()})
    if status in ("active", "cancelled"):
        plan.frequency = frequency
        plan.price_cents = prices[frequency]
        plan.billing_anchor_day = (next_billing or clock.today()).day
        plan.start_date = clock.today()
        plan.next_billing_date = next_billing if status == "active" else None
        plan.accepted_at = clock.now()
    db.session.add(plan)
    db.session.commit()
    db.session.refresh(plan)
    db.session.expunge(plan)
    return plan


def add_payment(plan, due: date, status: str, *, amount: int | None = None, method: str | None = None,
                code: str | None = "card_declined") -> PlanPayment:
    """A bill in the state the job runner leaves it (failed with Stripe's code, or overdue cash)."""
    method = method or plan.payment_method
    row = PlanPayment(plan_id=plan.id, due_date=due, amount_cents=amount or plan.price_cents, status=status,
                      method=method, card_id=plan.card_id if method == "card" else None, attempt_count=0)
    if status == "failed":
        row.failure_code = code
        row.failure_message = "The bank declined the card."
        row.first_failed_at = datetime(due.year, due.month, due.day, 18, tzinfo=LA)
        row.attempt_count = 1
        row.retries_exhausted = True
    elif status == "overdue":
        row.failure_message = "Not collected by the end of the due day"
    db.session.add(row)
    db.session.commit()
    db.session.refresh(row)
    db.session.expunge(row)
    return row


# --- SP-1 → SP-3: template, customer plan, sent, paid and accepted in the portal ------------------------------

def test_template_to_plan_sent_and_accepted_in_the_portal(app, client, login_staff, stripe_sandbox, smtp,
                                                          frozen_clock):
    with app.app_context():
        admin, office = make_staff("admin"), make_staff("office")
        customer = make_customer("Ana", "Diaz", email="ana.plans@example.com")

    # SP-1: templates live under the admin-only settings
    office_client = app.test_client()
    login_staff(office, c=office_client)
    assert office_client.get("/admin/settings/plans").status_code == 403
    office_csrf = csrf_token_from(office_client.get("/admin/customers").get_data(True))
    assert office_client.post("/admin/settings/plans", data={"csrf_token": office_csrf, "name": "Sneaky",
                                                             "price_monthly": "10.00"}).status_code == 403

    login_staff(admin)
    html, csrf = get_form(client, "/admin/settings/plans")
    assert "No templates yet" in html
    r = client.post("/admin/settings/plans", data={"csrf_token": csrf, "name": "Comfort Club", "visits_per_year": "2",
                                                   "description": "Two tune-ups a year.", "price_monthly": "",
                                                   "price_quarterly": "", "price_yearly": "", "is_active": "y"})
    assert r.status_code == 400 and "Offer at least one billing frequency" in r.get_data(True)
    r = client.post("/admin/settings/plans", data={"csrf_token": csrf, "name": "Comfort Club", "visits_per_year": "2",
                                                   "description": "Two tune-ups a year.", "price_monthly": "29.00",
                                                   "price_quarterly": "79.00", "price_yearly": "", "is_active": "y"})
    assert r.status_code == 302, r.get_data(True)[:500]
    with app.app_context():
        template = db.session.scalars(select(PlanTemplate)).one()
        assert (template.price_monthly_cents, template.price_quarterly_cents, template.price_yearly_cents) == (
            2_900, 7_900, None)
    assert r.headers["Location"].endswith(f"/admin/settings/plans/{template.id}")
    assert "Comfort Club" in client.get("/admin/settings/plans").get_data(True)

    # a customer plan from the template (prefilled), created as a draft
    html, csrf = get_form(client, f"/admin/customers/{customer.id}/plans/new?template={template.id}")
    assert 'value="29.00"' in html and 'value="79.00"' in html
    form = {"csrf_token": csrf, "form_key": hidden(html, "form_key"), "template_id": str(template.id),
            "name": "Comfort Club", "description": "Two tune-ups a year.", "visits_per_year": "2",
            "price_monthly": "29.00", "price_quarterly": "79.00", "price_yearly": "", "payment_method": "card",
            "start_date": "", "end_date": ""}
    r = client.post(f"/admin/customers/{customer.id}/plans/new", data=form)
    assert r.status_code == 302 and "/admin/plans/" in r.headers["Location"], r.get_data(True)[:500]
    plan_id = int(r.headers["Location"].rsplit("/", 1)[1])
    again = client.post(f"/admin/customers/{customer.id}/plans/new", data=form)  # double submit: the same plan
    assert again.status_code == 302 and again.headers["Location"] == r.headers["Location"]
    with app.app_context():
        assert count(CustomerPlan) == 1
        plan = db.session.get(CustomerPlan, plan_id)
        assert (plan.status, plan.offers) == ("draft", ["monthly", "quarterly"])

    # sent: the customer gets the "Pay and accept" email with a portal link to the plan
    view = client.get(f"/admin/plans/{plan_id}").get_data(True)
    assert "Send to pay and accept" in view
    r = client.post(f"/admin/plans/{plan_id}/send", data={"csrf_token": csrf_token_from(view)})
    assert r.status_code == 302
    assert "the customer got an email to pay and accept" in client.get(r.headers["Location"]).get_data(True)
    [email] = wait_for_email(smtp, "ana.plans@example.com", "Comfort Club")
    text = smtp.text(email)
    assert "Monthly: $29.00" in text and "Quarterly: $79.00" in text
    link = next(w for w in text.split() if "/portal/magic/" in w)
    assert "/portal/magic/" in smtp.html(email)
    with app.app_context():
        assert db.session.get(CustomerPlan, plan_id).status == "pending"

    portal = app.test_client()
    r = portal.get(link.replace("http://portal.test", ""))
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/portal/plans/{plan_id}")
    page = portal.get(f"/portal/plans/{plan_id}").get_data(True)
    assert "Pay and accept" in page and "Monthly — $29.00" in page and "Quarterly — $79.00" in page
    assert "A new card" in page and "data-card-element" in page
    csrf, token = csrf_token_from(page), hidden(page, "token")

    # a declined first payment: 402, the explanation, the plan stays pending, nothing retried (SP-3, D-4)
    with app.app_context():
        seti = sandbox_card(customer.id, DECLINED, purpose="payment")
    r = portal.post(f"/portal/plans/{plan_id}/accept", data={"csrf_token": csrf, "token": token, "frequency": "monthly",
                                                            "card_id": "new", "setup_intent": seti})
    page = r.get_data(True)
    assert r.status_code == 402, page[:500]
    assert "The payment did not go through, so the plan is not active yet." in page
    assert "The bank declined the card" in page and "call the number on the back" in page.lower()
    assert hidden(page, "token") != token
    with app.app_context():
        assert db.session.get(CustomerPlan, plan_id).status == "pending"
        assert count(PlanPayment) == 0 and count(Payment) == 0
    assert [(pi["amount"], pi["status"]) for pi in sandbox_intents(stripe_sandbox)] == \
        [(2_900, "requires_payment_method")]
    frozen_clock.advance(days=2)
    with app.app_context():
        scheduler.run_due()
    assert len(sandbox_intents(stripe_sandbox)) == 1  # D-4: a declined first payment is never retried

    # two days later (the portal session has gone idle) the same link logs in again and the plan is still waiting
    assert portal.get(f"/portal/plans/{plan_id}").status_code == 302
    assert portal.get(link.replace("http://portal.test", "")).headers["Location"].endswith(f"/portal/plans/{plan_id}")
    page = portal.get(f"/portal/plans/{plan_id}").get_data(True)
    assert "Pay and accept" in page and "status-pending" in page

    # accepted with a new good card, quarterly: active, first payment paid, receipt
    with app.app_context():
        seti = sandbox_card(customer.id, GOOD, purpose="payment")
    r = portal.post(f"/portal/plans/{plan_id}/accept", data={"csrf_token": csrf_token_from(page),
                                                            "token": hidden(page, "token"),
                                                            "frequency": "quarterly", "card_id": "new",
                                                            "setup_intent": seti})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/portal/plans/{plan_id}"), r.get_data(True)[:500]
    page = portal.get(r.headers["Location"]).get_data(True)
    assert "Thank you! Your plan is active." in page and "Pay and accept" not in page
    assert "Quarterly" in page and "$79.00" in page and "Visa •••• 4242" in page
    today = clock.today()
    with app.app_context():
        plan = fresh(CustomerPlan, plan_id)
        assert (plan.status, plan.frequency, plan.price_cents) == ("active", "quarterly", 7_900)
        assert today == date(2026, 3, 4) and plan.next_billing_date == date(2026, 6, 4)  # the anchor day stays
        [row] = plan_rows(plan_id)
        assert (row.due_date, row.amount_cents, row.status, row.is_first_payment) == (today, 7_900, "paid", True)
        payment = db.session.get(Payment, row.payment_id)
        assert (payment.amount_cents, payment.method, payment.card_last4) == (7_900, "card", "4242")
        card = db.session.get(Card, plan.card_id)
        assert card.last4 == "4242" and card.removed_at is None  # the plan's card stays on file
    assert succeeded(sandbox_intents(stripe_sandbox)) == [7_900]
    receipts = wait_for_email(smtp, "ana.plans@example.com", "Payment receipt")
    assert len(receipts) == 1 and "79.00" in smtp.text(receipts[0])
    admin_view = client.get(f"/admin/plans/{plan_id}").get_data(True)
    assert 'data-payment-status="paid"' in admin_view and "accepted (Quarterly" in admin_view


# --- SP-8, SP-9: failed vs overdue on the client card; the job page tile --------------------------------------

def test_banner_sums_failed_and_overdue_plans_until_everything_is_paid(app, client, login_staff, stripe_sandbox,
                                                                       smtp, frozen_clock):
    with app.app_context():
        admin = make_staff("admin")
        both = make_customer("Bea", "Both", email="bea@example.com")
        bad = make_card(both.id, DECLINED)
        good = make_card(both.id, GOOD)
        # a card plan billed today on the declined card (SP-5 → failed) and a cash plan billed yesterday (SP-6)
        card_plan = add_plan(both, card=bad, prices={"monthly": 3_000}, next_billing=TODAY, name="Comfort Club")
        cash_plan = add_plan(both, method="cash", prices={"monthly": 4_500}, next_billing=TODAY - timedelta(days=1),
                             name="Filter Service")
        single = make_customer("Sol", "Single", email="sol@example.com")
        owing = add_plan(single, method="cash", prices={"monthly": 2_000}, next_billing=TODAY - timedelta(days=1),
                         name="Gold Club")
        quiet = add_plan(single, method="cash", prices={"monthly": 1_000}, next_billing=TODAY + timedelta(days=5),
                         name="Silver Club")
        job = make_job(both, "Spring tune-up", plan_id=card_plan.id)
        scheduler.run_due()
        assert [r.status for r in plan_rows(card_plan.id)] == ["failed"]
        assert [r.status for r in plan_rows(cash_plan.id)] == ["overdue"]
        assert [r.status for r in plan_rows(owing.id)] == ["overdue"]
        assert plan_rows(quiet.id) == []

    login_staff(admin)
    page = client.get(f"/admin/customers/{both.id}").get_data(True)
    banner = page[page.index('id="plan-banner"'):].split("</div>", 1)[0]
    assert 'data-owed="7500"' in banner and "$75.00 owed on service plans" in banner
    assert "View details" not in banner and "It spans 2 plans" in banner
    assert page.count("Missing payments:") == 2
    assert "Missing payments: $30.00</strong> (failed $30.00)" in page
    assert "Missing payments: $45.00</strong> (overdue $45.00)" in page

    page = client.get(f"/admin/customers/{single.id}").get_data(True)
    banner = page[page.index('id="plan-banner"'):].split("</div>", 1)[0]
    assert "$20.00 owed on service plans" in banner
    assert f'href="/admin/plans/{owing.id}">View details</a>' in banner
    assert page.count("Missing payments:") == 1  # Silver Club owes nothing
    assert client.get(f"/admin/plans/{owing.id}").status_code == 200

    # SP-9: the job of a plan shows that plan's outstanding amount
    tile = client.get(f"/admin/jobs/{job.id}").get_data(True)
    assert f'data-plan-tile="{card_plan.id}"' in tile and "Outstanding $30.00" in tile and "failed $30.00" in tile
    assert "Filter Service" not in tile

    # SP-13: collect both — the card plan on the good card, the cash plan in cash
    html, csrf = get_form(client, f"/admin/plans/{card_plan.id}/pay")
    [failed_row] = re.findall(r'<option value="(\d+)"[^>]*>Due', html)
    r = client.post(f"/admin/plans/{card_plan.id}/pay", data={
        "csrf_token": csrf, "token": hidden(html, "token"), "payment_id": failed_row, "method": "card",
        "card_id": str(good.id), "reference": ""})
    assert r.status_code == 302, r.get_data(True)[:600]
    page = client.get(f"/admin/customers/{both.id}").get_data(True)
    assert "$45.00 owed on service plans" in page and f'href="/admin/plans/{cash_plan.id}">View details' in page
    html, csrf = get_form(client, f"/admin/plans/{cash_plan.id}/pay")
    r = client.post(f"/admin/plans/{cash_plan.id}/pay", data={
        "csrf_token": csrf, "token": hidden(html, "token"), "payment_id": "all" if "All outstanding" in html else
        re.findall(r'<option value="(\d+)"[^>]*>Due', html)[0], "method": "cash", "card_id": "", "reference": ""})
    assert r.status_code == 302, r.get_data(True)[:600]

    page = client.get(f"/admin/customers/{both.id}").get_data(True)
    assert 'id="plan-banner"' not in page and "Missing payments" not in page
    tile = client.get(f"/admin/jobs/{job.id}").get_data(True)
    assert "payments up to date" in tile and "Outstanding $" not in tile
    with app.app_context():
        assert [r.status for r in plan_rows(card_plan.id)] == ["paid"]
        assert [r.status for r in plan_rows(cash_plan.id)] == ["paid"]
    assert succeeded(sandbox_intents(stripe_sandbox)) == [3_000]


# --- SP-10: staff update the plan's card ----------------------------------------------------------------------

def test_update_card_charges_or_marks_paid_the_outstanding_payments(app, client, login_staff, stripe_sandbox, smtp,
                                                                    frozen_clock):
    with app.app_context():
        admin = make_staff("admin")
        c = make_customer("Carl", "Card", email="carl@example.com")
        bad = make_card(c.id, DECLINED)
        good = make_card(c.id, GOOD)
        charged = add_plan(c, card=bad, prices={"monthly": 1_999}, next_billing=date(2026, 3, 15))
        add_payment(charged, date(2026, 1, 15), "failed")
        add_payment(charged, date(2026, 2, 15), "failed")
        marked = add_plan(c, card=bad, prices={"monthly": 2_500}, next_billing=date(2026, 3, 20), name="Gold Club")
        add_payment(marked, date(2026, 1, 20), "failed")
        add_payment(marked, date(2026, 2, 20), "failed")
        clean = add_plan(c, card=None, prices={"monthly": 1_000}, next_billing=date(2026, 3, 25), name="Basic")
        stranger_card = make_card(make_customer("Sam", "Stranger").id, GOOD)

    login_staff(admin)
    view = client.get(f"/admin/plans/{charged.id}").get_data(True)
    assert f'href="/admin/plans/{charged.id}/card">Update card</a>' in view
    assert view.count("<strong>retries exhausted</strong>") == 2 and "$39.98 outstanding on this plan" in view
    assert f'href="/admin/plans/{clean.id}/card">Add card</a>' in client.get(f"/admin/plans/{clean.id}").get_data(True)
    html, csrf = get_form(client, f"/admin/plans/{charged.id}/card")
    assert 'data-outstanding="3998"' in html and "2 outstanding payments: $39.98" in html
    assert f'type="radio" name="card_id" id="card_id-0" value="{bad.id}" checked' in html  # the plan's card
    assert 'name="card_id"' in html and 'value="new"' in html and "data-card-element" in html
    assert "Charge this card for all outstanding payments" in html and "Mark all outstanding payments as paid" in html
    token = hidden(html, "token")

    # no choice while payments are outstanding: 400, nothing changes, nothing charged
    r = client.post(f"/admin/plans/{charged.id}/card", data={"csrf_token": csrf, "token": token,
                                                             "card_id": str(good.id)})
    assert r.status_code == 400 and "Choose what happens to the outstanding payments" in r.get_data(True)
    r = client.post(f"/admin/plans/{charged.id}/card", data={"csrf_token": csrf, "token": token,
                                                             "card_id": str(good.id), "outstanding": "refund"})
    assert r.status_code == 400 and "Choose what happens to the outstanding payments" in r.get_data(True)
    r = client.post(f"/admin/plans/{charged.id}/card", data={"csrf_token": csrf, "token": token,
                                                             "card_id": "new", "outstanding": "charge"})
    assert r.status_code == 400 and "Enter the card details." in r.get_data(True)
    r = client.post(f"/admin/plans/{charged.id}/card", data={"csrf_token": csrf, "token": token, "card_id": "new",
                                                             "setup_intent": "seti_madeup", "outstanding": "charge"})
    assert r.status_code == 400 and "The card was not saved. Enter the card again." in r.get_data(True)
    r = client.post(f"/admin/plans/{charged.id}/card", data={"csrf_token": csrf, "token": token,
                                                             "card_id": str(stranger_card.id), "outstanding": "charge"})
    assert r.status_code == 400 and "Choose one of the cards on file." in r.get_data(True)
    with app.app_context():
        assert fresh(CustomerPlan, charged.id).card_id == bad.id
        assert count(ChargeAttempt) == 0
    assert sandbox_intents(stripe_sandbox) == []

    # (a) charge: one charge for the exact total, each outstanding payment paid and linked to it
    r = client.post(f"/admin/plans/{charged.id}/card", data={"csrf_token": csrf, "token": token,
                                                             "card_id": str(good.id), "outstanding": "charge"})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/admin/plans/{charged.id}"), \
        r.get_data(True)[:600]
    page = client.get(r.headers["Location"]).get_data(True)
    assert "charged $39.98 for all outstanding payments" in page and "The billing date is unchanged" in page
    assert page.count('data-payment-status="paid"') == 2 and "retries exhausted" not in page  # settled
    pis = sandbox_intents(stripe_sandbox)
    assert [(pi["amount"], pi["status"]) for pi in pis] == [(3_998, "succeeded")]
    with app.app_context():
        plan = fresh(CustomerPlan, charged.id)
        assert plan.card_id == good.id and plan.next_billing_date == date(2026, 3, 15)
        rows = plan_rows(charged.id)
        assert [r.status for r in rows] == ["paid", "paid"]
        [payment] = db.session.scalars(select(Payment)).all()
        assert payment.amount_cents == 3_998 and payment.card_last4 == "4242"
        assert {r.payment_id for r in rows} == {payment.id}
        [attempt] = db.session.scalars(select(ChargeAttempt)).all()
        assert (attempt.stripe_payment_intent_id, attempt.card_id, attempt.status) == (pis[0]["id"], good.id,
                                                                                       "succeeded")
        assert pis[0]["payment_method"] == db.session.get(Card, good.id).stripe_payment_method_id

    # (b) mark as paid: no money moves, the staff user is recorded
    html, csrf = get_form(client, f"/admin/plans/{marked.id}/card")
    r = client.post(f"/admin/plans/{marked.id}/card", data={"csrf_token": csrf, "token": hidden(html, "token"),
                                                            "card_id": str(good.id), "outstanding": "mark_paid"})
    assert r.status_code == 302, r.get_data(True)[:600]
    page = client.get(r.headers["Location"]).get_data(True)
    assert "2 outstanding payment(s) marked as paid (no money moved)" in page
    assert page.count(f"Marked paid by {admin.name}") == 2
    with app.app_context():
        rows = plan_rows(marked.id)
        assert [(r.status, r.marked_paid_by_id, r.payment_id) for r in rows] == [("marked_paid", admin.id, None)] * 2
        assert fresh(CustomerPlan, marked.id).next_billing_date == date(2026, 3, 20)
        assert count(Payment) == 1 and count(ChargeAttempt) == 1
    assert len(sandbox_intents(stripe_sandbox)) == 1

    # nothing outstanding: "Add card" saves the card, charges nothing
    html, csrf = get_form(client, f"/admin/plans/{clean.id}/card")
    assert "Nothing is outstanding" in html
    r = client.post(f"/admin/plans/{clean.id}/card", data={"csrf_token": csrf, "token": hidden(html, "token"),
                                                           "card_id": str(good.id)})
    assert r.status_code == 302
    assert "nothing was charged" in client.get(r.headers["Location"]).get_data(True)
    with app.app_context():
        assert fresh(CustomerPlan, clean.id).card_id == good.id
    assert len(sandbox_intents(stripe_sandbox)) == 1


# --- SP-11, D-8: the customer updates the plan's card in the portal -------------------------------------------

def test_customer_new_card_pays_everything_owed_and_staff_hear_of_replacements(app, client, login_customer,
                                                                             stripe_sandbox, smtp, frozen_clock):
    with app.app_context():
        manager = make_staff("office", email="manager.plans@brightair.test")
        c = make_customer("Dora", "Dunn", email="dora@example.com", manager_id=manager.id)
        old = make_card(c.id, DECLINED)
        plan = add_plan(c, card=old, prices={"monthly": 3_000}, next_billing=date(2026, 3, 10))
        add_payment(plan, date(2026, 1, 10), "failed")
        add_payment(plan, date(2026, 2, 10), "failed")
        no_card = add_plan(c, card=None, prices={"monthly": 1_500}, next_billing=date(2026, 3, 12), name="Basic")
        waiting = add_plan(c, status="pending", prices={"monthly": 2_000}, name="Waiting")
    login_customer(c)
    detail = client.get(f"/portal/plans/{plan.id}").get_data(True)
    assert "Outstanding plan payments: $60.00" in detail and "Update my card and pay" in detail
    html, csrf = get_form(client, f"/portal/plans/{plan.id}/card")
    assert 'data-outstanding="6000"' in html and "Save card and pay $60.00" in html
    with app.app_context():
        seti = sandbox_card(c.id, GOOD, purpose="payment")
    smtp.clear()
    r = client.post(f"/portal/plans/{plan.id}/card", data={"csrf_token": csrf, "token": hidden(html, "token"),
                                                          "card_id": "new", "setup_intent": seti})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/portal/plans/{plan.id}"), r.get_data(True)[:600]
    page = client.get(r.headers["Location"]).get_data(True)
    assert "everything you owed on this plan ($60.00) is paid" in page and "Outstanding plan payments" not in page
    pis = sandbox_intents(stripe_sandbox)
    assert [(pi["amount"], pi["status"]) for pi in pis] == [(6_000, "succeeded")]
    with app.app_context():
        fresh_plan = fresh(CustomerPlan, plan.id)
        new = db.session.scalars(select(Card).where(Card.customer_id == c.id, Card.last4 == "4242")).one()
        assert fresh_plan.card_id == new.id and fresh_plan.next_billing_date == date(2026, 3, 10)
        rows = plan_rows(plan.id)
        assert [r.status for r in rows] == ["paid", "paid"] and len({r.payment_id for r in rows}) == 1
    # D-8: replacing the card that backs the plan tells the customer's manager
    [note] = wait_for_email(smtp, "manager.plans@brightair.test", "changed a card")
    body = smtp.text(note)
    assert "replaced the card" in body and "Visa •••• 0341" in body and "Visa •••• 4242" in body
    assert f"/admin/plans/{plan.id}" in body

    # a plan with no card gets one: nothing was replaced, no staff email; nothing owed, nothing charged
    smtp.clear()
    html, csrf = get_form(client, f"/portal/plans/{no_card.id}/card")
    r = client.post(f"/portal/plans/{no_card.id}/card", data={"csrf_token": csrf, "token": hidden(html, "token"),
                                                             "card_id": str(new.id)})
    assert r.status_code == 302
    assert "Your card is saved for this plan" in client.get(r.headers["Location"]).get_data(True)
    # choosing the plan's own card again changes nothing
    html, csrf = get_form(client, f"/portal/plans/{plan.id}/card")
    r = client.post(f"/portal/plans/{plan.id}/card", data={"csrf_token": csrf, "token": hidden(html, "token"),
                                                          "card_id": str(new.id)})
    assert r.status_code == 302
    # a pending plan's card page saves the card on the plan, as it says
    html, csrf = get_form(client, f"/portal/plans/{waiting.id}/card")
    r = client.post(f"/portal/plans/{waiting.id}/card", data={"csrf_token": csrf, "token": hidden(html, "token"),
                                                             "card_id": str(new.id)})
    assert r.status_code == 302
    assert "Your card is saved for this plan" in client.get(r.headers["Location"]).get_data(True)
    with app.app_context():
        assert fresh(CustomerPlan, no_card.id).card_id == new.id
        assert fresh(CustomerPlan, waiting.id).card_id == new.id
        assert fresh(CustomerPlan, waiting.id).status == "pending"
        scheduler.run_due()  # delivers anything still queued
    assert not [m for m in smtp.messages if "changed a card" in str(m["Subject"])]
    assert len(sandbox_intents(stripe_sandbox)) == 1


# --- REP-2: the overdue dashboard; REP-3: the plan report -----------------------------------------------------

def test_overdue_dashboard_buckets_reasons_dunning_and_card_flags(app, client, login_staff, stripe_sandbox, smtp):
    with app.app_context():
        admin = make_staff("admin")
        # 100 days before 2026-03-02: a yearly cash plan's bill, not collected (SP-6)
        cash_due = TODAY - timedelta(days=100)
        set_clock(cash_due, 9)
        cash_customer = make_customer("Cash", "Carter", email="cash@example.com")
        add_plan(cash_customer, method="cash", frequency="yearly", prices={"yearly": 12_000}, next_billing=cash_due,
                 name="Cash Club")
        set_clock(cash_due + timedelta(days=1))
        scheduler.run_due()
        # 45 days before: a yearly card plan declined on its due date and on every retry (D-1, D-3)
        exhausted_due = TODAY - timedelta(days=45)
        set_clock(exhausted_due, 9)
        late = make_customer("Lena", "Late", email="lena@example.com")
        late_card = make_card(late.id, DECLINED)
        add_plan(late, card=late_card, frequency="yearly", prices={"yearly": 9_000}, next_billing=exhausted_due,
                 name="Late Club")
        for hours in (0, 24, 48, 72):
            set_clock(exhausted_due)
            scheduler.run_due(clock.now() + timedelta(hours=hours, minutes=5))
        # yesterday: a monthly card plan declined once, next retry 24 h after
        fresh_due = TODAY - timedelta(days=1)
        set_clock(fresh_due, 9)
        recent = make_customer("Rita", "Recent", email="rita@example.com")
        recent_card = make_card(recent.id, DECLINED)
        add_plan(recent, card=recent_card, prices={"monthly": 3_000}, next_billing=fresh_due, name="Recent Club")
        set_clock(fresh_due)
        scheduler.run_due()
        # an invoice 10 days past due, and one not yet due (not listed)
        set_clock(TODAY, 9)
        inv_customer = make_customer("Ivan", "Invoice", email="ivan@example.com")
        late_invoice = make_invoice(inv_customer, 25_000, number="INV-LATE", due_date=TODAY - timedelta(days=10))
        make_invoice(inv_customer, 10_000, number="INV-FUTURE", due_date=TODAY + timedelta(days=3))
        # card flags: the exhausted plan's card expired in January, the recent plan's card expires this month
        db.session.get(Card, late_card.id).exp_month, db.session.get(Card, late_card.id).exp_year = 1, 2026
        db.session.get(Card, recent_card.id).exp_month, db.session.get(Card, recent_card.id).exp_year = 3, 2026
        db.session.commit()

    login_staff(admin)
    page = client.get("/admin/overdue")
    assert page.status_code == 200
    html = page.get_data(True)
    assert '<td data-bucket="0–30">$280.00 <span class="muted">(2)</span></td>' in html
    assert '<td data-bucket="31–60">$90.00 <span class="muted">(1)</span></td>' in html
    assert '<td data-bucket="61–90">$0.00 <span class="muted">(0)</span></td>' in html
    assert '<td data-bucket="90+">$120.00 <span class="muted">(1)</span></td>' in html
    assert "<td data-total>$490.00</td>" in html
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr data-kind="[^"]+">.*?(Cash Club|Late Club|Recent Club|'
                                                         r'Invoice INV-\w+).*?</tr>', html, re.DOTALL)}
    assert set(rows) == {"Cash Club", "Late Club", "Recent Club", "Invoice INV-LATE"}
    assert "100 d" in rows["Cash Club"] and "(90+)" in rows["Cash Club"] and "Not collected (cash)" in rows["Cash Club"]
    assert "collect by hand" in rows["Cash Club"] and "status-overdue\">Overdue" in rows["Cash Club"]
    assert "45 d" in rows["Late Club"] and "(31–60)" in rows["Late Club"] and "declined" in rows["Late Club"]
    assert "retries exhausted · 4 attempts" in rows["Late Club"] and ">expired</span>" in rows["Late Club"], \
        rows["Late Club"]
    assert "1 d" in rows["Recent Club"] and "(0–30)" in rows["Recent Club"]
    assert "next retry 2026-03-02 10:00 · 1 attempt<" in rows["Recent Club"]
    assert ">expires soon</span>" in rows["Recent Club"] and "declined" in rows["Recent Club"]
    assert "10 d" in rows["Invoice INV-LATE"] and "Past its due date" in rows["Invoice INV-LATE"]
    assert f'href="/admin/invoices/{late_invoice.id}"' in rows["Invoice INV-LATE"]
    assert "INV-FUTURE" not in html
    only_plans = client.get("/admin/overdue?kind=plan").get_data(True)
    assert "INV-LATE" not in only_plans and "<td data-total>$240.00</td>" in only_plans
    bucket = client.get("/admin/overdue?bucket=90%2B").get_data(True)
    assert "Cash Club" in bucket and "Late Club" not in bucket and "<td data-total>$120.00</td>" in bucket


def test_plan_report_counts_active_plans_and_mrr(app, client, login_staff, frozen_clock):
    with app.app_context():
        admin = make_staff("admin")
        c = make_customer()
        add_plan(c, prices={"monthly": 3_000}, next_billing=date(2026, 4, 2), name="Monthly")
        quarterly = add_plan(c, frequency="quarterly", prices={"monthly": 3_500, "quarterly": 9_000},
                             next_billing=date(2026, 6, 2), name="Quarterly")
        add_plan(c, frequency="yearly", prices={"yearly": 12_000}, next_billing=date(2027, 3, 2), name="Yearly")
        add_plan(c, status="pending", prices={"monthly": 5_000}, name="Waiting")
        add_plan(c, status="cancelled", prices={"monthly": 7_000}, name="Gone")
        add_payment(quarterly, date(2026, 3, 1), "failed")
    login_staff(admin)
    page = client.get("/admin/reports/plans")
    assert page.status_code == 200
    html = page.get_data(True)
    assert "<dd data-active>3</dd>" in html
    assert "<dd data-mrr>$70.00</dd>" in html  # 30.00 + 90.00 / 3 + 120.00 / 12
    assert "<dd data-owing>1</dd>" in html and "$90.00" in html
    assert "Waiting for acceptance (1)" in html and "Cancelled (1)" in html and "Active (3)" in html


# --- the bad input: a clear message, nothing charged, never a 500 -------------------------------------

def test_bad_plan_input_gets_a_message_and_charges_nothing(app, client, login_customer, login_staff, stripe_sandbox,
                                                           frozen_clock):
    with app.app_context():
        admin, tech = make_staff("admin"), make_staff("technician")
        c = make_customer("Pat", "Picky", email="pat@example.com")
        other = make_customer("Oli", "Other", email="oli@example.com")
        card = make_card(c.id, GOOD)
        active = add_plan(c, card=card, prices={"monthly": 3_000}, next_billing=date(2026, 4, 2), name="Active")
        cancelled = add_plan(c, status="cancelled", prices={"monthly": 3_000}, name="Cancelled")
        pending = add_plan(c, status="pending", prices={"monthly": 3_000, "quarterly": 8_000}, name="Pending")
        draft = add_plan(c, status="draft", prices={"monthly": 3_000}, name="Draft")
        theirs = add_plan(other, status="pending", prices={"monthly": 3_000}, name="Theirs")
        cash = add_plan(c, method="cash", prices={"monthly": 4_000}, next_billing=date(2026, 4, 2), name="Cash")
        cash_row = add_payment(cash, date(2026, 3, 1), "overdue")
        cash_draft = add_plan(c, status="draft", method="cash", prices={"monthly": 2_000}, name="Cash draft")

    def nothing_charged():
        with app.app_context():
            assert count(ChargeAttempt) == 0 and count(PlanPayment) == 1
        assert sandbox_intents(stripe_sandbox) == []

    # --- portal: accepting what cannot be accepted
    login_customer(c)
    page = client.get(f"/portal/plans/{pending.id}").get_data(True)
    csrf, token = csrf_token_from(page), hidden(page, "token")
    for plan, message in [(active, "This plan is already active."),
                          (cancelled, "This plan is Cancelled and can no longer be accepted.")]:
        r = client.post(f"/portal/plans/{plan.id}/accept", data={"csrf_token": csrf, "token": token,
                                                                "frequency": "monthly", "card_id": str(card.id)},
                        follow_redirects=True)
        assert r.status_code == 200 and message in r.get_data(True), (plan.name, r.get_data(True)[:800])
    for frequency in ("weekly", "yearly", ""):
        r = client.post(f"/portal/plans/{pending.id}/accept", data={"csrf_token": csrf, "token": token,
                                                                    "frequency": frequency, "card_id": str(card.id)})
        assert r.status_code == 400, (frequency, r.status_code)
        assert "Choose one of the billing frequencies offered for this plan." in r.get_data(True)
    r = client.post(f"/portal/plans/{pending.id}/accept", data={"csrf_token": csrf, "token": token,
                                                                "frequency": "monthly", "card_id": "new"})
    assert r.status_code == 400 and "Enter the card details." in r.get_data(True)
    r = client.post(f"/portal/plans/{pending.id}/accept", data={"csrf_token": csrf, "token": token,
                                                                "frequency": "monthly", "card_id": "999999"})
    assert r.status_code == 400 and "cards on file" in r.get_data(True)
    r = client.post(f"/portal/plans/{pending.id}/accept", data={"token": token, "frequency": "monthly",
                                                                "card_id": str(card.id)})
    assert r.status_code == 400 and "Your form expired" in r.get_data(True)  # no CSRF token
    for plan in (draft, theirs):  # G-5: a draft is not shown; another customer's plan is not found
        assert client.get(f"/portal/plans/{plan.id}").status_code == 404
        assert client.post(f"/portal/plans/{plan.id}/accept", data={"csrf_token": csrf, "token": token,
                                                                    "frequency": "monthly",
                                                                    "card_id": str(card.id)}).status_code == 404
    with app.app_context():
        assert fresh(CustomerPlan, pending.id).status == "pending"
        assert fresh(CustomerPlan, cancelled.id).status == "cancelled"
    nothing_charged()

    # --- admin: add-ons, dates, a cash plan payment's refund
    login_staff(admin)
    view = client.get(f"/admin/plans/{active.id}").get_data(True)
    csrf = csrf_token_from(view)
    addon = {"csrf_token": csrf, "name": "Filter kit", "amount": "120.00", "payment_plan": "installments",
             "installments": "4", "start_date": "", "end_date": ""}
    for installments in ("0", "121", "-3", "two"):
        r = client.post(f"/admin/plans/{active.id}/addons", data={**addon, "installments": installments})
        assert r.status_code == 400 and "Installments must be between 1 and 120." in r.get_data(True), installments
    r = client.post(f"/admin/plans/{active.id}/addons", data={**addon, "start_date": "2026-06-01",
                                                              "end_date": "2026-05-01"})
    assert r.status_code == 400 and "The end date is before the start date." in r.get_data(True)
    r = client.post(f"/admin/plans/{active.id}/addons", data={**addon, "amount": "0"})
    assert r.status_code == 400 and "above zero" in r.get_data(True)
    html, csrf = get_form(client, f"/admin/customers/{c.id}/plans/new")
    form = {"csrf_token": csrf, "form_key": hidden(html, "form_key"), "name": "Dated", "description": "",
            "visits_per_year": "2", "price_monthly": "30.00", "price_quarterly": "", "price_yearly": "",
            "payment_method": "card", "start_date": "2026-05-01", "end_date": "2026-04-01"}
    r = client.post(f"/admin/customers/{c.id}/plans/new", data=form)
    assert r.status_code == 400 and "The end date is before the start date." in r.get_data(True)
    r = client.post(f"/admin/customers/{c.id}/plans/new", data={**form, "end_date": "", "price_monthly": "0.10"})
    assert r.status_code == 400 and "The monthly price must be between" in r.get_data(True)
    with app.app_context():
        assert count(CustomerPlan) == 7
        assert fresh(CustomerPlan, active.id).addons == []

    view = client.get(f"/admin/plans/{cash_draft.id}").get_data(True)
    assert "Activate plan" in view
    r = client.post(f"/admin/plans/{cash_draft.id}/activate", data={"csrf_token": csrf_token_from(view),
                                                                   "frequency": "weekly", "start_date": "2026-03-05"},
                    follow_redirects=True)
    assert r.status_code == 200 and "Choose one of the frequencies this plan offers." in r.get_data(True)
    r = client.post(f"/admin/plans/{cash_draft.id}/activate", data={"csrf_token": csrf_token_from(view),
                                                                   "frequency": "monthly", "start_date": "2026-02-01"},
                    follow_redirects=True)
    assert r.status_code == 200 and "The first payment date cannot be in the past." in r.get_data(True)
    with app.app_context():
        assert fresh(CustomerPlan, cash_draft.id).status == "draft" and plan_rows(cash_draft.id) == []

    html, csrf = get_form(client, f"/admin/plans/{cash.id}/pay")
    r = client.post(f"/admin/plans/{cash.id}/pay", data={"csrf_token": csrf, "token": hidden(html, "token"),
                                                         "payment_id": str(cash_row.id), "method": "cash",
                                                         "card_id": "", "reference": ""})
    assert r.status_code == 302, r.get_data(True)[:600]
    with app.app_context():
        payment = db.session.scalars(select(Payment)).one()
        assert (payment.method, payment.amount_cents) == ("cash", 4_000)
    view = client.get(f"/admin/plans/{cash.id}").get_data(True)
    assert "cannot be refunded through the plan" in view
    assert f'href="/admin/plans/{cash.id}/cancel">cancel the plan' in view
    html, csrf = get_form(client, f"/admin/payments/{payment.id}")
    assert "Cancel the plan instead." in html
    r = client.post(f"/admin/payments/{payment.id}/refund", data={"csrf_token": csrf, "token": "refund-token-1",
                                                                  "amount": "40.00", "reason": "Changed my mind"})
    assert r.status_code == 400 and "Cash, check and other payments of a service plan cannot be refunded through " \
                                    "the plan. Cancel the plan instead." in r.get_data(True)
    # nor through cancelling the plan with "refund the last card payment": there is none
    html, csrf = get_form(client, f"/admin/plans/{cash.id}/cancel")
    assert "No card payment of this plan to refund" in html
    r = client.post(f"/admin/plans/{cash.id}/cancel", data={"csrf_token": csrf, "token": hidden(html, "token"),
                                                            "reason": "Moving away", "refund_last": "y"})
    assert r.status_code == 400 and "There is no card payment of this plan left to refund." in r.get_data(True)
    with app.app_context():
        assert count(Refund) == 0 and fresh(Payment, payment.id).refunded_cents == 0
        assert count(ChargeAttempt) == 0
        assert fresh(CustomerPlan, cash.id).status == "active"
    assert sandbox_intents(stripe_sandbox) == []

    # --- a technician sees no plan money pages
    tech_client = app.test_client()
    login_staff(tech, c=tech_client)
    for url in (f"/admin/plans/{active.id}", f"/admin/plans/{active.id}/card", f"/admin/plans/{active.id}/pay",
                "/admin/overdue", "/admin/reports/plans", f"/admin/customers/{c.id}/plans/new",
                "/admin/settings/plans"):
        assert tech_client.get(url).status_code == 403, url
    tech_csrf = csrf_token_from(tech_client.get("/admin/customers").get_data(True))
    assert tech_client.post(f"/admin/plans/{active.id}/card", data={"csrf_token": tech_csrf, "card_id": str(card.id),
                                                                   "outstanding": "charge"}).status_code == 403


def test_a_new_card_stays_on_file_when_the_outstanding_charge_cannot_start(app, client, login_staff, stripe_sandbox,
                                                                           smtp, frozen_clock):
    """SP-10: a plan charge already running refuses the second charge (409), but the card staff just entered is
    kept on file and becomes the plan's card, so it need not be typed again."""
    with app.app_context():
        admin = make_staff("admin")
        c = make_customer("Bea", "Busy", email="bea@example.com")
        bad = make_card(c.id, DECLINED)
        plan = add_plan(c, card=bad, prices={"monthly": 1_999}, next_billing=date(2026, 3, 15))
        add_payment(plan, date(2026, 2, 15), "failed")
        db.session.add(ChargeAttempt(idempotency_key="plan_running_1", customer_id=c.id, card_id=bad.id,
                                     amount_cents=1_999, currency="USD", purpose="plan_payment", off_session=True,
                                     plan_id=plan.id, status="pending"))
        db.session.commit()
        seti = sandbox_card(c.id, GOOD, purpose="payment")
        cards_before = count(Card)

    login_staff(admin)
    html, csrf = get_form(client, f"/admin/plans/{plan.id}/card")
    r = client.post(f"/admin/plans/{plan.id}/card", data={"csrf_token": csrf, "token": hidden(html, "token"),
                                                          "card_id": "new", "setup_intent": seti,
                                                          "outstanding": "charge"})
    assert r.status_code == 409 and "A payment for this plan is being processed" in r.get_data(True)
    with app.app_context():
        assert count(Card) == cards_before + 1
        new_card = db.session.scalars(select(Card).order_by(Card.id.desc())).first()
        assert new_card.last4 == "4242" and fresh(CustomerPlan, plan.id).card_id == new_card.id
        assert count(ChargeAttempt) == 1  # nothing charged again
    assert sandbox_intents(stripe_sandbox) == []
