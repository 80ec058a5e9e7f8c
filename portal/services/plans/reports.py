"""SP-8, SP-9, REP-2, REP-3: what is owed on plans and invoices, in bounded queries."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from portal import clock
from portal.extensions import db
from portal.models import (
    ActivityEvent,
    ChargeAttempt,
    Customer,
    CustomerPlan,
    Invoice,
    Payment,
    PlanPayment,
    Refund,
    StaffUser,
)
from portal.services.payments import declines
from portal.services.plans import billing as plan_billing

BUCKETS = ("0–30", "31–60", "61–90", "90+")
MONTHS_PER = {"monthly": 1, "quarterly": 3, "yearly": 12}


def owed_by_plan(plan_ids: list[int]) -> dict[int, dict]:
    """Per plan: failed and overdue cents (SP-9)."""
    if not plan_ids:
        return {}
    rows = db.session.execute(select(PlanPayment.plan_id, PlanPayment.status, func.sum(PlanPayment.amount_cents),
                                     func.count()).where(PlanPayment.plan_id.in_(plan_ids),
                                                         PlanPayment.status.in_(plan_billing.OUTSTANDING))
                              .group_by(PlanPayment.plan_id, PlanPayment.status)).all()
    out: dict[int, dict] = {}
    for plan_id, status, cents, count in rows:
        entry = out.setdefault(plan_id, {"failed": 0, "overdue": 0, "count": 0, "total": 0})
        entry[status] = int(cents or 0)
        entry["count"] += count
        entry["total"] += int(cents or 0)
    return out


@dataclass
class Banner:
    total_cents: int
    plans: list[CustomerPlan]
    owed: dict[int, dict]

    @property
    def single_plan(self) -> CustomerPlan | None:
        """SP-8: "View details" only when everything owed belongs to one plan."""
        return self.plans[0] if len(self.plans) == 1 else None


def banner(customer: Customer) -> Banner | None:
    plan_ids = list(db.session.scalars(select(CustomerPlan.id).where(CustomerPlan.customer_id == customer.id)))
    owed = owed_by_plan(plan_ids)
    if not owed:
        return None
    plans = list(db.session.scalars(select(CustomerPlan).where(CustomerPlan.id.in_(owed.keys()))
                                    .order_by(CustomerPlan.id)))
    return Banner(sum(e["total"] for e in owed.values()), plans, owed)


def tiles(customer_id: int, plan_id: int | None = None) -> list[tuple[CustomerPlan, dict]]:
    """SP-9: plan tiles (the job's plan, or the customer's current plans) with what each owes."""
    q = select(CustomerPlan).where(CustomerPlan.customer_id == customer_id)
    q = q.where(CustomerPlan.id == plan_id) if plan_id else q.where(CustomerPlan.status.in_(("active", "pending")))
    plans = list(db.session.scalars(q.options(selectinload(CustomerPlan.card)).order_by(CustomerPlan.id).limit(10)))
    owed = owed_by_plan([p.id for p in plans])
    if not plan_id:  # plans that ended but still owe stay visible
        extra = [pid for pid in owed_by_plan(list(db.session.scalars(
            select(CustomerPlan.id).where(CustomerPlan.customer_id == customer_id)))) if pid not in owed]
        if extra:
            more = list(db.session.scalars(select(CustomerPlan).where(CustomerPlan.id.in_(extra))))
            plans += more
            owed.update(owed_by_plan(extra))
    empty = {"failed": 0, "overdue": 0, "count": 0, "total": 0}
    return [(p, owed.get(p.id, empty)) for p in plans]


# --- REP-2: the overdue dashboard -----------------------------------------------------------------------

def bucket_of(age_days: int) -> str:
    if age_days <= 30:
        return BUCKETS[0]
    if age_days <= 60:
        return BUCKETS[1]
    if age_days <= 90:
        return BUCKETS[2]
    return BUCKETS[3]


@dataclass
class OverdueRow:
    kind: str  # plan_payment / invoice
    customer: Customer
    what: str
    link_endpoint: str
    link_id: int
    amount_cents: int
    due_date: date
    age_days: int
    bucket: str
    status: str
    reason: str
    dunning: str
    next_retry_at: datetime | None = None
    attempts: int = 0
    card_flag: str | None = None


@dataclass
class OverdueReport:
    rows: list[OverdueRow] = field(default_factory=list)
    bucket_totals: dict = field(default_factory=dict)
    bucket_counts: dict = field(default_factory=dict)
    total_cents: int = 0


def _card_flag(card, today: date) -> str | None:
    if card is None:
        return "no card"
    status = card.expiry_status(today)
    if status == "expired":
        return "expired"
    if plan_billing.expiring_soon(card, today):
        return "expires soon"
    return None


def overdue_report(today: date | None = None, bucket: str | None = None, kind: str | None = None) -> OverdueReport:
    today = today or clock.today()
    report = OverdueReport(bucket_totals={b: 0 for b in BUCKETS}, bucket_counts={b: 0 for b in BUCKETS})
    if kind in (None, "", "plan"):
        payments = db.session.scalars(
            select(PlanPayment).where(PlanPayment.status.in_(plan_billing.OUTSTANDING))
            .options(selectinload(PlanPayment.plan).selectinload(CustomerPlan.customer),
                     selectinload(PlanPayment.plan).selectinload(CustomerPlan.card), selectinload(PlanPayment.card))
            .order_by(PlanPayment.due_date)).all()
        ids = [p.id for p in payments]
        attempts = dict(db.session.execute(
            select(ChargeAttempt.plan_payment_id, func.count()).where(ChargeAttempt.plan_payment_id.in_(ids),
                                                                      ChargeAttempt.purpose == "plan_payment")
            .group_by(ChargeAttempt.plan_payment_id)).all()) if ids else {}
        for p in payments:
            age = (today - p.due_date).days
            if p.status == "failed":
                reason = declines.explain(p.failure_code).reason if p.failure_code else (p.failure_message or "")
                if p.retries_exhausted:
                    dunning = "retries exhausted"
                elif p.next_retry_at:
                    dunning = f"next retry {clock.to_local(p.next_retry_at):%Y-%m-%d %H:%M}"
                else:
                    dunning = "not retried (first payment)" if p.is_first_payment else "no retry scheduled"
            else:
                reason = f"Not collected ({p.method})"
                dunning = "collect by hand"
            card = p.plan.card if p.method == "card" or p.plan.payment_method == "card" else None
            report.rows.append(OverdueRow(
                "plan_payment", p.plan.customer, f"Plan “{p.plan.name}”", "admin.plan_view", p.plan_id,
                p.amount_cents, p.due_date, age, bucket_of(age), p.status, reason, dunning, p.next_retry_at,
                attempts.get(p.id, 0), _card_flag(card, today) if p.method == "card" else None))
    if kind in (None, "", "invoice"):
        invoices = db.session.scalars(
            select(Invoice).where(Invoice.status.in_(("open", "partially_paid")), Invoice.due_date < today)
            .options(selectinload(Invoice.customer)).order_by(Invoice.due_date)).all()
        for inv in invoices:
            assert inv.due_date is not None  # `due_date < today` selected it
            age = (today - inv.due_date).days
            report.rows.append(OverdueRow(
                "invoice", inv.customer, f"Invoice {inv.number}", "admin.invoice_view", inv.id, inv.balance_cents,
                inv.due_date, age, bucket_of(age), "overdue", "Past its due date", "reminders" if inv.sent_at else
                "not sent"))
    if bucket in BUCKETS:
        report.rows = [r for r in report.rows if r.bucket == bucket]
    report.rows.sort(key=lambda r: (-r.age_days, r.customer.display_name))
    for r in report.rows:
        report.bucket_totals[r.bucket] += r.amount_cents
        report.bucket_counts[r.bucket] += 1
        report.total_cents += r.amount_cents
    return report


# --- REP-3: the plan report -----------------------------------------------------------------------------

@dataclass
class PlanReport:
    active: int
    pending: int
    mrr_cents: int
    by_status: dict
    owing: list[tuple[CustomerPlan, dict]]
    plans: list[CustomerPlan]


def monthly_value(plan: CustomerPlan) -> int:
    """A plan's monthly recurring revenue: its price spread over its months, plus recurring add-ons per bill."""
    months = MONTHS_PER.get(plan.frequency or "monthly", 1)
    per_bill = (plan.price_cents or 0) + sum(a.amount_cents for a in plan.addons
                                              if a.payment_plan == "recurring" and a.status == "active")
    return round(per_bill / months)


def plan_report(status: str | None = None) -> PlanReport:
    counts: dict[str, int] = dict(db.session.execute(select(CustomerPlan.status, func.count())
                                                     .group_by(CustomerPlan.status)).all())
    active = list(db.session.scalars(select(CustomerPlan).where(CustomerPlan.status == "active")
                                     .options(selectinload(CustomerPlan.addons))))
    owed = owed_by_plan(list(db.session.scalars(select(PlanPayment.plan_id).where(
        PlanPayment.status.in_(plan_billing.OUTSTANDING)).distinct())))
    owing_plans = list(db.session.scalars(select(CustomerPlan).where(CustomerPlan.id.in_(owed.keys()))
                                          .options(selectinload(CustomerPlan.customer))
                                          .order_by(CustomerPlan.id))) if owed else []
    q = select(CustomerPlan).options(selectinload(CustomerPlan.customer), selectinload(CustomerPlan.addons)) \
        .order_by(CustomerPlan.created_at.desc())
    if status:
        q = q.where(CustomerPlan.status == status)
    listing = list(db.session.scalars(q.limit(200)))
    return PlanReport(active=counts.get("active", 0), pending=counts.get("pending", 0),
                      mrr_cents=sum(monthly_value(p) for p in active), by_status=counts,
                      owing=[(p, owed[p.id]) for p in owing_plans], plans=listing)


# --- The staff plan page (SP-*) -------------------------------------------------------------------------

@dataclass
class PlanPage:
    """What the staff plan page shows besides the plan itself: its bills newest first, the money behind them
    (payments, refunds, charge attempts per bill), who marked bills paid, the plan's activity and what is owed."""
    payments: list[PlanPayment]
    money: dict[int, Payment]
    refunds: dict[int, list[Refund]]
    attempts: dict[int, list[ChargeAttempt]]
    marked_by: dict[int, StaffUser]
    events: list[ActivityEvent]
    owed: dict


def plan_page(plan: CustomerPlan) -> PlanPage:
    payments = list(db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan.id)
                                       .options(selectinload(PlanPayment.card), selectinload(PlanPayment.lines))
                                       .order_by(PlanPayment.due_date.desc())))
    payment_ids = [p.payment_id for p in payments if p.payment_id]
    money = {p.id: p for p in db.session.scalars(select(Payment).where(Payment.id.in_(payment_ids)))} \
        if payment_ids else {}
    refunds: dict[int, list[Refund]] = {}
    if payment_ids:
        for r in db.session.scalars(select(Refund).where(Refund.payment_id.in_(payment_ids))
                                    .order_by(Refund.created_at)):
            refunds.setdefault(r.payment_id, []).append(r)
    marked_ids = [p.marked_paid_by_id for p in payments if p.marked_paid_by_id]
    marked_by = {s.id: s for s in db.session.scalars(select(StaffUser).where(StaffUser.id.in_(marked_ids)))} \
        if marked_ids else {}
    events = list(db.session.scalars(select(ActivityEvent).where(ActivityEvent.plan_id == plan.id)
                                     .options(selectinload(ActivityEvent.actor))
                                     .order_by(ActivityEvent.created_at.desc(), ActivityEvent.id.desc()).limit(50)))
    owed = owed_by_plan([plan.id]).get(plan.id, {"failed": 0, "overdue": 0, "count": 0, "total": 0})
    return PlanPage(payments, money, refunds, _attempts_by_payment(plan, payments), marked_by, events, owed)


def _attempts_by_payment(plan: CustomerPlan, payments: list[PlanPayment]) -> dict[int, list[ChargeAttempt]]:
    out: dict[int, list[ChargeAttempt]] = {}
    if not payments:
        return out
    rows = db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.plan_id == plan.id)
                              .options(selectinload(ChargeAttempt.card)).order_by(ChargeAttempt.created_at))
    for attempt in rows:
        for pid in [int(x) for x in (attempt.plan_payment_ids or "").split(",") if x.isdigit()]:
            out.setdefault(pid, []).append(attempt)
    return out
