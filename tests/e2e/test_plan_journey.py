"""Q-4: the service-plan journeys in headless Chromium against the live server and the localstripe sandbox.

1. SP-3: a customer opens a pending plan from the magic link, picks the billing frequency, types a NEW card into the
   Stripe.js card element and pays and accepts: the plan is active.
2. SP-5, D-1: the plan's card is then a declining one (4000…0341); the job runner bills the plan on its next two
   billing dates and both payments fail.
3. SP-8, SP-10: staff log in, see the red banner on the client card, "View details" → "Update card", type a NEW card,
   choose "Charge this card for all outstanding payments" and save: one charge of the exact total reaches the
   sandbox and the banner is gone.

A full-page screenshot of the plan page after the charge goes to <repo>/test-artifacts/plan-card-updated.png.
"""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests import factories
from tests.helpers import fill_card_element, sandbox_intents, staff_logs_in

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
LA = ZoneInfo("America/Los_Angeles")  # the business time zone (config default)
GOOD, DECLINED = "4242424242424242", "4000000000000341"
STAFF_EMAIL = "admin.plans.e2e@brightair.test"
CUSTOMER_EMAIL = "paco.plan@example.com"


@pytest.mark.e2e
def test_plan_accepted_with_new_card_then_staff_charge_outstanding_with_new_card(app, smtp, stripe_sandbox,
                                                                                 live_server, page, frozen_clock):
    from portal import clock
    from portal.extensions import db
    from portal.models import Card, ChargeAttempt, CustomerPlan, PlanPayment
    from portal.services.platform import magic_links, scheduler

    with app.app_context():
        factories.make_staff(role="admin", email=STAFF_EMAIL, name="Pia Planner")
        customer = factories.make_customer("Paco", "Plan", email=CUSTOMER_EMAIL)
        plan = CustomerPlan(customer_id=customer.id, name="Comfort Club", description="Two tune-ups a year.",
                            status="pending", visits_per_year=2, price_monthly_cents=3_000, price_yearly_cents=30_000,
                            offered_frequencies="monthly,yearly", payment_method="card", currency="USD",
                            sent_at=clock.now())
        db.session.add(plan)
        db.session.commit()
        plan_id = plan.id
        link = magic_links.portal_link(db.session.get(type(customer), customer.id), f"/portal/plans/{plan_id}")
        db.session.commit()
        db.session.remove()

    # 1. The customer: magic link → the plan → "Pay and accept" with a new card
    assert link.startswith(live_server), link
    page.goto(link)
    expect(page).to_have_url(f"{live_server}/portal/plans/{plan_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Comfort Club")
    form = page.locator("form[data-card-form]")
    often = form.get_by_role("group", name="How often to be billed")
    expect(often.get_by_role("radio")).to_have_count(2)
    often.get_by_role("radio", name=re.compile(r"^Monthly — \$30\.00")).check()
    pay_with = form.get_by_role("group", name="Pay with")
    expect(pay_with.get_by_role("radio")).to_have_count(1)  # no card on file: only "A new card"
    expect(pay_with.get_by_role("radio", name="A new card")).to_be_checked()
    fill_card_element(form)
    form.get_by_role("button", name=re.compile(r"^Pay \$[\d.,]+ and accept$")).click()

    expect(page.get_by_role("status")).to_contain_text("Thank you! Your plan is active.")
    expect(page).to_have_url(f"{live_server}/portal/plans/{plan_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Active")
    expect(page.get_by_role("button", name=re.compile(r"and accept$"))).to_have_count(0)
    with app.app_context():
        accepted = db.session.get(CustomerPlan, plan_id)
        assert (accepted.status, accepted.frequency, accepted.price_cents) == ("active", "monthly", 3_000)
        first_card = db.session.get(Card, accepted.card_id)
        assert first_card.last4 == "4242" and first_card.removed_at is None
        first_card_id = first_card.id
        assert [(r.status, r.amount_cents) for r in accepted.payments] == [("paid", 3_000)]
        # 2. The card on the plan is now one the bank declines; the next two billing dates both fail
        bad = factories.make_card(customer.id, DECLINED)
        db.session.get(CustomerPlan, plan_id).card_id = bad.id
        db.session.commit()
        next_bill = accepted.next_billing_date
        db.session.remove()
    for _ in range(2):
        with app.app_context():
            due = db.session.get(CustomerPlan, plan_id).next_billing_date
            scheduler.run_due(datetime(due.year, due.month, due.day, 10, 0, tzinfo=LA))
            db.session.remove()
    frozen_clock.set(datetime(due.year, due.month, due.day, 11, 0, tzinfo=LA))
    with app.app_context():
        rows = db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan_id)
                                  .order_by(PlanPayment.due_date)).all()
        assert [(r.due_date == next_bill, r.status) for r in rows] == [(False, "paid"), (True, "failed"),
                                                                       (False, "failed")]
        outstanding = sum(r.amount_cents for r in rows if r.status == "failed")
        assert outstanding == 6_000
        db.session.remove()
    # the acceptance, then the first bill, its retry and the second bill, all declined
    assert sorted((pi["amount"], pi["status"]) for pi in sandbox_intents(stripe_sandbox)) == [
        (3_000, "requires_payment_method")] * 3 + [(3_000, "succeeded")]

    # 3. Staff: the banner, "View details", "Update card" with a new card, charge everything outstanding
    staff_logs_in(page, live_server, STAFF_EMAIL)

    card_url = f"{live_server}/admin/customers/{customer.id}"
    page.goto(card_url)
    banner = page.locator("#plan-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("$60.00 owed on service plans")
    expect(banner).to_have_css("background-color", "rgb(180, 35, 24)")  # red (#b42318)
    banner.get_by_role("link", name="View details").click()
    expect(page).to_have_url(f"{live_server}/admin/plans/{plan_id}")
    expect(page.locator("[data-plan-owed]")).to_contain_text("$60.00 outstanding on this plan")
    page.get_by_role("link", name="Update card").click()
    expect(page).to_have_url(f"{live_server}/admin/plans/{plan_id}/card")

    form = page.locator("form[data-card-form]")
    expect(form.get_by_role("radio", name=re.compile(r"0341"))).to_be_checked()  # the plan's card
    expect(form.locator("[data-new-card]")).to_be_hidden()
    form.get_by_role("radio", name="A new card").check()
    expect(form.locator("[data-new-card]")).to_be_visible()
    fill_card_element(form)
    expect(form.locator("[data-outstanding]")).to_contain_text("2 outstanding payments: $60.00")
    form.get_by_role("radio", name="Charge this card for all outstanding payments").check()
    form.get_by_role("button", name="Save card").click()

    expect(page).to_have_url(f"{live_server}/admin/plans/{plan_id}")
    expect(page.get_by_role("status")).to_contain_text("charged $60.00 for all outstanding payments")
    expect(page.locator("[data-plan-owed]")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "plan-card-updated.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.is_file() and shot.stat().st_size > 0

    page.goto(card_url)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Paco Plan")
    expect(page.locator("#plan-banner")).to_have_count(0)
    expect(page.get_by_text("Missing payments")).to_have_count(0)

    # One charge of the exact outstanding total, on the new card; the billing date did not move
    pis = sandbox_intents(stripe_sandbox)
    assert sorted((pi["amount"], pi["status"]) for pi in pis) == [
        (3_000, "requires_payment_method")] * 3 + [(3_000, "succeeded"), (outstanding, "succeeded")]
    with app.app_context():
        final = db.session.get(CustomerPlan, plan_id)
        new_card = db.session.get(Card, final.card_id)
        assert new_card.id not in (first_card_id, bad.id) and new_card.last4 == "4242"
        [attempt] = db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.purpose == "plan_payments")).all()
        [charge] = [pi for pi in pis if pi["id"] == attempt.stripe_payment_intent_id]
        assert (charge["amount"], charge["status"]) == (outstanding, "succeeded")
        assert charge["payment_method"] == new_card.stripe_payment_method_id and attempt.card_id == new_card.id
        assert [r.status for r in final.payments] == ["paid", "paid", "paid"]
        assert final.payments[1].payment_id == final.payments[2].payment_id
        assert final.next_billing_date.day == next_bill.day
        db.session.remove()
