"""SP-8, SP-9, REP-2, REP-3: what is owed on plans and invoices, in bounded queries."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from sqlalchemy import TIMESTAMP, Date, Integer, String, and_, bindparam, case, func, literal, or_, select, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import contains_eager, joinedload, selectinload

from portal import clock
from portal.extensions import db
from portal.models import (
    ActivityEvent,
    ChargeAttempt,
    Customer,
    CustomerPlan,
    Invoice,
    Payment,
    PlanAddon,
    PlanPayment,
    PlanStatus,
    Refund,
    StaffUser,
)
from portal.models.types import UTCDateTime
from portal.pagination import page_number
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
    """SP-8: what the customer's plans owe, in one query (the plans with their failed and overdue sums)."""
    failed = func.sum(case((PlanPayment.status == "failed", PlanPayment.amount_cents), else_=0))
    overdue = func.sum(case((PlanPayment.status == "overdue", PlanPayment.amount_cents), else_=0))
    rows = db.session.execute(select(CustomerPlan, failed, overdue, func.count())
                              .join(PlanPayment, PlanPayment.plan_id == CustomerPlan.id)
                              .where(CustomerPlan.customer_id == customer.id,
                                     PlanPayment.status.in_(plan_billing.OUTSTANDING))
                              .group_by(CustomerPlan.id).order_by(CustomerPlan.id)).all()
    if not rows:
        return None
    owed = {plan.id: {"failed": int(f or 0), "overdue": int(o or 0), "count": int(n),
                      "total": int(f or 0) + int(o or 0)} for plan, f, o, n in rows}
    return Banner(sum(e["total"] for e in owed.values()), [plan for plan, *_ in rows], owed)


def banner_of(payments: list[PlanPayment]) -> Banner | None:
    """SP-8 from plan payments already loaded with their plans (the "what you owe" answer): no query."""
    owed: dict[int, dict] = {}
    plans: dict[int, CustomerPlan] = {}
    for p in payments:
        if p.status not in plan_billing.OUTSTANDING:
            continue
        entry = owed.setdefault(p.plan_id, {"failed": 0, "overdue": 0, "count": 0, "total": 0})
        entry[str(p.status)] += p.amount_cents
        entry["count"] += 1
        entry["total"] += p.amount_cents
        plans[p.plan_id] = p.plan
    if not owed:
        return None
    return Banner(sum(e["total"] for e in owed.values()), [plans[i] for i in sorted(plans)], owed)


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
    """One page of rows (oldest first); the bucket sums and counts are the database's, over the whole filter."""
    rows: list[OverdueRow] = field(default_factory=list)
    bucket_totals: dict = field(default_factory=dict)
    bucket_counts: dict = field(default_factory=dict)
    total_cents: int = 0
    page: int = 1
    pages: int = 1


PAGE_SIZE = 50


def _card_flag(card, today: date) -> str | None:
    if card is None:
        return "no card"
    status = card.expiry_status(today)
    if status == "expired":
        return "expired"
    if plan_billing.expiring_soon(card, today):
        return "expires soon"
    return None


def _dates(today: date) -> dict:
    """The bound dates of the overdue report's SELECTs: today and the bucket edges."""
    return {"today": today, "d30": today - timedelta(days=30), "d60": today - timedelta(days=60),
            "d90": today - timedelta(days=90)}


def _edge(name: str):
    return bindparam(name, type_=Date())


def _bucket_range(column, index: int | None) -> list:
    """The WHERE of one age bucket (BUCKETS' index) on a due-date column: a range each branch's index can read."""
    if index is None:
        return []
    edges = [None, _edge("d30"), _edge("d60"), _edge("d90"), None]
    newest, oldest = edges[index], edges[index + 1]  # bucket 0: due on or after today-30; 3: before today-90
    out = []
    if newest is not None:
        out.append(column < newest)
    if oldest is not None:
        out.append(column >= oldest)
    return out


def _owed_items(kind: str | None, *, first: bool = False, bucket: int | None = None, sums: bool = False):
    """Everything owed and late as one SELECT (kind, id, due date, amount, customer), a UNION ALL; `today` and the
    bucket edges bound (`_dates`). `first`: only each branch's oldest `first` rows (what a page needs, bound);
    `bucket`: one age bucket; `sums`: only what the bucket sums read (due date, amount)."""
    parts: list[tuple] = []  # (select, its due-date column, its id column)
    if kind in (None, "", "plan"):
        plan_rows = select(PlanPayment.due_date.label("due_date"), PlanPayment.amount_cents.label("amount")) if sums \
            else (select(literal("plan_payment", String).label("kind"), PlanPayment.id.label("id"),
                         PlanPayment.due_date.label("due_date"), PlanPayment.amount_cents.label("amount"),
                         CustomerPlan.customer_id.label("customer_id"))
                  .join(CustomerPlan, CustomerPlan.id == PlanPayment.plan_id))
        parts.append((plan_rows.where(PlanPayment.status.in_(plan_billing.OUTSTANDING),
                                      *_bucket_range(PlanPayment.due_date, bucket)),
                      PlanPayment.due_date, PlanPayment.id))
    if kind in (None, "", "invoice"):
        balance = case((Invoice.total_cents > Invoice.paid_cents, Invoice.total_cents - Invoice.paid_cents),
                       else_=0)
        invoice_rows = select(Invoice.due_date.label("due_date"), balance.label("amount")) if sums \
            else select(literal("invoice", String).label("kind"), Invoice.id.label("id"),
                        Invoice.due_date.label("due_date"), balance.label("amount"),
                        Invoice.customer_id.label("customer_id"))
        parts.append((invoice_rows.where(Invoice.status.in_(("open", "partially_paid")),
                                         Invoice.due_date < _edge("today"), *_bucket_range(Invoice.due_date, bucket)),
                      Invoice.due_date, Invoice.id))
    if first:  # each branch limited in its own subquery (SQLite allows no LIMIT in a UNION member)
        limited = [q.order_by(due, row_id).limit(bindparam("first", type_=Integer)).subquery()
                   for q, due, row_id in parts]
        selects = [select(*sub.c) for sub in limited]
    else:
        selects = [q for q, _, _ in parts]
    return (union_all(*selects) if len(selects) > 1 else selects[0]).subquery("owed")


def _bucket_expr(column):
    """The age bucket of a due date, as the database computes it (BUCKETS' index)."""
    return case((column >= _edge("d30"), 0), (column >= _edge("d60"), 1), (column >= _edge("d90"), 2), else_=3)


@lru_cache(maxsize=8)
def _bucket_sums_stmt(kind: str | None):
    """The overdue report's sums and counts per age bucket, built once per process (dates bound); the plan
    payments are not joined to their plans (a sum needs no customer)."""
    owed = _owed_items(kind, sums=True)
    in_bucket = _bucket_expr(owed.c.due_date)
    return select(in_bucket, func.coalesce(func.sum(owed.c.amount), 0), func.count()).group_by(in_bucket)


@lru_cache(maxsize=16)
def _page_keys_stmt(kind: str | None, bucket: int | None):
    """The overdue report's page of (kind, id), oldest first, built once per process (dates, `first`, `limit`,
    `offset` bound)."""
    page_rows = _owed_items(kind, first=True, bucket=bucket)
    return (select(page_rows.c.kind, page_rows.c.id)
            .order_by(page_rows.c.due_date, page_rows.c.kind, page_rows.c.id)
            .limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer)))


def overdue_report(today: date | None = None, bucket: str | None = None, kind: str | None = None,
                   page=1, per_page: int = PAGE_SIZE) -> OverdueReport:
    today = today or clock.today()
    kind = kind or None
    report = OverdueReport(bucket_totals={b: 0 for b in BUCKETS}, bucket_counts={b: 0 for b in BUCKETS})
    dates = _dates(today)
    for index, cents, count in db.session.execute(_bucket_sums_stmt(kind), dates):
        report.bucket_totals[BUCKETS[int(index)]] = int(cents)
        report.bucket_counts[BUCKETS[int(index)]] = int(count)
    chosen = BUCKETS.index(bucket) if bucket in BUCKETS else None
    report.total_cents = sum(report.bucket_totals.values()) if chosen is None else report.bucket_totals[bucket]
    rows = report.bucket_counts[bucket] if chosen is not None else sum(report.bucket_counts.values())
    report.pages = max(1, -(-rows // per_page))
    report.page = min(page_number(page), report.pages)
    keys = db.session.execute(_page_keys_stmt(kind, chosen), {
        **dates, "first": report.page * per_page, "limit": per_page, "offset": (report.page - 1) * per_page}).all()
    plan_ids = [i for k, i in keys if k == "plan_payment"]
    invoice_ids = [i for k, i in keys if k == "invoice"]
    payments, attempts = {}, {}
    if plan_ids:
        for p, tries in db.session.execute(_plan_rows_stmt(), {"ids": plan_ids}):
            payments[p.id], attempts[p.id] = p, int(tries)
    invoices = {i.id: i for i in db.session.scalars(_invoice_rows_stmt(), {"ids": invoice_ids})} \
        if invoice_ids else {}
    for k, i in keys:
        report.rows.append(_plan_row(payments[i], attempts.get(i, 0), today) if k == "plan_payment"
                           else _invoice_row(invoices[i], today))
    return report


@lru_cache(maxsize=1)
def _plan_rows_stmt():
    """The page's plan payments (`ids`) with their plans, customers and cards, and how many times each was charged,
    in one SELECT built once per process."""
    attempts = (select(func.count()).where(ChargeAttempt.plan_payment_id == PlanPayment.id,
                                           ChargeAttempt.purpose == "plan_payment")
                .correlate(PlanPayment).scalar_subquery())
    return (select(PlanPayment, attempts).join(PlanPayment.plan).join(CustomerPlan.customer)
            .outerjoin(CustomerPlan.card).where(PlanPayment.id.in_(bindparam("ids", expanding=True)))
            .options(contains_eager(PlanPayment.plan).contains_eager(CustomerPlan.customer),
                     contains_eager(PlanPayment.plan).contains_eager(CustomerPlan.card)))


@lru_cache(maxsize=1)
def _invoice_rows_stmt():
    """The page's invoices (`ids`) with their customers in one SELECT built once per process."""
    return (select(Invoice).join(Invoice.customer).where(Invoice.id.in_(bindparam("ids", expanding=True)))
            .options(contains_eager(Invoice.customer)))


def _plan_row(p: PlanPayment, attempts: int, today: date) -> OverdueRow:
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
    return OverdueRow("plan_payment", p.plan.customer, f"Plan “{p.plan.name}”", "admin.plan_view", p.plan_id,
                      p.amount_cents, p.due_date, age, bucket_of(age), p.status, reason, dunning, p.next_retry_at,
                      attempts, _card_flag(card, today) if p.method == "card" else None)


def _invoice_row(inv: Invoice, today: date) -> OverdueRow:
    assert inv.due_date is not None  # `due_date < today` selected it
    age = (today - inv.due_date).days
    return OverdueRow("invoice", inv.customer, f"Invoice {inv.number}", "admin.invoice_view", inv.id,
                      inv.balance_cents, inv.due_date, age, bucket_of(age), "overdue", "Past its due date",
                      "reminders" if inv.sent_at else "not sent")


# --- REP-3: the plan report -----------------------------------------------------------------------------

@dataclass
class PlanReport:
    active: int
    pending: int
    mrr_cents: int
    by_status: dict
    owing: list[tuple[CustomerPlan, dict]]
    plans: list[CustomerPlan]
    owing_count: int = 0
    page: int = 1
    pages: int = 1
    owing_page: int = 1
    owing_pages: int = 1
    history: list[tuple[date, int]] = field(default_factory=list)  # (month, MRR at its end), oldest first


def monthly_value(plan: CustomerPlan) -> int:
    """A plan's monthly recurring revenue: its price spread over its months, plus recurring add-ons per bill
    (rounded half up, as `_mrr_value` does in SQL)."""
    months = MONTHS_PER.get(plan.frequency or "monthly", 1)
    per_bill = (plan.price_cents or 0) + sum(a.amount_cents for a in plan.addons
                                              if a.payment_plan == "recurring" and a.status == "active")
    return (per_bill * 2 + months) // (2 * months)


def _recurring_addons():
    """Per plan: its active recurring add-ons' sum (joined once, not a subquery per plan)."""
    return (select(PlanAddon.plan_id.label("plan_id"), func.sum(PlanAddon.amount_cents).label("cents"))
            .where(PlanAddon.payment_plan == "recurring", PlanAddon.status == "active")
            .group_by(PlanAddon.plan_id).subquery("addons"))


def _mrr_value(addons):
    """monthly_value() as a SQL expression over CustomerPlan joined to `_recurring_addons()` (integer cents)."""
    months = case((CustomerPlan.frequency == "quarterly", 3), (CustomerPlan.frequency == "yearly", 12), else_=1)
    return ((func.coalesce(CustomerPlan.price_cents, 0) + func.coalesce(addons.c.cents, 0)) * 2 + months) \
        // (months * 2)


def mrr_now_and_history(today: date, months: int = 12) -> tuple[int, list[tuple[date, int]], dict[str, int]]:
    """Today's MRR (active plans), the MRR at the end of each of the last `months` months (the current one:
    today) and how many plans have each status, in one query. A plan counts from its start until it was
    cancelled or ended; add-ons as they are now."""
    ends = []
    first = today.replace(day=1)
    for _ in range(months):
        last_day = min(today, (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1))
        ends.append((first, last_day))
        first = (first - timedelta(days=1)).replace(day=1)
    ends.reverse()
    cutoffs = [datetime.combine(end + timedelta(days=1), datetime.min.time(), clock.business_tz()) for _m, end in ends]
    if db.session.get_bind().dialect.name == "postgresql":
        return _mrr_by_months(ends, cutoffs)
    params: dict = {}
    for k, (_month, end) in enumerate(ends):
        params[f"end_{k}"] = end
        params[f"cutoff_{k}"] = cutoffs[k]
    row = db.session.execute(_mrr_stmt(months), params).one()
    counts = {s.value: int(n) for s, n in zip(list(PlanStatus), row[months + 1:], strict=True)}
    return int(row[0]), [(month, int(cents)) for (month, _end), cents in zip(ends, row[1:months + 1], strict=True)], \
        counts


def _mrr_by_months(ends: list[tuple[date, date]], cutoffs: list[datetime]) -> tuple[
        int, list[tuple[date, int]], dict[str, int]]:
    """PostgreSQL: mrr_now_and_history's answer from plans grouped by status and by the months they were live in:
    `_mrr_months_stmt`. The plans counted in a month's MRR are the same as `_mrr_stmt`'s."""
    months = len(ends)
    history = [0] * months
    counts = {s.value: 0 for s in PlanStatus}
    mrr = 0
    for status, first, stop, value, n in db.session.execute(_mrr_months_stmt(), {
            "ends": [end for _month, end in ends], "cutoffs": [_naive_utc(c) for c in cutoffs], "months": months}):
        counts[str(status)] += int(n)
        if status == "active":
            mrr += int(value)
        if status in COUNTED and first is not None:
            for k in range(int(first), int(stop)):
                history[k] += int(value)
    return mrr, [(month, cents) for (month, _end), cents in zip(ends, history, strict=True)], counts


COUNTED = ("active", "cancelled", "expired")  # drafts and pending plans never earned


def _naive_utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None)


@lru_cache(maxsize=1)
def _mrr_months_stmt():
    """The plans' monthly values summed by status and by the months a plan counts in, built once per process. Month
    k (0 = the oldest) ends on `ends[k]`; a plan counts in months first ≤ k < stop: `first` is the number of
    month ends before its start (`width_bucket` over the sorted ends: those on or before the day before), `stop`
    the number of cutoffs (the instant after a month's end) on or before its cancellation and of month ends on or
    before its end date, the smaller (`months` when it has neither). At most a few hundred groups."""
    addons = _recurring_addons()
    ends, cutoffs = bindparam("ends", type_=ARRAY(Date())), bindparam("cutoffs", type_=ARRAY(TIMESTAMP()))
    months = bindparam("months", type_=Integer)
    started = func.coalesce(CustomerPlan.start_date, CustomerPlan.next_billing_date)
    first = func.width_bucket(started - literal(1, Integer), ends)
    stop = func.least(func.coalesce(func.width_bucket(CustomerPlan.cancelled_at, cutoffs), months),
                      func.coalesce(func.width_bucket(CustomerPlan.end_date, ends), months))
    plan = (select(CustomerPlan.status.label("status"), first.label("first"), stop.label("stop"),
                   _mrr_value(addons).label("value"))
            .outerjoin(addons, addons.c.plan_id == CustomerPlan.id).subquery("plan"))
    return select(plan.c.status, plan.c.first, plan.c.stop, func.sum(plan.c.value), func.count()) \
        .group_by(plan.c.status, plan.c.first, plan.c.stop)


@lru_cache(maxsize=4)
def _mrr_stmt(months: int):
    """mrr_now_and_history's SELECT, built once per process: each month's last day and the instant after it
    (`end_k`, `cutoff_k`) are parameters."""
    addons = _recurring_addons()
    # each plan's monthly value computed once (a derived table), not once per summed month
    plan = (select(CustomerPlan.status, CustomerPlan.cancelled_at, CustomerPlan.end_date,
                   func.coalesce(CustomerPlan.start_date, CustomerPlan.next_billing_date).label("started"),
                   _mrr_value(addons).label("value"))
            .outerjoin(addons, addons.c.plan_id == CustomerPlan.id)
            .offset(0).subquery("plan"))  # OFFSET 0: PostgreSQL would inline it and recompute the value per month
    value = plan.c.value
    counted = plan.c.status.in_(COUNTED)
    sums = [func.coalesce(func.sum(case((plan.c.status == "active", value), else_=0)), 0)]
    for k in range(months):
        end, cutoff = bindparam(f"end_{k}", type_=Date()), bindparam(f"cutoff_{k}", type_=UTCDateTime())
        live = and_(counted, plan.c.started <= end,
                    or_(plan.c.cancelled_at.is_(None), plan.c.cancelled_at >= cutoff),
                    or_(plan.c.end_date.is_(None), plan.c.end_date >= end))
        sums.append(func.coalesce(func.sum(case((live, value), else_=0)), 0))
    sums += [func.coalesce(func.sum(case((plan.c.status == s.value, 1), else_=0)), 0) for s in PlanStatus]
    return select(*sums).select_from(plan)


def plan_report(status: str | None = None, page=1, owing_page=1, per_page: int = 50) -> PlanReport:
    mrr, history, counts = mrr_now_and_history(clock.today())
    owing_number = page_number(owing_page)
    owing_rows, owing_count = _owing_page(owing_number, per_page)
    owing_pages = max(1, -(-owing_count // per_page))
    if owing_number > owing_pages:  # past the end: the last page
        owing_number = owing_pages
        owing_rows, owing_count = _owing_page(owing_number, per_page)
    number = page_number(page)
    listed = counts.get(status, 0) if status else sum(counts.values())  # the status counts read with the MRR
    if listed and number > -(-listed // per_page):  # past the end: the last page
        number = -(-listed // per_page)
    params: dict = {"limit": per_page, "offset": (number - 1) * per_page}
    if status:
        params["status"] = status
    plans = list(db.session.scalars(_plans_stmt(bool(status)), params))
    return PlanReport(active=counts.get("active", 0), pending=counts.get("pending", 0), mrr_cents=int(mrr),
                      by_status=counts,
                      owing=[(plan, {"failed": int(failed), "overdue": int(overdue), "total": int(total),
                                     "count": int(n)}) for plan, failed, overdue, total, n in owing_rows],
                      plans=plans, owing_count=owing_count, page=number,
                      pages=max(1, -(-listed // per_page)), owing_page=owing_number, owing_pages=owing_pages,
                      history=history)


@lru_cache(maxsize=2)
def _plans_stmt(by_status: bool):
    """One page of all plans (or those of one `status`), newest first, with their customers and add-ons (limit and
    offset bound; how many there are is the status counts'), built once per process: the page's ids from the
    created_at index, then their rows."""
    ids = select(CustomerPlan.id.label("id"), CustomerPlan.created_at.label("created_at"))
    if by_status:
        ids = ids.where(CustomerPlan.status == bindparam("status", type_=String()))
    page = (ids.order_by(CustomerPlan.created_at.desc(), CustomerPlan.id.desc())
            .limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer)).subquery("page"))
    return (select(CustomerPlan).join(page, page.c.id == CustomerPlan.id)
            .options(joinedload(CustomerPlan.customer), selectinload(CustomerPlan.addons))
            .order_by(page.c.created_at.desc(), page.c.id.desc()))


def _owing_page(number: int, per_page: int) -> tuple[list, int]:
    """One page of the plans that owe, most owed first, with their customers, and how many plans owe: a window
    count over the grouped rows (the grouping read once) before the page is joined to its plans. Past the end there
    are no rows to carry the count: it is read alone."""
    page, owing = _owing_stmts()
    rows = list(db.session.execute(page, {"limit": per_page, "offset": (number - 1) * per_page}))
    if rows:
        return [row[:5] for row in rows], int(rows[0][5])
    if number == 1:
        return [], 0
    return [], db.session.scalar(select(func.count()).select_from(owing)) or 0


@lru_cache(maxsize=1)
def _owing_stmts():
    """_owing_page's SELECT (the page bound: limit, offset) and the grouped rows it pages; built once per process."""
    owing = (select(PlanPayment.plan_id.label("plan_id"),
                    func.sum(case((PlanPayment.status == "failed", PlanPayment.amount_cents), else_=0))
                    .label("failed"),
                    func.sum(case((PlanPayment.status == "overdue", PlanPayment.amount_cents), else_=0))
                    .label("overdue"),
                    func.sum(PlanPayment.amount_cents).label("total"), func.count().label("n"))
             .where(PlanPayment.status.in_(plan_billing.OUTSTANDING)).group_by(PlanPayment.plan_id)
             .subquery("owing"))
    page = (select(owing, func.count().over().label("owing_count"))
            .order_by(owing.c.total.desc(), owing.c.plan_id)
            .limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer)).subquery("page"))
    stmt = (select(CustomerPlan, page.c.failed, page.c.overdue, page.c.total, page.c.n, page.c.owing_count)
            .join(page, page.c.plan_id == CustomerPlan.id).options(joinedload(CustomerPlan.customer))
            .order_by(page.c.total.desc(), page.c.plan_id))
    return stmt, owing


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
