"""SP-3 … SP-14, D-1 … D-8, AO-1 … AO-5, Q-3: service-plan money.

A plan bills on its anchor day every month, quarter or year; the billing date never moves (SP-10).
Each bill is a `PlanPayment` row (unique per plan and due date) with its lines: the plan's price and
the add-ons billed with it (AO-1). Card bills are charged off session on their due date through
`charges.charge_card`, with a deterministic idempotency key per payment and attempt number
(`plan_<payment id>_<n>`), so two job runners can never create the same attempt twice, and the
partial unique index on open attempts per plan stops a second charge while one is unsettled (D-5).
Cash/check/other bills not collected by the end of their due day become `overdue` (SP-6).

Failed card bills are retried on the dunning schedule counted from the first failure (D-1); hard
declines are retried only on another card (D-2); after the last retry the payment is "retries
exhausted" (D-3). First payments are never retried (D-4).

Transactions: charges go through `payments.charges`, which commits the attempt before Stripe is called, so
`accept`, `pay_outstanding` and `record_cash` commit; `run()` is a scheduler rule and commits per plan payment.
Everything else flushes and the caller commits.
"""
from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from portal import clock
from portal.extensions import db, execute_dml, get_existing
from portal.labels import label
from portal.models import (
    AddonStatus,
    Card,
    ChargeAttempt,
    Customer,
    CustomerPlan,
    Payment,
    PlanAddon,
    PlanPayment,
    PlanPaymentLine,
    PlanPaymentStatus,
    PlanStatus,
    StaffUser,
)
from portal.money import format_money
from portal.services.crm import messages
from portal.services.errors import NotFound, ServiceError, ValidationError
from portal.services.payments import cards, charges, declines
from portal.services.platform import activity, magic_links, mailer, settings, workers

PERIOD_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}
OUTSTANDING = ("failed", "overdue")
COLLECTED = ("paid", "marked_paid", "refunded", "partially_refunded")
BATCH_SIZE = 50
PAY_ALL = "pay_all"  # a portal charge for invoices and plan payments together (overview.owed)
EXPIRY_WARNING_DAYS = 30


# --- Dates ---------------------------------------------------------------------------------------------

def add_period(start: date, frequency: str, anchor_day: int, periods: int = 1) -> date:
    """The billing date `periods` cycles after `start`, on the anchor day (clamped to short months)."""
    months = start.year * 12 + (start.month - 1) + PERIOD_MONTHS[frequency] * periods
    year, month = divmod(months, 12)
    month += 1
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def billing_dates(plan: CustomerPlan, first: date, until: date, frequency: str | None = None) -> list[date]:
    """Every bill date of the plan from `first` (a billing date) to `until`, inclusive."""
    frequency = frequency or plan.frequency or (plan.offers[0] if plan.offers else "monthly")
    anchor = plan.billing_anchor_day or first.day
    dates: list[date] = []
    n = 0
    while True:
        d = add_period(first, frequency, anchor, n) if n else first
        if d > until or n > 1200:
            return dates
        dates.append(d)
        n += 1


def retry_schedule() -> list[int]:
    """D-1: hours after the first failure (default 24, 48, 72)."""
    raw = settings.get().dunning_retry_hours or ""
    hours = sorted({int(h) for h in raw.replace(" ", "").split(",") if h.isdigit() and 0 < int(h) <= 24 * 60})
    return hours


# --- Bills and add-ons (AO-1 … AO-5) --------------------------------------------------------------------

@dataclass
class BillLine:
    description: str
    amount_cents: int
    addon: PlanAddon | None = None
    installment: int | None = None


@dataclass
class Bill:
    lines: list[BillLine] = field(default_factory=list)

    @property
    def total_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)


def in_range(addon_start: date | None, addon_end: date | None, bill_date: date) -> bool:
    """AO-3: the dates win over the payment plan."""
    return (addon_start is None or bill_date >= addon_start) and (addon_end is None or bill_date <= addon_end)


def installment_amount(total_cents: int, installments: int, number: int) -> int:
    """AO-2: the total split evenly; the cents remainder goes on the last installment."""
    share = total_cents // installments
    return total_cents - share * (installments - 1) if number == installments else share


def addon_charge(addon: PlanAddon, bill_date: date, billed: int | None = None) -> tuple[int, int | None] | None:
    """What the add-on puts on a bill dated `bill_date` after `billed` earlier bills: (cents, installment)."""
    billed = addon.installments_billed if billed is None else billed
    if addon.status == "paid" or not in_range(addon.start_date, addon.end_date, bill_date):
        return None
    if addon.payment_plan == "recurring":
        return addon.amount_cents, None
    if addon.payment_plan == "one_time":
        return (addon.amount_cents, None) if billed == 0 else None
    n = addon.installments or 1
    if billed >= n:
        return None
    return installment_amount(addon.amount_cents, n, billed + 1), billed + 1


def bill_for(plan: CustomerPlan, bill_date: date, frequency: str | None = None) -> Bill:
    """The lines of the plan's bill dated `bill_date` (no side effects)."""
    frequency = frequency or plan.frequency
    price = plan.price_for(frequency)
    if price is None:
        price = plan.price_cents or 0
    bill = Bill([BillLine(f"{plan.name} ({label(frequency)})", price)])
    for addon in sorted(plan.addons, key=lambda a: a.id or 0):
        charged = addon_charge(addon, bill_date)
        if charged is None:
            continue
        amount, number = charged
        text = addon.name if number is None else f"{addon.name} ({number}/{addon.installments})"
        bill.lines.append(BillLine(text, amount, addon, number))
    return bill


def installments_that_fit(plan: CustomerPlan, *, installments: int, start_date: date | None,
                          end_date: date | None) -> int:
    """AO-4: how many of the plan's coming bills fall inside the add-on's dates (at most `installments`)."""
    first = plan.next_billing_date or plan.start_date or clock.today()
    last = end_date or plan.end_date
    if last is None:
        return installments
    if plan.end_date is not None:
        last = min(last, plan.end_date)
    dates = [d for d in billing_dates(plan, first, last) if in_range(start_date, end_date, d)]
    return min(len(dates), installments)


def refresh_addon_status(addon: PlanAddon) -> None:
    """AO-5: recurring → active; one-time/installments → receivable until every part is billed and paid."""
    if addon.payment_plan == "recurring":
        addon.status = AddonStatus.ACTIVE
        return
    needed = 1 if addon.payment_plan == "one_time" else (addon.installments or 1)
    if addon.installments_billed < needed:
        addon.status = AddonStatus.RECEIVABLE
        return
    unpaid = db.session.scalar(select(func.count()).select_from(PlanPaymentLine).join(PlanPayment)
                               .where(PlanPaymentLine.addon_id == addon.id,
                                      PlanPayment.status.not_in(COLLECTED)))
    addon.status = AddonStatus.PAID if not unpaid else AddonStatus.RECEIVABLE


def create_bill(plan: CustomerPlan, due_date: date, *, status: str = "scheduled", frequency: str | None = None,
                is_first: bool = False, card_id: int | None = None) -> PlanPayment:
    """Write the plan payment row and its lines, counting the add-ons as billed. Caller commits."""
    bill = bill_for(plan, due_date, frequency)
    method = plan.payment_method if plan.payment_method in ("card", "cash", "check", "other") else "card"
    payment = PlanPayment(plan_id=plan.id, due_date=due_date, amount_cents=bill.total_cents, status=status,
                          method=method, card_id=card_id if card_id is not None else plan.card_id,
                          is_first_payment=is_first, attempt_count=0, retries_exhausted=False, created_at=clock.now())
    db.session.add(payment)
    db.session.flush()
    for line in bill.lines:
        db.session.add(PlanPaymentLine(plan_payment_id=payment.id, description=line.description[:200],
                                       amount_cents=line.amount_cents, addon_id=line.addon.id if line.addon else None,
                                       installment=line.installment))
        if line.addon is not None:
            line.addon.installments_billed += 1
            line.addon.billed_cents += line.amount_cents
            refresh_addon_status(line.addon)
    return payment


# --- Locks ----------------------------------------------------------------------------------------------

# Statements of the nightly run's hot path, built once (building and cache-keying a statement cost about as much
# CPU as sending it; issue 16).
_LOCK_PLAN = (select(CustomerPlan).where(CustomerPlan.id == bindparam("plan_id")).with_for_update()
              .execution_options(populate_existing=True))
_OPEN_CHARGE = select(ChargeAttempt).where(
    (ChargeAttempt.plan_id == bindparam("plan_id"))
    | ((ChargeAttempt.purpose == PAY_ALL) & (ChargeAttempt.customer_id == bindparam("customer_id"))),
    ChargeAttempt.status.in_(charges.OPEN)).limit(1)
# a due row (locked, or skipped when another runner has it), its plan, customer and the customer's email addresses
# (for the receipt) in one statement
_DUE_ROW = (select(PlanPayment, CustomerPlan, Customer)
            .join(CustomerPlan, CustomerPlan.id == PlanPayment.plan_id)
            .join(Customer, Customer.id == CustomerPlan.customer_id)
            .options(joinedload(Customer.emails))
            .where(PlanPayment.id == bindparam("row_id"))
            .with_for_update(skip_locked=True, of=PlanPayment)
            .execution_options(populate_existing=True))
# the bills a charge pays, with their lines (add-ons are counted as paid)
_ATTEMPT_ROWS = (select(PlanPayment).where(PlanPayment.id.in_(bindparam("ids", expanding=True)))
                 .options(joinedload(PlanPayment.lines)).order_by(PlanPayment.due_date)
                 .execution_options(populate_existing=True))
_CLAIM_ATTEMPT = (update(PlanPayment)
                  .where(PlanPayment.id == bindparam("row_id"), PlanPayment.status == bindparam("seen_status"),
                         PlanPayment.attempt_count == bindparam("seen_count"))
                  .values(attempt_count=bindparam("next_count")).execution_options(synchronize_session=False))


def lock_plan(plan_id: int) -> CustomerPlan:
    return db.session.scalars(_LOCK_PLAN, {"plan_id": plan_id}).one()


def open_charge(plan: CustomerPlan) -> ChargeAttempt | None:
    """The plan's unsettled charge, or the customer's unsettled "Pay all" charge (it may pay this plan's bills)."""
    return db.session.scalars(_OPEN_CHARGE, {"plan_id": plan.id, "customer_id": plan.customer_id}).first()


def outstanding_payments(plan: CustomerPlan) -> list[PlanPayment]:
    return list(db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan.id,
                                                             PlanPayment.status.in_(OUTSTANDING))
                                   .order_by(PlanPayment.due_date)))


def _ids(attempt: ChargeAttempt) -> list[int]:
    return [int(x) for x in (attempt.plan_payment_ids or "").split(",") if x.isdigit()]


def _busy_error() -> ServiceError:
    return ServiceError(_("A payment for this plan is being processed. Wait a minute and reload the page."))


# --- Pay and accept (SP-3) ------------------------------------------------------------------------------

def check_acceptable(plan: CustomerPlan, frequency: str | None) -> None:
    if plan.status == "active":
        raise ServiceError(_("This plan is already active."))
    if plan.status in ("cancelled", "expired"):
        raise ServiceError(_("This plan is %(status)s and can no longer be accepted.", status=label(plan.status)))
    if plan.status != "pending":
        raise ServiceError(_("This plan has not been sent to you yet."))
    if frequency not in plan.offers:
        raise ValidationError("frequency", _("Choose one of the billing frequencies offered for this plan."))


def accept(customer: Customer, plan: CustomerPlan, frequency: str | None, card: Card, *, token: str | None
           ) -> charges.Outcome:
    """The customer pays the first payment; the plan becomes active only when it succeeds. Commits."""
    if plan.customer_id != customer.id:
        raise NotFound(_("Plan not found."))
    plan = lock_plan(plan.id)
    check_acceptable(plan, frequency)
    if open_charge(plan) is not None:
        raise _busy_error()
    plan.frequency = frequency
    plan.price_cents = plan.price_for(frequency)
    today = clock.today()
    amount = bill_for(plan, today, frequency).total_cents
    return charges.charge_card(customer, card, amount, token=token, purpose="plan_acceptance", off_session=False,
                               initiated_by="customer", plan_id=plan.id)


def _activate(plan: CustomerPlan, attempt: ChargeAttempt, payment: Payment) -> None:
    plan = lock_plan(plan.id)
    today = clock.today()
    if plan.status != "pending":
        activity.record(plan.customer_id, "plan", f"Plan “{plan.name}”: a first payment of "
                        f"{format_money(payment.amount_cents, payment.currency)} arrived while the plan was "
                        f"{plan.status}; it is kept on account. Refund it from the payment page if needed.",
                        plan_id=plan.id)
        return
    existing = db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan.id,
                                                            PlanPayment.due_date == today)).first()
    plan.status = PlanStatus.ACTIVE
    plan.accepted_at = clock.now()
    plan.card_id = attempt.card_id
    plan.payment_method = "card"
    plan.billing_anchor_day = today.day
    assert plan.frequency is not None  # accept() set it to an offered one before charging
    plan.start_date = plan.start_date if plan.start_date and plan.start_date <= today else today
    plan.next_billing_date = add_period(today, plan.frequency, plan.billing_anchor_day)
    row = existing or create_bill(plan, today, status="scheduled", frequency=plan.frequency, is_first=True,
                                  card_id=attempt.card_id)
    _mark_paid([row], payment, attempt.card_id)
    activity.record(plan.customer_id, "plan", f"Plan “{plan.name}” accepted ({label(plan.frequency)}, "
                    f"{format_money(plan.price_cents or 0, payment.currency)}); first payment "
                    f"{format_money(payment.amount_cents, payment.currency)} paid. Status: pending → active",
                    actor_kind="customer", plan_id=plan.id)
    card = db.session.get(Card, attempt.card_id)
    if card is not None and card.added_by == cards.ONCE:
        card.added_by = "customer"  # a plan's card stays on file: it pays the next bills


def _mark_paid(rows: list[PlanPayment], payment: Payment, card_id: int | None) -> None:
    left = payment.amount_cents
    for row in rows:
        take = min(row.amount_cents, left)
        left -= take
        row.status = PlanPaymentStatus.PAID
        row.payment_id = payment.id
        row.card_id = card_id or row.card_id
        row.next_retry_at = None
        charges.add_allocation(payment, take, plan_payment_id=row.id)
        for line in row.lines:  # (the add-on's paid count reads the rows after an autoflush)
            if line.addon_id:
                addon = db.session.get(PlanAddon, line.addon_id)
                if addon is not None:
                    refresh_addon_status(addon)


# --- Charging outstanding payments at once (SP-10 a, SP-11, SP-13) ---------------------------------------

def charge_outstanding(plan: CustomerPlan, card: Card, *, token: str | None, initiated_by: str,
                       actor: StaffUser | None = None, payment_ids: list[int] | None = None) -> charges.Outcome | None:
    """One charge for the total of the plan's outstanding payments (or the chosen ones). Commits.
    Returns None when nothing is outstanding."""
    plan = lock_plan(plan.id)
    if open_charge(plan) is not None:
        raise _busy_error()
    rows = outstanding_payments(plan)
    if payment_ids is not None:
        rows = [r for r in rows if r.id in payment_ids]
    if not rows:
        return None
    total = sum(r.amount_cents for r in rows)
    customer = get_existing(Customer, plan.customer_id)
    return charges.charge_card(customer, card, total, token=token, purpose="plan_payments",
                               off_session=initiated_by != "customer", initiated_by=initiated_by, actor=actor,
                               plan_id=plan.id, plan_payment_ids=[r.id for r in rows])


def mark_outstanding_paid(plan: CustomerPlan, actor: StaffUser) -> int:
    """SP-10 b: every outstanding payment becomes `marked_paid` with the staff user; no money moves. Caller commits."""
    plan = lock_plan(plan.id)
    if open_charge(plan) is not None:
        raise _busy_error()
    rows = outstanding_payments(plan)
    now = clock.now()
    for row in rows:
        row.status = PlanPaymentStatus.MARKED_PAID
        row.marked_paid_by_id = actor.id
        row.marked_paid_at = now
        row.next_retry_at = None
        for line in row.lines:
            if line.addon_id:
                addon = db.session.get(PlanAddon, line.addon_id)
                if addon is not None:
                    refresh_addon_status(addon)
    if rows:
        total = sum(r.amount_cents for r in rows)
        activity.record(plan.customer_id, "plan", f"Plan “{plan.name}”: {len(rows)} outstanding payment(s) "
                        f"({format_money(total, plan.currency)}) marked as paid; no money moved", staff=actor,
                        plan_id=plan.id)
    return len(rows)


def set_card(plan: CustomerPlan, card: Card, *, actor: StaffUser | None) -> bool:
    """The plan's future payments use `card`; the billing date does not change. Caller commits.
    Returns whether the card changed."""
    if card.customer_id != plan.customer_id or card.removed_at is not None:
        raise NotFound(_("Choose one of the cards on file."))
    plan = lock_plan(plan.id)
    if plan.status in ("cancelled", "expired"):
        raise ServiceError(_("This plan is %(status)s.", status=label(plan.status)))
    old = db.session.get(Card, plan.card_id) if plan.card_id else None
    if old is not None and old.id == card.id:
        return False
    plan.card_id = card.id
    plan.payment_method = "card"
    # failed rows keep the card that was declined: D-2 (pick_card) must know which card not to use again
    db.session.execute(update(PlanPayment).where(PlanPayment.plan_id == plan.id,
                                                 PlanPayment.status == "scheduled",
                                                 PlanPayment.method == "card")
                       .values(card_id=card.id).execution_options(synchronize_session=False))
    # a cash/check bill still waiting is now charged to the card
    db.session.execute(update(PlanPayment).where(PlanPayment.plan_id == plan.id, PlanPayment.status == "scheduled",
                                                 PlanPayment.method != "card")
                       .values(method="card", card_id=card.id).execution_options(synchronize_session=False))
    card.added_by = "staff" if card.added_by == cards.ONCE and actor else (
        "customer" if card.added_by == cards.ONCE else card.added_by)
    activity.record(plan.customer_id, "plan", f"Plan “{plan.name}”: card "
                    + (f"changed from {old.label} to {card.label}" if old else f"set to {card.label}")
                    + "; the billing date is unchanged", staff=actor,
                    actor_kind="staff" if actor else "customer", plan_id=plan.id)
    if actor is None and old is not None:
        notify_staff_card_changed(plan, old, card)
    return True


def record_cash(plan: CustomerPlan, rows: list[PlanPayment], *, method: str, reference: str | None, actor: StaffUser,
                token: str | None) -> Payment:
    """SP-13: staff record cash/check/other for outstanding or due payments. Commits."""
    plan = lock_plan(plan.id)
    if open_charge(plan) is not None:
        raise _busy_error()
    ids = [r.id for r in rows]
    fresh = list(db.session.scalars(select(PlanPayment).where(PlanPayment.id.in_(ids), PlanPayment.plan_id == plan.id)
                                    .execution_options(populate_existing=True)))
    payable = [r for r in fresh if r.status in OUTSTANDING + ("scheduled",) and r.due_date <= clock.today()]
    if not payable:
        raise ValidationError("payment_id", "Choose a payment that is due.")
    customer = get_existing(Customer, plan.customer_id)
    total = sum(r.amount_cents for r in payable)
    payment = charges.record_manual(customer, method=method, amount_cents=total, reference=reference, actor=actor,
                                    token=token, commit=False)
    if payment.allocations:  # the same form submitted twice
        db.session.rollback()
        return payment
    _mark_paid(payable, payment, None)
    for row in payable:
        row.method = method
    activity.record(plan.customer_id, "plan", f"Plan “{plan.name}”: {method} payment "
                    f"{format_money(total, payment.currency)} recorded for "
                    + ", ".join(r.due_date.isoformat() for r in payable), staff=actor, plan_id=plan.id)
    db.session.commit()
    return payment


# --- Outcomes of plan charges (called from services.charges) -------------------------------------------

def on_charge_succeeded(attempt: ChargeAttempt, *, payment: Payment) -> None:
    """Receiver of `events.charge_succeeded`: a plan's first payment activates it; a bill's charge pays it."""
    if not attempt.plan_id:
        return
    plan = db.session.get(CustomerPlan, attempt.plan_id)
    if plan is None:
        return
    if attempt.purpose == "plan_acceptance":
        _activate(plan, attempt, payment)
        return
    lock_plan(plan.id)
    rows = list(db.session.scalars(_ATTEMPT_ROWS, {"ids": _ids(attempt)}).unique())
    due = [r for r in rows if r.status not in COLLECTED]
    _mark_paid(due, payment, attempt.card_id)
    if attempt.card_id and plan.card_id != attempt.card_id and plan.status == "active":
        plan.card_id = attempt.card_id  # D-2: the card that worked carries on
    activity.record(plan.customer_id, "plan", f"Plan “{plan.name}”: "
                    + ", ".join(f"payment due {r.due_date.isoformat()}" for r in due)
                    + f" paid ({format_money(payment.amount_cents, payment.currency)})", plan_id=plan.id)


def on_pay_all_succeeded(attempt: ChargeAttempt, *, payment: Payment) -> None:
    """P-1: a "Pay all" charge paid these plan bills too: each becomes paid (its dunning ends). A bill collected
    meanwhile keeps its share on the customer's account. Receiver of `events.charge_succeeded`."""
    if attempt.purpose != PAY_ALL or attempt.plan_id or not attempt.plan_payment_ids:
        return
    rows = list(db.session.scalars(select(PlanPayment).where(PlanPayment.id.in_(_ids(attempt)))
                                   .order_by(PlanPayment.plan_id, PlanPayment.due_date)))
    for plan_id in sorted({r.plan_id for r in rows}):
        plan = lock_plan(plan_id)
        fresh = list(db.session.scalars(select(PlanPayment).where(PlanPayment.id.in_([r.id for r in rows]),
                                                                  PlanPayment.plan_id == plan_id)
                                        .order_by(PlanPayment.due_date).execution_options(populate_existing=True)))
        due = [r for r in fresh if r.status not in COLLECTED]
        for row in due:
            _mark_paid([row], payment, attempt.card_id)
        if due:
            activity.record(plan.customer_id, "plan", f"Plan “{plan.name}”: "
                            + ", ".join(f"payment due {r.due_date.isoformat()}" for r in due)
                            + f" paid with “Pay all” ({format_money(sum(r.amount_cents for r in due), plan.currency)})",
                            actor_kind="customer", plan_id=plan.id)
        for row in fresh:
            if row.status in COLLECTED and row not in due:
                activity.record(plan.customer_id, "payment", f"{format_money(row.amount_cents, plan.currency)} of a "
                                f"“Pay all” payment was not needed for the plan payment due {row.due_date.isoformat()}"
                                "; it stays on the customer's account", plan_id=plan.id)


def on_charge_failed(attempt: ChargeAttempt, *, explanation: declines.Explanation, **_facts: object) -> None:
    """D-1 … D-3, SP-14 for scheduled charges and retries; first payments (SP-3/D-4) and charges staff or the
    customer started on a page only show the reason there. Receiver of `events.charge_failed`."""
    if not attempt.plan_id:
        return
    plan = db.session.get(CustomerPlan, attempt.plan_id)
    if plan is None:
        return
    if attempt.purpose == "plan_acceptance":
        activity.record(plan.customer_id, "plan", f"Plan “{plan.name}”: the first payment was declined "
                        f"({explanation.reason}); the plan stays pending and is not retried", plan_id=plan.id)
        return
    if attempt.purpose != "plan_payment":
        return
    if attempt.decline_code == "not_submitted":
        return  # nothing reached Stripe: the next run charges it with a new attempt
    row = db.session.scalars(select(PlanPayment).where(PlanPayment.id == attempt.plan_payment_id).with_for_update()
                             .execution_options(populate_existing=True)).first()
    if row is None or row.status in COLLECTED:
        return
    _fail(plan, row, attempt.decline_code, explanation, attempt.card_id)


def next_retry_after(row: PlanPayment, moment: datetime) -> datetime | None:
    """D-1: the first slot of the schedule (hours after the first failure) later than `moment`."""
    if row.is_first_payment or row.first_failed_at is None:
        return None
    for hours in retry_schedule():
        slot = row.first_failed_at + timedelta(hours=hours)
        if slot > moment:
            return slot
    return None


def _fail(plan: CustomerPlan, row: PlanPayment, code: str | None, explanation: declines.Explanation,
          card_id: int | None) -> None:
    now = clock.now()
    row.status = PlanPaymentStatus.FAILED
    row.failure_code = code
    row.failure_message = explanation.reason
    row.card_id = card_id or row.card_id
    row.first_failed_at = row.first_failed_at or now
    row.next_retry_at = next_retry_after(row, now)
    row.retries_exhausted = row.next_retry_at is None
    hard = declines.is_hard_decline(code) or code == "no_card"
    state = ("retries exhausted" if row.next_retry_at is None else
             f"next retry {clock.to_local(row.next_retry_at):%Y-%m-%d %H:%M}"
             + (" (only with another card)" if hard else ""))
    activity.record(plan.customer_id, "failure", f"Plan “{plan.name}”: payment due {row.due_date.isoformat()} "
                    f"({format_money(row.amount_cents, plan.currency)}) failed: {explanation.reason} — {state}",
                    detail=code, plan_id=plan.id)
    _notify_failure(plan, row, explanation, hard)


def _notify_failure(plan: CustomerPlan, row: PlanPayment, explanation: declines.Explanation, hard: bool) -> None:
    """SP-14, D-1, D-3: the customer (reason + update-card link) and the business."""
    customer = get_existing(Customer, plan.customer_id)
    card = db.session.get(Card, row.card_id) if row.card_id else None
    if customer.primary_email and customer.can_log_in:
        mailer.queue_email("plan_payment_failed", customer.primary_email,
                           {"plan": plan, "row": row, "explanation": explanation, "hard": hard, "card": card,
                            "link": magic_links.portal_link(customer, f"/portal/plans/{plan.id}/card"),
                            "subject_args": {"plan": plan.name}}, customer=customer)
    messages.email_staff(customer, "plan_payment_failed_staff",
                         {"plan": plan, "row": row, "explanation": explanation, "hard": hard, "card": card},
                         admin_path=f"/admin/plans/{plan.id}",
                         subject_args={"plan": plan.name,
                                       "what": "retries exhausted" if row.retries_exhausted else "failed"})


def on_card_removed(card: Card, *, customer: Customer, replacement: Card | None, actor: StaffUser | None) -> None:
    """W-3, D-8: plans paid by a removed card move to the customer's default (or have no card until one is
    added); a customer removing the card of an active plan tells staff. Receiver of `events.card_removed`."""
    for plan in db.session.scalars(select(CustomerPlan).where(CustomerPlan.customer_id == customer.id,
                                                              CustomerPlan.card_id == card.id)):
        plan.card_id = replacement.id if replacement else None
        activity.record(customer.id, "plan", f"Plan “{plan.name}”: card {card.label} removed; "
                        + (f"now {replacement.label}" if replacement else "no card on file"), staff=actor,
                        plan_id=plan.id)
        if actor is None and plan.status == "active":  # D-8: the customer changed what pays for the plan
            notify_staff_card_changed(plan, card, replacement)


def notify_staff_card_changed(plan: CustomerPlan, old: Card | None, new: Card | None) -> None:
    """D-8: the customer removed or replaced a card that backs a plan or AutoPay."""
    customer = db.session.get(Customer, plan.customer_id) if plan is not None else None
    if customer is None:
        return
    messages.email_staff(customer, "card_changed_staff", {"plan": plan, "old": old, "new": new},
                         admin_path=f"/admin/plans/{plan.id}")


# --- Scheduled work (Q-3) -------------------------------------------------------------------------------

def run() -> dict:
    done = {"expired": expire_plans(), "billed": generate_bills(), "overdue": mark_overdue()}
    done.update(charge_due())
    done["card_warnings"] = warn_expiring_cards()
    return done


def expire_plans() -> int:
    today = clock.today()
    count = 0
    ids = db.session.scalars(select(CustomerPlan.id).where(CustomerPlan.status == "active",
                                                           CustomerPlan.end_date.is_not(None),
                                                           CustomerPlan.end_date < today)).all()
    for plan_id in ids:
        plan = db.session.scalars(select(CustomerPlan).where(CustomerPlan.id == plan_id,
                                                             CustomerPlan.status == "active")
                                  .with_for_update(skip_locked=True).execution_options(populate_existing=True)).first()
        if plan is None:
            db.session.rollback()
            continue
        plan.status = PlanStatus.EXPIRED
        plan.next_billing_date = None
        db.session.execute(update(PlanPayment).where(PlanPayment.plan_id == plan.id,
                                                     PlanPayment.status == "scheduled", PlanPayment.due_date > today)
                           .values(status="cancelled").execution_options(synchronize_session=False))
        assert plan.end_date is not None  # selected for an end date that passed
        activity.record(plan.customer_id, "plan", f"Plan “{plan.name}”: end date {plan.end_date.isoformat()} "
                        "passed. Status: active → expired", plan_id=plan.id)
        db.session.commit()
        count += 1
    return count


def generate_bills() -> int:
    """SP-5, SP-6: one payment row per plan per billing date up to today (each missed date after downtime too)."""
    today = clock.today()
    created = 0
    last_id = 0
    while True:
        ids = db.session.scalars(select(CustomerPlan.id).where(CustomerPlan.status == "active",
                                                               CustomerPlan.next_billing_date <= today,
                                                               CustomerPlan.id > last_id)
                                 .order_by(CustomerPlan.id).limit(BATCH_SIZE)).all()
        db.session.rollback()
        if not ids:
            return created
        for plan_id in ids:
            last_id = plan_id
            plan = db.session.scalars(select(CustomerPlan).where(CustomerPlan.id == plan_id,
                                                                 CustomerPlan.status == "active",
                                                                 CustomerPlan.next_billing_date <= today)
                                      .with_for_update(skip_locked=True)
                                      .execution_options(populate_existing=True)).first()
            if plan is None:
                db.session.rollback()
                continue
            try:
                while plan.next_billing_date is not None and plan.next_billing_date <= today:
                    due = plan.next_billing_date
                    if plan.end_date is not None and due > plan.end_date:
                        plan.next_billing_date = None
                        break
                    exists = db.session.scalar(select(func.count()).select_from(PlanPayment)
                                               .where(PlanPayment.plan_id == plan.id, PlanPayment.due_date == due))
                    if not exists:
                        create_bill(plan, due)
                        created += 1
                    assert plan.frequency is not None  # an active plan bills at a frequency
                    plan.next_billing_date = add_period(due, plan.frequency, plan.billing_anchor_day or due.day)
                db.session.commit()
            except IntegrityError:
                db.session.rollback()  # another runner wrote that bill; it advances the plan too


def mark_overdue() -> int:
    """SP-6: a cash/check/other bill not recorded by the end of its due day (business time) is overdue."""
    today = clock.today()
    count = 0
    while True:
        rows = list(db.session.scalars(select(PlanPayment).where(PlanPayment.status == "scheduled",
                                                                 PlanPayment.method != "card",
                                                                 PlanPayment.due_date < today)
                                       .order_by(PlanPayment.id).limit(BATCH_SIZE)
                                       .with_for_update(skip_locked=True)))
        if not rows:
            db.session.rollback()
            return count
        for row in rows:
            row.status = PlanPaymentStatus.OVERDUE
            row.failure_message = "Not collected by the end of the due day"
            plan = get_existing(CustomerPlan, row.plan_id)
            activity.record(plan.customer_id, "failure", f"Plan “{plan.name}”: {row.method} payment due "
                            f"{row.due_date.isoformat()} ({format_money(row.amount_cents, plan.currency)}) was not "
                            "collected: overdue", plan_id=plan.id)
            count += 1
        db.session.commit()


def _due_card_rows(now: datetime, after_plan_id: int) -> list[tuple[int, int]]:
    """(plan id, row id) of due card rows, by plan then due date: every due row of a batch of plans after
    `after_plan_id`."""
    today = clock.today()
    scheduled = (PlanPayment.status == "scheduled") & (PlanPayment.due_date <= today)
    retry = ((PlanPayment.status == "failed") & (PlanPayment.next_retry_at <= now)
             & PlanPayment.retries_exhausted.is_(False) & PlanPayment.is_first_payment.is_(False))
    due = (PlanPayment.method == "card") & (scheduled | retry) & (CustomerPlan.status == "active")
    plans = (select(PlanPayment.plan_id).join(CustomerPlan).where(due, PlanPayment.plan_id > after_plan_id)
             .group_by(PlanPayment.plan_id).order_by(PlanPayment.plan_id).limit(BATCH_SIZE))
    query = select(PlanPayment.plan_id, PlanPayment.id).join(CustomerPlan).where(
        due, PlanPayment.plan_id.in_(plans.scalar_subquery()))
    return [(int(p), int(r)) for p, r in db.session.execute(query.order_by(PlanPayment.plan_id,
                                                                             PlanPayment.due_date, PlanPayment.id))]


def charge_due() -> dict:
    """SP-5 and D-1: charge each due card bill and each retry that is due, exactly once. The charges run on the
    jobs pool (`platform.workers`: JOBS_CONCURRENCY at once, each worker its own session); each is claimed with
    `SKIP LOCKED` and committed on its own, as a single runner would. A plan's due rows (a retry and a new bill
    after downtime, say) are one work item, charged in due order by one worker: run side by side, the second would
    find the first's charge open and wait for the next run."""
    now = clock.now()
    done = {"charged": 0, "declined": 0, "retry_skipped": 0, "busy": 0}
    done.update(workers.run(_due_plans(now), lambda row_ids: [_charge_one(row_id, now) for row_id in row_ids]))
    return done


def _due_plans(now: datetime) -> Iterator[list[int]]:
    """Each plan's due row ids, a batch of plans at a time (the caller's session holds no transaction while the
    pool works)."""
    last_plan = 0
    while True:
        rows = _due_card_rows(now, last_plan)
        db.session.rollback()
        if not rows:
            return
        last_plan = rows[-1][0]
        by_plan: dict[int, list[int]] = {}
        for plan_id, row_id in rows:
            by_plan.setdefault(plan_id, []).append(row_id)
        yield from by_plan.values()


def pick_card(plan: CustomerPlan, row: PlanPayment) -> Card | None:
    """D-2: a card added since the last failure is used first; a hard-declined card is not used again."""
    customer_cards = cards.active_cards(get_existing(Customer, plan.customer_id))
    hard_card = row.card_id if row.status == "failed" and (declines.is_hard_decline(row.failure_code)
                                                            or row.failure_code == "no_card") else None
    candidates = [c for c in customer_cards if c.id != hard_card]
    if row.status == "failed" and row.first_failed_at is not None:
        newer = [c for c in candidates if c.created_at and c.created_at > row.first_failed_at
                 and c.id != row.card_id]
        if newer:
            return sorted(newer, key=lambda c: (not c.is_default, -c.id))[0]
    plan_card = next((c for c in candidates if c.id == plan.card_id), None)
    if plan_card is not None:
        return plan_card
    if row.status == "failed" and hard_card is not None:
        return None  # D-2: wait for a new card
    return None


def _charge_one(row_id: int, now: datetime) -> str | None:
    found = db.session.execute(_DUE_ROW, {"row_id": row_id}).unique().first()
    if found is None:
        db.session.rollback()
        return "busy"
    row, plan, customer = found.tuple()  # (the customer stays referenced: pick_card and the charge reuse it)
    due = (row.status == "scheduled" and row.due_date <= clock.today()) or (
        row.status == "failed" and row.next_retry_at is not None and row.next_retry_at <= now
        and not row.retries_exhausted and not row.is_first_payment)
    if not due or row.method != "card" or plan.status != "active" or open_charge(plan) is not None:
        db.session.rollback()
        return None
    card = pick_card(plan, row)
    if card is None:
        if row.status == "scheduled":
            _fail(plan, row, "no_card", declines.explain("no_card"), None)
            db.session.commit()
            return "declined"
        # D-2: a hard decline and no other card: this retry is skipped, the next one may find a new card
        _skip_retry(plan, row, now)
        db.session.commit()
        return "retry_skipped"
    # Claim the attempt number only if the row is still what was checked above. On PostgreSQL the row lock
    # guarantees it; SQLite ignores FOR UPDATE, and a runner whose reads straddled another runner's charge
    # (row read while that attempt was open, open_charge() read after it settled) would charge again.
    seen = row.attempt_count
    claimed = execute_dml(_CLAIM_ATTEMPT, {"row_id": row.id, "seen_status": row.status, "seen_count": seen,
                                           "next_count": seen + 1})
    if claimed.rowcount != 1:
        db.session.rollback()
        return "busy"
    from sqlalchemy.orm.attributes import set_committed_value

    set_committed_value(row, "attempt_count", seen + 1)
    key = f"plan_{row.id}_{row.attempt_count}"
    try:
        outcome = charges.charge_card(customer, card, row.amount_cents, token=None, key=key, purpose="plan_payment",
                                      off_session=True, initiated_by="system", plan_id=plan.id,
                                      plan_payment_ids=[row.id], plan_payment_id=row.id, key_is_new=True)
    except (ServiceError, IntegrityError):
        db.session.rollback()
        return "busy"
    if outcome.attempt.status == "failed" and outcome.attempt.decline_code == "not_submitted":
        return "not_submitted"  # nothing reached Stripe (rate limited): the next run charges it again
    return "charged" if outcome.attempt.status == "succeeded" else (
        "declined" if outcome.attempt.status == "failed" else None)


def _skip_retry(plan: CustomerPlan, row: PlanPayment, now: datetime) -> None:
    row.next_retry_at = next_retry_after(row, now)
    if row.next_retry_at is not None:
        activity.record(plan.customer_id, "plan", f"Plan “{plan.name}”: retry of the payment due "
                        f"{row.due_date.isoformat()} skipped: the card was declined for good and there is no new "
                        "card yet", plan_id=plan.id)
        return
    row.retries_exhausted = True
    activity.record(plan.customer_id, "failure", f"Plan “{plan.name}”: payment due {row.due_date.isoformat()} — "
                    "retries exhausted (no new card was added)", plan_id=plan.id)
    _notify_failure(plan, row, declines.explain(row.failure_code), True)


def warn_expiring_cards() -> int:
    """D-7: 30 days before a card backing an active plan or AutoPay expires, email the customer once."""
    today = clock.today()
    horizon = today + timedelta(days=EXPIRY_WARNING_DAYS)
    backing_plan = select(CustomerPlan.card_id).where(CustomerPlan.status == "active",
                                                      CustomerPlan.card_id.is_not(None))
    autopay = select(Customer.id).where(Customer.autopay_enabled.is_(True))
    q = (select(Card).where(Card.removed_at.is_(None), Card.expiry_warning_sent_at.is_(None),
                            Card.exp_year.is_not(None), Card.exp_month.is_not(None),
                            (Card.id.in_(backing_plan)) | (Card.is_default.is_(True) & Card.customer_id.in_(autopay)))
         .order_by(Card.id))
    sent = 0
    for card in db.session.scalars(q).all():
        expires = card_expires_on(card)
        if expires > horizon or expires < today:
            continue
        claimed = execute_dml(update(Card).where(Card.id == card.id, Card.expiry_warning_sent_at.is_(None))
                                     .values(expiry_warning_sent_at=clock.now())
                                     .execution_options(synchronize_session=False))
        if claimed.rowcount != 1:
            db.session.rollback()
            continue
        customer = get_existing(Customer, card.customer_id)
        if customer.primary_email and customer.can_log_in:
            mailer.queue_email("card_expiring", customer.primary_email,
                               {"card": card, "expires": expires,
                                "link": magic_links.portal_link(customer, "/portal/wallet")}, customer=customer)
        activity.record(customer.id, "card", f"{card.label} expires {expires.isoformat()}: the customer was asked "
                        "to update it")
        db.session.commit()
        sent += 1
    return sent


def card_expires_on(card: Card) -> date:
    """A card works through the last day of its expiry month."""
    assert card.exp_year is not None and card.exp_month is not None  # callers pass only cards with an expiry
    return date(card.exp_year, card.exp_month, calendar.monthrange(card.exp_year, card.exp_month)[1])


def expiring_soon(card: Card | None, today: date | None = None) -> bool:
    if card is None or not card.exp_year or not card.exp_month:
        return False
    today = today or clock.today()
    return card_expires_on(card) <= today + timedelta(days=EXPIRY_WARNING_DAYS)


def due_now(plan: CustomerPlan) -> list[PlanPayment]:
    """SP-13: the bills staff can collect now: outstanding, or scheduled for today or earlier; oldest first."""
    return list(db.session.scalars(select(PlanPayment).where(
        PlanPayment.plan_id == plan.id, PlanPayment.status.in_(OUTSTANDING + ("scheduled",)),
        PlanPayment.due_date <= clock.today()).order_by(PlanPayment.due_date)))


def charge_now(plan: CustomerPlan, card: Card, rows: list[PlanPayment], *, token: str | None,
               actor: StaffUser) -> charges.Outcome:
    """SP-13: one card charge for the chosen due bills (outstanding or scheduled for today). Commits (the money
    path commits the attempt before the card processor is called)."""
    plan = lock_plan(plan.id)
    if open_charge(plan) is not None:
        raise ServiceError("A payment for this plan is being processed. Wait a minute and reload the page.")
    return charges.charge_card(plan.customer, card, sum(r.amount_cents for r in rows), token=token,
                               purpose="plan_payments", off_session=True, initiated_by="staff", actor=actor,
                               plan_id=plan.id, plan_payment_ids=[r.id for r in rows])
