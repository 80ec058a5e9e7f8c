"""AO-1 … AO-5: add-ons on a plan's bills, the seed's examples (WispHub "planes de pago"), run through the billing job
month by month with the moved clock. What is asserted is what staff and the customer see: the lines on each bill."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Customer, CustomerPlan, PlanAddon, PlanPayment, PlanPaymentLine, StaffUser
from portal.services.errors import ValidationError
from portal.services.payments import charges
from portal.services.plans import billing as plan_billing
from portal.services.plans import lifecycle as plan_setup
from portal.services.platform import scheduler
from tests.factories import make_card, make_customer, make_staff
from tests.helpers import set_clock

PRICE = 2_000
FIRST_BILL = date(2026, 4, 1)  # bills on the 1st: Apr 1, May 1, … Oct 1
BILLS = [date(2026, m, 1) for m in range(4, 11)]


# --- helpers -----------------------------------------------------------------------------------------------

def staff_user(staff) -> StaffUser:
    return db.session.get(StaffUser, staff.id)


def fresh_plan(plan_id: int) -> CustomerPlan:
    db.session.expire_all()
    return db.session.get(CustomerPlan, plan_id)


def cash_plan(staff) -> CustomerPlan:
    """A monthly cash plan activated on Mar 15 whose first bill is Apr 1 (anchor day 1)."""
    set_clock(date(2026, 3, 15))
    c = make_customer("Rosa", "Addon")
    data = plan_setup.PlanInput("Comfort Club", None, 2, {"monthly": PRICE}, "cash", None, None)
    plan = plan_setup.create_plan(db.session.get(Customer, c.id), data, staff_user(staff))
    db.session.commit()
    plan_setup.activate_offline(plan, "monthly", FIRST_BILL, staff_user(staff))
    plan = fresh_plan(plan.id)
    assert (plan.status, plan.billing_anchor_day, plan.next_billing_date) == ("active", 1, FIRST_BILL)
    return plan


def add(plan, staff, *, confirmed: bool = False, **fields) -> PlanAddon:
    data = plan_setup.AddonInput(fields.pop("name", "Filter kit"), fields.pop("amount_cents"),
                                 fields.pop("payment_plan"), fields.pop("installments", None), **fields)
    addon = plan_setup.add_addon(fresh_plan(plan.id), data, staff_user(staff), confirmed=confirmed)
    db.session.commit()
    return addon


def bills(plan_id: int) -> list[PlanPayment]:
    db.session.expire_all()
    return list(db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan_id)
                                   .order_by(PlanPayment.due_date)))


def addon_lines(row: PlanPayment, addon_id: int) -> list[PlanPaymentLine]:
    return [line for line in row.lines if line.addon_id == addon_id]


def run_monthly(plan_id: int, since: date = BILLS[0], through: date = BILLS[-1]) -> list[PlanPayment]:
    """Run the jobs on each bill date from `since` to `through`; every bill of the plan."""
    for day in BILLS:
        if not since <= day <= through:
            continue
        set_clock(day)
        scheduler.run_due()
    return bills(plan_id)


def addon_count() -> int:
    return db.session.scalar(select(func.count()).select_from(PlanAddon))


# --- AO-1 … AO-3: which bills carry the add-on, for how much --------------------------------------------------

def spec(payment_plan: str, amount_cents: int, installments: int | None = None, start: date | None = None,
         end: date | None = None) -> dict:
    """An add-on's fields as staff enter them."""
    return {"payment_plan": payment_plan, "amount_cents": amount_cents, "installments": installments,
            "start_date": start, "end_date": end}


# what the add-on puts on the bills of Apr 1, May 1, … Oct 1 (0 = not on that bill)
CASES = {
    # seed: "Recurrente" with no dates → on every bill, indefinitely
    "recurring, no dates": (spec("recurring", 1_500), [1_500] * 7),
    # seed: "Un solo pago" → once, on the next bill
    "one-time": (spec("one_time", 4_999), [4_999, 0, 0, 0, 0, 0, 0]),
    # seed: "Pago en 5 mensualidades" → on the next 5 bills
    "5 installments": (spec("installments", 25_000, 5), [5_000] * 5 + [0, 0]),
    # AO-2: the cents remainder goes on the last installment
    "100.00 in 3 installments": (spec("installments", 10_000, 3), [3_333, 3_333, 3_334, 0, 0, 0, 0]),
    "100.01 in 5 installments": (spec("installments", 10_001, 5), [2_000, 2_000, 2_000, 2_000, 2_001, 0, 0]),
    # seed: "desde el periodo de Abril hasta Agosto" (recurring with both dates)
    "recurring April to August": (spec("recurring", 1_500, start=date(2026, 4, 1), end=date(2026, 8, 31)),
                                  [1_500] * 5 + [0, 0]),
    # seed: only an end date (31 August) → every bill until then
    "recurring until Aug 31": (spec("recurring", 1_500, end=date(2026, 8, 31)), [1_500] * 5 + [0, 0]),
    # a start date in the future: only from that date
    "recurring from June": (spec("recurring", 1_500, start=date(2026, 6, 1)), [0, 0] + [1_500] * 5),
    "one-time from mid June": (spec("one_time", 4_999, start=date(2026, 6, 15)), [0, 0, 0, 4_999, 0, 0, 0]),
    "2 installments from June": (spec("installments", 9_999, 2, start=date(2026, 6, 1)),
                                 [0, 0, 4_999, 5_000, 0, 0, 0]),
    # seed: 4 installments, April 1 – June 30 → only April, May, June carry it (the dates win)
    "4 installments clipped April-June": (spec("installments", 40_000, 4, start=date(2026, 4, 1),
                                               end=date(2026, 6, 30)),
                                          [10_000, 10_000, 10_000, 0, 0, 0, 0]),
}


@pytest.mark.parametrize("fields, expected", list(CASES.values()), ids=list(CASES))
def test_addon_lines_on_consecutive_bills(ctx, stripe_sandbox, fields, expected):
    staff = make_staff("office")
    plan = cash_plan(staff)
    addon = add(plan, staff, confirmed=True, **fields)
    preview = plan_billing.bill_for(fresh_plan(plan.id), FIRST_BILL)  # a preview bills nothing
    assert preview.total_cents == PRICE + expected[0]
    assert db.session.get(PlanAddon, addon.id).installments_billed == 0

    rows = run_monthly(plan.id)
    assert [r.due_date for r in rows] == BILLS
    amounts = [sum(line.amount_cents for line in addon_lines(r, addon.id)) for r in rows]
    assert amounts == expected
    assert [r.amount_cents for r in rows] == [PRICE + a for a in expected]  # the bill's total includes it
    assert all(len(addon_lines(r, addon.id)) <= 1 for r in rows)
    assert all(r.lines[0].addon_id is None and r.lines[0].amount_cents == PRICE for r in rows)  # the plan's price
    if fields["payment_plan"] == "installments":
        numbered = [line for r in rows for line in addon_lines(r, addon.id)]
        n = fields["installments"]
        assert [line.installment for line in numbered] == list(range(1, len(numbered) + 1))
        assert [line.description for line in numbered] == [f"Filter kit ({i}/{n})" for i in range(1, len(numbered) + 1)]
    stored = db.session.get(PlanAddon, addon.id)
    assert stored.billed_cents == sum(expected)
    assert stored.installments_billed == sum(1 for a in expected if a)


# --- AO-4: installments that do not fit in the dates -----------------------------------------------------------

def test_installments_that_do_not_fit_warn_and_save_only_when_confirmed(ctx, stripe_sandbox):
    staff = make_staff("office")
    plan = cash_plan(staff)
    clipped = spec("installments", 40_000, 4, start=date(2026, 4, 1), end=date(2026, 6, 30))
    with pytest.raises(ValidationError) as warned:
        add(plan, staff, **clipped)
    db.session.rollback()
    assert warned.value.field == "confirm"
    assert "Only 3 of the 4 installments" in warned.value.message
    assert "2026-04-01" in warned.value.message and "2026-06-30" in warned.value.message
    assert "incomplete" in warned.value.message
    assert addon_count() == 0
    assert plan_billing.installments_that_fit(fresh_plan(plan.id), installments=4, start_date=date(2026, 4, 1),
                                              end_date=date(2026, 6, 30)) == 3

    # three installments fit in the same dates: no warning
    fits = add(plan, staff, name="Thermostat", payment_plan="installments", installments=3, amount_cents=9_000,
               start_date=date(2026, 4, 1), end_date=date(2026, 6, 30))
    assert addon_count() == 1

    saved = add(plan, staff, confirmed=True, **clipped)
    assert addon_count() == 2
    rows = run_monthly(plan.id)
    assert [len(addon_lines(r, saved.id)) for r in rows] == [1, 1, 1, 0, 0, 0, 0]
    assert [len(addon_lines(r, fits.id)) for r in rows] == [1, 1, 1, 0, 0, 0, 0]
    incomplete = db.session.get(PlanAddon, saved.id)
    assert (incomplete.installments_billed, incomplete.billed_cents, incomplete.status) == (3, 30_000, "receivable")


# --- AO-5: status ------------------------------------------------------------------------------------------

def test_status_active_receivable_paid_follows_the_bills_being_paid(ctx, stripe_sandbox):
    staff = make_staff("office")
    plan = cash_plan(staff)
    recurring = add(plan, staff, name="Rental", payment_plan="recurring", amount_cents=1_500)
    one_time = add(plan, staff, name="Filter kit", payment_plan="one_time", amount_cents=4_999)
    split = add(plan, staff, name="Thermostat", payment_plan="installments", installments=2, amount_cents=9_000)

    def statuses():
        db.session.expire_all()
        return tuple(db.session.get(PlanAddon, a.id).status for a in (recurring, one_time, split))

    assert statuses() == ("active", "receivable", "receivable")
    rows = run_monthly(plan.id, through=date(2026, 5, 1))  # two bills, not collected (overdue)
    assert [r.status for r in rows] == ["overdue", "scheduled"]
    assert statuses() == ("active", "receivable", "receivable")

    set_clock(date(2026, 5, 1), 12)
    plan_billing.record_cash(fresh_plan(plan.id), [rows[0]], method="cash", reference=None,
                             actor=staff_user(staff), token=charges.new_token())
    assert statuses() == ("active", "paid", "receivable")  # the one-time add-on's only bill is paid
    plan_billing.record_cash(fresh_plan(plan.id), [bills(plan.id)[1]], method="check", reference="1042",
                             actor=staff_user(staff), token=charges.new_token())
    assert statuses() == ("active", "paid", "paid")  # both installments billed and paid

    rows = run_monthly(plan.id, since=date(2026, 6, 1))  # paid add-ons no longer appear; the recurring one goes on
    later = [r for r in rows if r.due_date >= date(2026, 6, 1)]
    assert all(not addon_lines(r, one_time.id) and not addon_lines(r, split.id) for r in later)
    assert all(len(addon_lines(r, recurring.id)) == 1 for r in later)
    assert statuses() == ("active", "paid", "paid")


def test_installments_on_a_card_plan_are_paid_when_the_last_installment_bill_is_charged(ctx, stripe_sandbox):
    staff = make_staff("office")
    set_clock(date(2026, 3, 15))
    c = make_customer("Sol", "Card")
    card = make_card(c.id, "4242424242424242")
    plan = CustomerPlan(customer_id=c.id, name="Comfort Club", status="active", frequency="monthly",
                        offered_frequencies="monthly", price_monthly_cents=PRICE, price_cents=PRICE,
                        payment_method="card", card_id=card.id, billing_anchor_day=1, start_date=date(2026, 3, 1),
                        next_billing_date=FIRST_BILL, currency="USD")
    db.session.add(plan)
    db.session.commit()
    split = add(plan, staff, payment_plan="installments", installments=3, amount_cents=10_000)
    seen = []
    for day in BILLS[:4]:
        set_clock(day)
        scheduler.run_due()
        db.session.expire_all()
        seen.append(db.session.get(PlanAddon, split.id).status)
    assert seen == ["receivable", "receivable", "paid", "paid"]
    rows = bills(plan.id)
    assert [r.status for r in rows] == ["paid"] * 4
    assert [r.amount_cents for r in rows] == [PRICE + 3_333, PRICE + 3_333, PRICE + 3_334, PRICE]


# --- bad input ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, field", [
    (spec("installments", 10_000, 0), "installments"),
    (spec("installments", 100_000, 121), "installments"),
    (spec("installments", 10_000, None), "installments"),
    (spec("recurring", 1_500, start=date(2026, 6, 1), end=date(2026, 5, 31)), "end_date"),
    (spec("installments", 9_000, 3, start=date(2026, 6, 1), end=date(2026, 4, 1)), "end_date"),
    (spec("one_time", 0), "amount"),
    (spec("weekly", 1_500), "payment_plan"),
], ids=["0 installments", "121 installments", "no installments", "end before start", "installments end before start",
        "zero amount", "unknown payment plan"])
def test_bad_addon_input_is_refused_and_nothing_is_saved(ctx, stripe_sandbox, fields, field):
    staff = make_staff("office")
    plan = cash_plan(staff)
    with pytest.raises(ValidationError) as refused:
        add(plan, staff, confirmed=True, **fields)
    db.session.rollback()
    assert refused.value.field == field
    assert addon_count() == 0
    rows = run_monthly(plan.id, through=date(2026, 4, 1))
    assert [len(r.lines) for r in rows] == [1]  # the bill carries the plan's price only


def test_installment_limits_1_and_120_are_accepted(ctx, stripe_sandbox):
    staff = make_staff("office")
    plan = cash_plan(staff)
    add(plan, staff, payment_plan="installments", installments=1, amount_cents=5_000)
    add(plan, staff, name="Long", payment_plan="installments", installments=120, amount_cents=120_000)
    assert addon_count() == 2
    (row,) = run_monthly(plan.id, through=date(2026, 4, 1))
    assert sorted(line.amount_cents for line in row.lines) == [1_000, PRICE, 5_000]
