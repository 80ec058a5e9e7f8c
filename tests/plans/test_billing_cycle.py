"""SP-3 … SP-12 at the service level with the moved clock, against the localstripe sandbox and a real SMTP server.

What is asserted is what people see: plan payment rows, PaymentIntents in the sandbox, refunds there, emails received.
"""
from __future__ import annotations

from datetime import date, timedelta

import pytest
import requests
from sqlalchemy import func, select

from portal import clock
from portal.extensions import db
from portal.models import (
    Card,
    ChargeAttempt,
    Customer,
    CustomerPlan,
    Payment,
    PaymentAllocation,
    PlanPayment,
    Refund,
    StaffUser,
)
from portal.services.errors import ServiceError, ValidationError
from portal.services.payments import charges, declines, gateway, refunds
from portal.services.plans import billing as plan_billing
from portal.services.plans import lifecycle as plan_setup
from portal.services.platform import scheduler
from tests.factories import make_active_plan, make_card, make_customer, make_staff
from tests.helpers import sandbox_intents, set_clock

PRICE = 2_500
GOOD, GOOD_MC, DECLINED = "4242424242424242", "5555555555554444", "4000000000000341"


# --- helpers -----------------------------------------------------------------------------------------------

def days(first: date, last: date):
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


def sandbox_refunds(pi_id: str) -> list[dict]:
    r = requests.get(f"{gateway.sandbox_url()}/v1/refunds?payment_intent={pi_id}",
                     headers={"Authorization": "Bearer sk_test_sandbox"}, timeout=10)
    r.raise_for_status()
    return r.json()["data"]


def rows(plan_id: int) -> list[PlanPayment]:
    return list(db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan_id)
                                   .order_by(PlanPayment.due_date).execution_options(populate_existing=True)))


def fresh_plan(plan_id: int) -> CustomerPlan:
    return db.session.scalars(select(CustomerPlan).where(CustomerPlan.id == plan_id)
                              .execution_options(populate_existing=True)).one()


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def staff_user(staff) -> StaffUser:
    return db.session.get(StaffUser, staff.id)


def new_plan(customer, staff, *, method: str = "card", monthly: int | None = PRICE, quarterly: int | None = None,
             yearly: int | None = None, send: bool = True) -> CustomerPlan:
    """A plan made the way staff make it (create, then send for "Pay and accept" when it is a card plan)."""
    data = plan_setup.PlanInput("Comfort Club", "Two tune-ups a year", 2,
                                {"monthly": monthly, "quarterly": quarterly, "yearly": yearly}, method, None, None)
    plan = plan_setup.create_plan(db.session.get(Customer, customer.id), data, staff_user(staff))
    db.session.commit()
    if send and method == "card":
        plan_setup.send(plan, staff_user(staff))
        db.session.commit()
    return plan


def accepted_plan(customer, staff, card, frequency: str = "monthly", **prices) -> CustomerPlan:
    """SP-3: the customer pays the first payment with `card` today; the plan is active."""
    plan = new_plan(customer, staff, **prices)
    outcome = plan_billing.accept(db.session.get(Customer, customer.id), plan, frequency,
                                  db.session.get(Card, card.id), token=charges.new_token())
    assert outcome.status == "succeeded", outcome.explanation
    plan = fresh_plan(plan.id)
    assert plan.status == "active"
    return plan


def active_card_plan(customer, card, first_due: date, price: int = PRICE) -> CustomerPlan:
    return make_active_plan(customer, card, first_due, price)


def attempt_of(row: PlanPayment) -> ChargeAttempt:
    payment = db.session.get(Payment, row.payment_id)
    return db.session.get(ChargeAttempt, payment.charge_attempt_id)


def subjects(smtp, address: str) -> list[str]:
    return [str(m["Subject"]) for m in smtp.to(address)]


# --- a year of a monthly plan (SP-5, SP-10 billing date never moves) -------------------------------------------

def test_a_year_of_monthly_billing_on_the_31st_with_a_card_change_midway(ctx, stripe_sandbox, smtp):
    staff = make_staff("office")
    c = make_customer("Ana", "Year", email="ana.year@example.com")
    set_clock(date(2026, 1, 31))
    first_card = make_card(c.id, GOOD)
    second_card = make_card(c.id, GOOD_MC)
    plan = accepted_plan(c, staff, first_card)
    assert (plan.billing_anchor_day, plan.next_billing_date) == (31, date(2026, 2, 28))

    expected = [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31),
                date(2026, 6, 30), date(2026, 7, 31), date(2026, 8, 31), date(2026, 9, 30), date(2026, 10, 31),
                date(2026, 11, 30), date(2026, 12, 31)]
    changed_on = date(2026, 6, 15)
    for day in days(date(2026, 2, 1), date(2026, 12, 31)):
        if day == changed_on:
            set_clock(day, 9)
            assert plan_billing.set_card(fresh_plan(plan.id), db.session.get(Card, second_card.id),
                                         actor=staff_user(staff))
            db.session.commit()
            after = fresh_plan(plan.id)
            assert (after.billing_anchor_day, after.next_billing_date) == (31, date(2026, 6, 30))
        set_clock(day)
        scheduler.run_due()
        billed = rows(plan.id)
        # a bill exists for every due date reached, and each is paid the day it is due
        assert [r.due_date for r in billed] == [d for d in expected if d <= day], day
        assert {r.status for r in billed} == {"paid"}, day

    billed = rows(plan.id)
    assert len(billed) == 12
    assert [r.is_first_payment for r in billed] == [True] + [False] * 11
    assert all(r.amount_cents == PRICE and r.method == "card" for r in billed)
    assert len({r.payment_id for r in billed}) == 12
    plan = fresh_plan(plan.id)
    assert (plan.billing_anchor_day, plan.next_billing_date, plan.card_id) == (31, date(2027, 1, 31), second_card.id)

    # exactly one succeeded PaymentIntent per payment, on the card the plan had on that date
    pis = {pi["id"]: pi for pi in sandbox_intents()}
    assert len(pis) == 12
    for row in billed:
        pi = pis[attempt_of(row).stripe_payment_intent_id]
        card = first_card if row.due_date < changed_on else second_card
        assert (pi["status"], pi["amount"], pi["payment_method"]) == ("succeeded", PRICE,
                                                                     card.stripe_payment_method_id), row.due_date
        assert row.card_id == card.id
    # and the customer got one receipt per payment
    assert sum("receipt" in s.lower() for s in subjects(smtp, "ana.year@example.com")) == 12


def test_running_the_jobs_twice_at_the_same_moment_charges_and_emails_once(ctx, stripe_sandbox, smtp):
    c = make_customer("Ben", "Twice", email="ben.twice@example.com")
    set_clock(date(2026, 3, 2))
    good = make_card(c.id, GOOD)
    plan = active_card_plan(c, good, date(2026, 3, 2))
    c2 = make_customer("Cid", "Twice", email="cid.twice@example.com")
    bad = make_card(c2.id, DECLINED)
    plan2 = active_card_plan(c2, bad, date(2026, 3, 2))

    scheduler.run_due()
    first = (len(sandbox_intents()), len(smtp.messages))
    assert first[0] == 2
    scheduler.run_due()
    assert (len(sandbox_intents()), len(smtp.messages)) == first
    assert [r.status for r in rows(plan.id)] == ["paid"]
    assert [r.status for r in rows(plan2.id)] == ["failed"]
    assert sum("receipt" in s.lower() for s in subjects(smtp, "ben.twice@example.com")) == 1
    assert sum("did not go through" in s for s in subjects(smtp, "cid.twice@example.com")) == 1
    assert count(ChargeAttempt) == 2


# --- failed vs overdue (SP-5, SP-6, SP-7) -----------------------------------------------------------------------

def test_a_declined_card_bill_is_failed_and_an_uncollected_cash_bill_is_overdue_after_local_midnight(
        ctx, stripe_sandbox, smtp):
    staff = make_staff("office")
    due = date(2026, 3, 2)
    set_clock(due, 8)
    card_customer = make_customer("Dee", "Card")
    bad = make_card(card_customer.id, DECLINED)
    card_plan = active_card_plan(card_customer, bad, due)
    cash_customer = make_customer("Eve", "Cash")
    cash_plan = new_plan(cash_customer, staff, method="cash")
    plan_setup.activate_offline(cash_plan, "monthly", None, staff_user(staff))

    scheduler.run_due()
    (card_row,) = rows(card_plan.id)
    assert card_row.status == "failed" and card_row.method == "card"
    assert card_row.failure_code == "card_declined"
    assert card_row.failure_message == declines.explain("card_declined").reason
    (cash_row,) = rows(cash_plan.id)
    assert (cash_row.status, cash_row.method, cash_row.due_date) == ("scheduled", "cash", due)

    set_clock(due, 23, 59)  # late on the due day: not overdue yet
    scheduler.run_due()
    assert rows(cash_plan.id)[0].status == "scheduled"

    set_clock(due + timedelta(days=1), 0, 0)  # local midnight
    scheduler.run_due()
    (cash_row,) = rows(cash_plan.id)
    assert cash_row.status == "overdue"
    assert cash_row.failure_message == "Not collected by the end of the due day"
    assert rows(card_plan.id)[0].status == "failed"  # a card payment is never "overdue" (SP-7)
    assert len(sandbox_intents()) == 1  # nothing was charged for the cash plan


# --- SP-10: update the card with payments outstanding ----------------------------------------------------------

def _two_failed_payments(staff):
    """A plan on a declining card: the March bill failed and ran out of retries, the April bill just failed."""
    c = make_customer("Fay", "Owes", email="fay.owes@example.com")
    set_clock(date(2026, 3, 2), 9)
    bad = make_card(c.id, DECLINED)
    plan = active_card_plan(c, bad, date(2026, 3, 2))
    for day in days(date(2026, 3, 2), date(2026, 4, 2)):
        set_clock(day)
        scheduler.run_due()
    outstanding = rows(plan.id)
    assert [(r.due_date, r.status) for r in outstanding] == [(date(2026, 3, 2), "failed"),
                                                             (date(2026, 4, 2), "failed")]
    assert outstanding[0].retries_exhausted and not outstanding[1].retries_exhausted
    return c, plan


@pytest.mark.parametrize("choice", ["charge_new_card", "mark_paid"])
def test_sp10_outstanding_payments_charged_at_once_or_marked_paid(ctx, stripe_sandbox, smtp, choice):
    staff = make_staff("office")
    c, plan = _two_failed_payments(staff)
    before_pis = {pi["id"] for pi in sandbox_intents()}
    assert len(before_pis) == 5  # the March bill and its 3 retries, the April bill
    billing = (fresh_plan(plan.id).billing_anchor_day, fresh_plan(plan.id).next_billing_date)
    assert billing == (2, date(2026, 5, 2))
    set_clock(date(2026, 4, 2), 15)

    if choice == "charge_new_card":
        new = make_card(c.id, GOOD)
        assert plan_billing.set_card(fresh_plan(plan.id), db.session.get(Card, new.id), actor=staff_user(staff))
        db.session.commit()
        outcome = plan_billing.charge_outstanding(fresh_plan(plan.id), db.session.get(Card, new.id),
                                                  token=charges.new_token(), initiated_by="staff",
                                                  actor=staff_user(staff))
        assert outcome.status == "succeeded"
        new_pis = [pi for pi in sandbox_intents() if pi["id"] not in before_pis]
        assert len(new_pis) == 1
        assert (new_pis[0]["status"], new_pis[0]["amount"], new_pis[0]["payment_method"]) == (
            "succeeded", 2 * PRICE, new.stripe_payment_method_id)
        paid = rows(plan.id)
        assert [r.status for r in paid] == ["paid", "paid"]
        assert paid[0].payment_id == paid[1].payment_id == outcome.payment.id
        allocations = list(db.session.scalars(select(PaymentAllocation)
                                              .where(PaymentAllocation.payment_id == outcome.payment.id)))
        assert sorted((a.plan_payment_id, a.amount_cents) for a in allocations) == [(paid[0].id, PRICE),
                                                                                   (paid[1].id, PRICE)]
        assert db.session.get(Payment, outcome.payment.id).amount_cents == 2 * PRICE
        assert attempt_of(paid[0]).stripe_payment_intent_id == new_pis[0]["id"]
    else:
        assert plan_billing.mark_outstanding_paid(fresh_plan(plan.id), staff_user(staff)) == 2
        db.session.commit()
        marked = rows(plan.id)
        assert [r.status for r in marked] == ["marked_paid", "marked_paid"]
        assert {r.marked_paid_by_id for r in marked} == {staff.id}
        assert all(r.marked_paid_at is not None and r.payment_id is None for r in marked)
        assert {pi["id"] for pi in sandbox_intents()} == before_pis  # no money moved

    plan_after = fresh_plan(plan.id)
    assert (plan_after.billing_anchor_day, plan_after.next_billing_date) == billing
    # the April bill's retry slot passes: nothing is charged again
    count_now = len(sandbox_intents())
    set_clock(date(2026, 4, 3), 11)
    scheduler.run_due()
    assert len(sandbox_intents()) == count_now
    assert {r.status for r in rows(plan.id)} == ({"paid"} if choice == "charge_new_card" else {"marked_paid"})


# --- SP-3 pay and accept ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("frequency, price, next_date", [("monthly", 2_500, date(2026, 4, 2)),
                                                         ("yearly", 27_000, date(2027, 3, 2))])
def test_accept_with_a_good_card_pays_the_first_payment_and_activates(ctx, stripe_sandbox, frequency, price,
                                                                      next_date):
    staff = make_staff("office")
    c = make_customer("Gus", "Accepts")
    set_clock(date(2026, 3, 2))
    card = make_card(c.id, GOOD)
    plan = new_plan(c, staff, monthly=2_500, yearly=27_000)
    assert plan.status == "pending"
    outcome = plan_billing.accept(db.session.get(Customer, c.id), plan, frequency, db.session.get(Card, card.id),
                                  token=charges.new_token())
    assert outcome.status == "succeeded"
    plan = fresh_plan(plan.id)
    assert (plan.status, plan.frequency, plan.price_cents, plan.card_id) == ("active", frequency, price, card.id)
    assert (plan.billing_anchor_day, plan.next_billing_date) == (2, next_date)
    (row,) = rows(plan.id)
    assert (row.status, row.is_first_payment, row.due_date, row.amount_cents) == ("paid", True, date(2026, 3, 2),
                                                                                  price)
    (pi,) = sandbox_intents()
    assert (pi["status"], pi["amount"], pi["payment_method"]) == ("succeeded", price, card.stripe_payment_method_id)
    assert attempt_of(row).stripe_payment_intent_id == pi["id"]


def test_a_declined_first_payment_leaves_the_plan_pending_and_is_never_retried(ctx, stripe_sandbox, smtp):
    staff = make_staff("office")
    c = make_customer("Hal", "Declined", email="hal.declined@example.com")
    set_clock(date(2026, 3, 2))
    bad = make_card(c.id, DECLINED)
    plan = new_plan(c, staff)
    outcome = plan_billing.accept(db.session.get(Customer, c.id), plan, "monthly", db.session.get(Card, bad.id),
                                  token=charges.new_token())
    assert outcome.status == "failed" and outcome.explanation.reason
    assert fresh_plan(plan.id).status == "pending"
    assert rows(plan.id) == []
    assert len(sandbox_intents()) == 1
    start = clock.now()
    for hours in (1, 24, 48, 72, 24 * 31):
        clock.set_now(start + timedelta(hours=hours))
        scheduler.run_due()
    assert len(sandbox_intents()) == 1 and count(ChargeAttempt) == 1
    assert fresh_plan(plan.id).status == "pending" and rows(plan.id) == []
    assert not any("did not go through" in s for s in subjects(smtp, "hal.declined@example.com"))


def test_accept_refuses_active_cancelled_plans_and_frequencies_not_offered(ctx, stripe_sandbox):
    staff = make_staff("office")
    c = make_customer("Ivy", "Refused")
    set_clock(date(2026, 3, 2))
    card = make_card(c.id, GOOD)
    customer = db.session.get(Customer, c.id)

    active = accepted_plan(c, staff, card)
    pis, attempts = len(sandbox_intents()), count(ChargeAttempt)
    with pytest.raises(ServiceError, match="already active"):
        plan_billing.accept(customer, active, "monthly", db.session.get(Card, card.id), token=charges.new_token())
    db.session.rollback()

    cancelled = new_plan(c, staff)
    plan_setup.cancel(cancelled, "Changed their mind", staff_user(staff))
    with pytest.raises(ServiceError, match="no longer be accepted"):
        plan_billing.accept(customer, fresh_plan(cancelled.id), "monthly", db.session.get(Card, card.id),
                            token=charges.new_token())
    db.session.rollback()

    monthly_only = new_plan(c, staff, monthly=PRICE)
    for frequency in ("quarterly", "yearly", None, "weekly"):
        with pytest.raises(ValidationError) as refused:
            plan_billing.accept(customer, fresh_plan(monthly_only.id), frequency, db.session.get(Card, card.id),
                                token=charges.new_token())
        assert refused.value.field == "frequency"
        db.session.rollback()

    assert (len(sandbox_intents()), count(ChargeAttempt)) == (pis, attempts)
    assert fresh_plan(monthly_only.id).status == "pending" and fresh_plan(cancelled.id).status == "cancelled"
    assert rows(monthly_only.id) == [] and rows(cancelled.id) == []


# --- SP-12 cancel ---------------------------------------------------------------------------------------------

def test_cancel_a_card_plan_keeps_paid_payments_and_refunds_the_last_one_in_the_sandbox(ctx, stripe_sandbox, smtp):
    staff = make_staff("office")
    c = make_customer("Jo", "Leaves", email="jo.leaves@example.com")
    set_clock(date(2026, 1, 15))
    card = make_card(c.id, GOOD)
    plan = accepted_plan(c, staff, card)
    set_clock(date(2026, 2, 15))
    scheduler.run_due()
    jan, feb = rows(plan.id)
    assert (jan.status, feb.status) == ("paid", "paid")

    set_clock(date(2026, 2, 20))
    plan_setup.cancel(fresh_plan(plan.id), "Moving out of the area", staff_user(staff), refund_last=True,
                      token=charges.new_token())
    plan = fresh_plan(plan.id)
    assert (plan.status, plan.cancel_reason, plan.next_billing_date) == ("cancelled", "Moving out of the area", None)
    jan, feb = rows(plan.id)
    assert (jan.status, feb.status) == ("paid", "refunded")
    jan_pi, feb_pi = attempt_of(jan).stripe_payment_intent_id, attempt_of(feb).stripe_payment_intent_id
    assert [r["amount"] for r in sandbox_refunds(feb_pi)] == [PRICE]
    assert sandbox_refunds(jan_pi) == []
    assert db.session.get(Payment, feb.payment_id).refunded_cents == PRICE

    for day in (date(2026, 3, 15), date(2026, 4, 15)):  # nothing is billed after cancelling
        set_clock(day)
        scheduler.run_due()
    assert len(rows(plan.id)) == 2 and len(sandbox_intents()) == 2
    assert sum("refund" in s.lower() for s in subjects(smtp, "jo.leaves@example.com")) == 1


def test_cancel_a_cash_plan_cancels_the_waiting_bill_and_its_payments_are_not_refunded_through_the_plan(
        ctx, stripe_sandbox):
    staff = make_staff("office")
    c = make_customer("Kim", "Cash")
    set_clock(date(2026, 3, 2))
    plan = new_plan(c, staff, method="cash")
    plan_setup.activate_offline(plan, "monthly", None, staff_user(staff))
    (march,) = rows(plan.id)
    cash = plan_billing.record_cash(fresh_plan(plan.id), [march], method="cash", reference=None,
                                    actor=staff_user(staff), token=charges.new_token())
    assert rows(plan.id)[0].status == "paid"

    # the cash payment of a plan cannot be refunded through the plan
    problem = refunds.why_not(db.session.get(Payment, cash.id))
    assert problem and "Cancel the plan" in problem
    with pytest.raises(ValidationError, match="Cancel the plan"):
        refunds.refund(db.session.get(Payment, cash.id), PRICE, "Asked for it back", staff_user(staff),
                       charges.new_token())
    db.session.rollback()
    assert count(Refund) == 0 and db.session.get(Payment, cash.id).refunded_cents == 0
    with pytest.raises(ValidationError):  # and there is no card payment to refund when cancelling
        plan_setup.cancel(fresh_plan(plan.id), "Closing", staff_user(staff), refund_last=True)
    db.session.rollback()
    assert fresh_plan(plan.id).status == "active"

    set_clock(date(2026, 4, 2))
    scheduler.run_due()
    assert [r.status for r in rows(plan.id)] == ["paid", "scheduled"]
    plan_setup.cancel(fresh_plan(plan.id), "Sold the house", staff_user(staff))
    plan = fresh_plan(plan.id)
    assert (plan.status, plan.cancel_reason, plan.cancelled_at is not None) == ("cancelled", "Sold the house", True)
    assert [(r.due_date, r.status) for r in rows(plan.id)] == [(date(2026, 3, 2), "paid"),
                                                               (date(2026, 4, 2), "cancelled")]
    set_clock(date(2026, 4, 3), 1)
    scheduler.run_due()  # a cancelled bill never turns overdue, and no new bills come
    set_clock(date(2026, 5, 2))
    scheduler.run_due()
    assert [r.status for r in rows(plan.id)] == ["paid", "cancelled"]
    assert len(sandbox_intents()) == 0


def test_cancelling_a_plan_in_dunning_stops_its_retries(ctx, stripe_sandbox, smtp):
    staff = make_staff("office")
    c = make_customer("Lea", "Stops", email="lea.stops@example.com")
    set_clock(date(2026, 3, 2))
    bad = make_card(c.id, DECLINED)
    plan = active_card_plan(c, bad, date(2026, 3, 2))
    scheduler.run_due()
    (row,) = rows(plan.id)
    assert row.status == "failed" and row.next_retry_at is not None

    set_clock(date(2026, 3, 2), 12)
    plan_setup.cancel(fresh_plan(plan.id), "Customer asked to stop", staff_user(staff))
    (row,) = rows(plan.id)
    assert (row.status, row.next_retry_at) == ("failed", None)  # still owed, no longer retried
    for day in (date(2026, 3, 3), date(2026, 3, 4), date(2026, 3, 5), date(2026, 4, 2)):
        set_clock(day)
        scheduler.run_due()
    assert len(sandbox_intents()) == 1 and len(rows(plan.id)) == 1
    assert sum("did not go through" in s for s in subjects(smtp, "lea.stops@example.com")) == 1
