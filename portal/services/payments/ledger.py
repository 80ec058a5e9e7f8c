"""Read models for money pages and the transactions report (REP-1). Bounded queries, no per-row loads."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    ColumnElement,
    Date,
    Integer,
    Interval,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import joinedload
from sqlalchemy.sql.expression import Grouping

from portal.extensions import db
from portal.models import (
    Adjustment,
    Card,
    ChargeAttempt,
    ChargeAttemptInvoice,
    Customer,
    Invoice,
    Payment,
    PaymentAllocation,
    PlanPayment,
    Refund,
)
from portal.models.ledger_sums import LedgerDaySum
from portal.models.types import UTCDateTime
from portal.pagination import page_number
from portal.services.errors import found
from portal.services.payments import declines
from portal.services.platform import pg_copy, settings

PAYABLE = ("open", "partially_paid")


def open_invoices(customer: Customer, limit: int | None = None) -> list[Invoice]:
    return list(db.session.scalars(select(Invoice).where(Invoice.customer_id == customer.id,
                                                         Invoice.status.in_(PAYABLE))
                                   .order_by(Invoice.due_date, Invoice.id).limit(limit)))


@dataclass(slots=True)
class Entry:
    """One line of money history: a payment, a refund, an adjustment or a declined attempt."""

    when: datetime
    type: str  # payment / deposit / refund / adjustment / declined / unknown
    amount_cents: int
    status: str
    method: str | None = None
    card: str | None = None
    fee_cents: int = 0
    message: str | None = None
    payment_id: int | None = None
    customer: Customer | Who | None = None
    reference: str | None = None

    @property
    def net_cents(self) -> int:
        """What reached the business: 0 for a declined or unsettled attempt (its amount never moved)."""
        return self.amount_cents - self.fee_cents if self.counts else 0

    @property
    def counts(self) -> bool:
        """Money that moved (declined and unsettled attempts are shown, not counted)."""
        return self.type in ("payment", "deposit", "refund", "adjustment")


def _card_text(brand, last4) -> str | None:
    return f"{(brand or 'card').title()} •••• {last4}" if last4 else None


def _entries(payments, refund_rows, adjustments, attempts, customers: dict[int, Customer] | None = None) -> list[Entry]:
    customers = customers or {}
    out = []
    for p in payments:
        out.append(Entry(p.received_at, p.kind, p.amount_cents, p.status, p.method,
                         _card_text(p.card_brand, p.card_last4), p.fee_cents, None, p.id, customers.get(p.customer_id),
                         p.reference))
    for r, p in refund_rows:
        out.append(Entry(r.created_at, "refund", -r.amount_cents, r.status, r.method,
                         _card_text(p.card_brand, p.card_last4), 0, r.failure_reason or r.reason, p.id,
                         customers.get(p.customer_id)))
    for a in adjustments:
        out.append(Entry(a.created_at, "adjustment", a.amount_cents, "recorded", None, None, 0, a.reason,
                         a.payment_id, customers.get(a.customer_id)))
    for at, card in attempts:
        kind = "declined" if at.status == "failed" else "unknown"
        message = declines.staff_text(at.decline_code, at.failure_message) if at.status == "failed" else None
        out.append(Entry(at.created_at, kind, at.amount_cents, at.status, "card",
                         _card_text(card.brand, card.last4) if card else None, 0, message, None,
                         customers.get(at.customer_id)))
    out.sort(key=lambda e: e.when)
    return out


def invoice_history(invoice: Invoice) -> list[Entry]:
    payments = db.session.scalars(select(Payment).join(PaymentAllocation)
                                  .where(PaymentAllocation.invoice_id == invoice.id)).all()
    ids = [p.id for p in payments]
    refund_rows = db.session.execute(select(Refund, Payment).join(Payment, Refund.payment_id == Payment.id)
                                     .where(Refund.payment_id.in_(ids))).all() if ids else []
    adjustments = db.session.scalars(select(Adjustment).where(Adjustment.invoice_id == invoice.id)).all()
    attempts = db.session.execute(select(ChargeAttempt, Card).outerjoin(Card, ChargeAttempt.card_id == Card.id)
                                  .where((ChargeAttempt.invoice_id == invoice.id) | ChargeAttempt.id.in_(
                                      select(ChargeAttemptInvoice.attempt_id)
                                      .where(ChargeAttemptInvoice.invoice_id == invoice.id)),
                                         ChargeAttempt.status.in_(("failed", "pending", "unknown")))).all()
    return _entries(payments, refund_rows, adjustments, attempts)


@dataclass
class PaymentDetail:
    allocations: list = field(default_factory=list)  # (Invoice, cents)
    refunds: list = field(default_factory=list)
    adjustments: list = field(default_factory=list)
    attempt: ChargeAttempt | None = None
    plan_payments: list = field(default_factory=list)  # (PlanPayment, cents), their plans loaded
    credit_cents: int = 0  # what no invoice or plan payment holds: left on the customer's account


def payment_detail(payment: Payment) -> PaymentDetail:
    """What one payment paid (invoices, plan payments), its refunds and adjustments: a receipt's facts."""
    detail = _payment_detail(payment)
    used = sum(c for _, c in detail.allocations) + sum(c for _, c in detail.plan_payments)
    detail.credit_cents = max(payment.amount_cents - payment.refunded_cents - used, 0) \
        if payment.kind == "payment" else 0
    return detail


def _payment_detail(payment: Payment) -> PaymentDetail:
    return PaymentDetail(
        plan_payments=list(db.session.execute(
            select(PlanPayment, PaymentAllocation.amount_cents)
            .join(PaymentAllocation, PaymentAllocation.plan_payment_id == PlanPayment.id)
            .where(PaymentAllocation.payment_id == payment.id)
            .options(joinedload(PlanPayment.plan)).order_by(PlanPayment.due_date)).all()),
        allocations=list(db.session.execute(select(Invoice, PaymentAllocation.amount_cents).join(PaymentAllocation)
                                            .where(PaymentAllocation.payment_id == payment.id)).all()),
        refunds=list(db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)
                                        .order_by(Refund.created_at))),
        adjustments=list(db.session.scalars(select(Adjustment).where(Adjustment.payment_id == payment.id))),
        attempt=db.session.get(ChargeAttempt, payment.charge_attempt_id) if payment.charge_attempt_id else None)


# --- REP-1 --------------------------------------------------------------------------------------------

TYPES = ("payment", "deposit", "refund", "adjustment", "declined")
PAGE_SIZE = 50
DAILY_UP_TO = 62  # days; longer ranges are charted per month


@dataclass
class Bar:
    """One period of the money chart: money in (payments, deposits, positive adjustments) and out (refunds,
    negative adjustments), in cents."""
    label: str
    start: date
    money_in: int = 0
    money_out: int = 0


@dataclass
class Report:
    """One page of the rows; totals and the chart are the database's sums over the whole filter."""
    start: date
    end: date
    rows: list[Entry]
    types: tuple[str, ...]
    totals: dict
    page: int = 1
    pages: int = 1
    per_page: int = PAGE_SIZE
    bars: list[Bar] = field(default_factory=list)
    unit: str = "day"


def _range(start: date, end: date) -> tuple[datetime, datetime]:
    tz = ZoneInfo(settings.timezone_name())
    return datetime.combine(start, time.min, tz), datetime.combine(end + timedelta(days=1), time.min, tz)


@dataclass(slots=True)
class Who:
    """The customer of a report row: enough for its name and link, without loading a Customer per row."""
    id: int
    kind: str | None
    first_name: str | None
    last_name: str | None
    company_name: str | None

    @property
    def display_name(self) -> str:
        return Customer.display_name.fget(self)  # type: ignore[attr-defined]


COLUMNS = ("when", "type", "amount", "fee", "status", "method", "brand", "last4", "code", "note", "payment_id",
           "customer_id", "reference", "row_id")


def _text_null():
    return cast(null(), String)


def _labelled(values: list, slim: bool) -> list:
    """Each branch's columns, labelled alike (`slim`: the first four only)."""
    return [v.label(name) for name, v in zip(COLUMNS, values[:4] if slim else values, strict=False)]


def _union(types: tuple[str, ...], lo: datetime | ColumnElement[datetime] | None,
           hi: datetime | ColumnElement[datetime] | None, *, first: int | ColumnElement[int] | None = None,
           slim: bool = False, customer_id: int | None = None, newest_first: bool = False):
    """Every transaction of the chosen types in [lo, hi) as one SELECT of uniform columns (a UNION ALL).
    `first`: only each branch's first rows in time order (a page needs no more; each branch reads its index).
    `slim`: only (when, type, amount, fee), for the sums. `customer_id`: one customer's whole history instead of
    a date range, with the attempts still unsettled ("unknown") besides the declined ones."""
    if customer_id is not None:
        return _customer_union(customer_id, first=first, newest_first=newest_first)
    assert lo is not None and hi is not None
    branches = []  # (select, its time column, its id column)
    kinds = [k for k in ("payment", "deposit") if k in types]
    if kinds:
        branches.append((select(*_labelled([
            Payment.received_at, Payment.kind, Payment.amount_cents, Payment.fee_cents, cast(Payment.status, String),
            Payment.method, Payment.card_brand, Payment.card_last4, _text_null(), _text_null(), Payment.id,
            Payment.customer_id, Payment.reference, Payment.id], slim))
            .where(Payment.received_at >= lo, Payment.received_at < hi,
                   Payment.kind.in_(kinds) if len(kinds) < 2 else true()), Payment.received_at, Payment.id))
    if "refund" in types:
        q = select(*_labelled([
            Refund.created_at, literal("refund", String), -Refund.amount_cents, literal(0, Integer),
            cast(Refund.status, String), Refund.method, Payment.card_brand, Payment.card_last4, _text_null(),
            func.coalesce(Refund.failure_reason, Refund.reason), Payment.id, Payment.customer_id, _text_null(),
            Refund.id], slim))
        if not slim:
            q = q.join(Payment, Refund.payment_id == Payment.id)
        branches.append((q.where(Refund.created_at >= lo, Refund.created_at < hi), Refund.created_at, Refund.id))
    if "adjustment" in types:
        branches.append((select(*_labelled([
            Adjustment.created_at, literal("adjustment", String), Adjustment.amount_cents, literal(0, Integer),
            literal("recorded", String), _text_null(), _text_null(), _text_null(), _text_null(), Adjustment.reason,
            Adjustment.payment_id, Adjustment.customer_id, _text_null(), Adjustment.id], slim))
            .where(Adjustment.created_at >= lo, Adjustment.created_at < hi), Adjustment.created_at, Adjustment.id))
    if "declined" in types:
        q = select(*_labelled([
            ChargeAttempt.created_at, literal("declined", String), ChargeAttempt.amount_cents, literal(0, Integer),
            cast(ChargeAttempt.status, String), literal("card", String), Card.brand, Card.last4,
            ChargeAttempt.decline_code, ChargeAttempt.failure_message, cast(null(), Integer),
            ChargeAttempt.customer_id, _text_null(), ChargeAttempt.id], slim))
        if not slim:
            q = q.outerjoin(Card, ChargeAttempt.card_id == Card.id)
        branches.append((q.where(ChargeAttempt.status == "failed", ChargeAttempt.created_at >= lo,
                                 ChargeAttempt.created_at < hi), ChargeAttempt.created_at, ChargeAttempt.id))
    return _joined(branches, first, newest_first)


def _joined(branches: list, first: int | ColumnElement[int] | None, newest_first: bool):
    if not branches:
        return None
    if first is not None:  # each branch limited inside its own subquery (SQLite allows no LIMIT in a UNION member)
        limited = [q.order_by(*((when.desc(), row_id.desc()) if newest_first else (when, row_id)))
                   .limit(first).subquery() for q, when, row_id in branches]
        parts = [select(*sub.c) for sub in limited]
    else:
        parts = [q for q, _, _ in branches]
    return (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("tx")


def _customer_union(customer_id: int | ColumnElement[int], *, first: int | ColumnElement[int] | None,
                    newest_first: bool):
    """One customer's money history (the client card): payments, refunds, adjustments, unsettled and declined
    attempts, each branch on a (customer, date) index."""
    open_or_failed = ChargeAttempt.status.in_(("failed", "pending", "unknown"))
    refunds = _first_of(select(Refund.created_at, Refund.amount_cents, Refund.status, Refund.method,
                               Refund.failure_reason, Refund.reason, Refund.payment_id, Refund.id)
                        .where(Refund.customer_id == customer_id), Refund.created_at, Refund.id, first, newest_first)
    attempts = _first_of(select(ChargeAttempt.created_at, ChargeAttempt.status, ChargeAttempt.amount_cents,
                                ChargeAttempt.card_id, ChargeAttempt.decline_code, ChargeAttempt.failure_message,
                                ChargeAttempt.customer_id, ChargeAttempt.id)
                         .where(ChargeAttempt.customer_id == customer_id, open_or_failed), ChargeAttempt.created_at,
                         ChargeAttempt.id, first, newest_first)
    branches = [
        (select(*_labelled([
            Payment.received_at, Payment.kind, Payment.amount_cents, Payment.fee_cents, cast(Payment.status, String),
            Payment.method, Payment.card_brand, Payment.card_last4, _text_null(), _text_null(), Payment.id,
            Payment.customer_id, Payment.reference, Payment.id], False)).where(Payment.customer_id == customer_id),
         Payment.received_at, Payment.id),
        (select(*_labelled([
            refunds.c.created_at, literal("refund", String), -refunds.c.amount_cents, literal(0, Integer),
            cast(refunds.c.status, String), refunds.c.method, Payment.card_brand, Payment.card_last4, _text_null(),
            func.coalesce(refunds.c.failure_reason, refunds.c.reason), Payment.id, Payment.customer_id, _text_null(),
            refunds.c.id], False)).select_from(refunds).join(Payment, refunds.c.payment_id == Payment.id),
         refunds.c.created_at, refunds.c.id),
        (select(*_labelled([
            Adjustment.created_at, literal("adjustment", String), Adjustment.amount_cents, literal(0, Integer),
            literal("recorded", String), _text_null(), _text_null(), _text_null(), _text_null(), Adjustment.reason,
            Adjustment.payment_id, Adjustment.customer_id, _text_null(), Adjustment.id], False))
         .where(Adjustment.customer_id == customer_id), Adjustment.created_at, Adjustment.id),
        (select(*_labelled([
            attempts.c.created_at, case((attempts.c.status == "failed", "declined"), else_="unknown"),
            attempts.c.amount_cents, literal(0, Integer), cast(attempts.c.status, String),
            literal("card", String), Card.brand, Card.last4, attempts.c.decline_code,
            attempts.c.failure_message, cast(null(), Integer), attempts.c.customer_id, _text_null(),
            attempts.c.id], False)).select_from(attempts).outerjoin(Card, attempts.c.card_id == Card.id),
         attempts.c.created_at, attempts.c.id),
    ]
    return _joined(branches, first, newest_first)


def _first_of(stmt, when, row_id, first, newest_first: bool):
    """A branch's own first rows, before it joins the table that only names their card (the refunds' payment, the
    attempts' card): joined for the rows shown, not for all of the customer's (a generic plan expects few rows per
    customer and would join every refund of a long history before sorting)."""
    if first is None:
        return stmt.subquery()
    return stmt.order_by(*((when.desc(), row_id.desc()) if newest_first else (when, row_id))).limit(first).subquery()


def customer_history_count(customer_id, payment_count=None):
    """A SELECT of how many lines the customer's money history has (for a scalar subquery). `customer_id`: an int
    or a bound parameter; `payment_count`: an expression that already counts the customer's payments (the client
    card counts them with its lifetime sum, in one scan)."""
    parts = [select(func.count()).select_from(Payment).where(Payment.customer_id == customer_id).scalar_subquery()
             if payment_count is None else payment_count,
             select(func.count()).select_from(Refund).where(Refund.customer_id == customer_id).scalar_subquery(),
             select(func.count()).select_from(Adjustment).where(Adjustment.customer_id == customer_id)
             .scalar_subquery(),
             select(func.count()).select_from(ChargeAttempt)
             .where(ChargeAttempt.customer_id == customer_id,
                    ChargeAttempt.status.in_(("failed", "pending", "unknown"))).scalar_subquery()]
    return select(parts[0] + parts[1] + parts[2] + parts[3])


def customer_history_page(customer_id: int, page: int, per_page: int = 10) -> list[Entry]:
    """One page of the customer's money history, newest first, in one query (built once, then only bound)."""
    params = {"customer_id": customer_id, "first": page * per_page, "per_page": per_page,
              "skip": (page - 1) * per_page}
    return [entry_of(r) for r in db.session.execute(_customer_history_stmt(), params)]


@cache
def _customer_history_stmt():
    """The history page's SELECT with its customer and page as parameters: building the four-branch union costs
    more than running it (~1.6 ms), so a process builds it once."""
    tx = _customer_union(bindparam("customer_id", type_=Integer), first=bindparam("first", type_=Integer),
                         newest_first=True)
    return (_rows_of(tx, newest_first=True).limit(bindparam("per_page", type_=Integer))
            .offset(bindparam("skip", type_=Integer)))


def _rows_of(tx, newest_first: bool = False):
    """The union joined to its customers, in time order: what the page and the CSV read."""
    order = (tx.c.when.desc(), tx.c.type, tx.c.row_id.desc()) if newest_first else (tx.c.when, tx.c.type,
                                                                                     tx.c.row_id)
    return (select(tx, Customer.kind.label("c_kind"), Customer.first_name, Customer.last_name,
                   Customer.company_name).outerjoin(Customer, Customer.id == tx.c.customer_id).order_by(*order))


def entry_of(row) -> Entry:
    """One union row as an Entry. Declined attempts keep the attempted amount but count 0 (fee and net 0), and
    carry the staff wording of the decline (code and what to do)."""
    (when, kind, amount, fee, status, method, brand, last4, code, note, payment_id, customer_id, reference, _row_id,
     c_kind, first_name, last_name, company_name) = row  # unpacked once: a CSV year is 200k rows
    customer = Who(customer_id, c_kind, first_name, last_name, company_name) if customer_id is not None else None
    message = declines.staff_text(code, note) if kind == "declined" else note
    return Entry(when, kind, amount, status, method, _card_text(brand, last4) if last4 else None, fee, message,
                 payment_id, customer, reference)


def _periods(start: date, end: date) -> tuple[str, list[tuple[date, date]]]:
    """Local days when the range is short, else months: (unit, [(first day, day after)])."""
    if (end - start).days < DAILY_UP_TO:
        return "day", [(start + timedelta(days=i), start + timedelta(days=i + 1))
                       for i in range((end - start).days + 1)]
    out, first = [], start.replace(day=1)
    while first <= end:
        nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        out.append((max(first, start), nxt))
        first = nxt
    return "month", out


def _period_of(column, starts: list[datetime]):
    """SQLite: the period a UTC timestamp falls in, as an index into `starts` (each period's first instant), a
    CASE over the boundaries (PostgreSQL sums each period by a range scan instead: `_period_sums`)."""
    if len(starts) == 1:
        return literal(0, Integer)
    return case(*[(column < b, i - 1) for i, b in enumerate(starts[1:], 1)], else_=len(starts) - 1)


def _period_sums(types: tuple[str, ...], bounds: list[datetime]) -> list:
    """PostgreSQL: (period index, type, amount, fee, count, positive amounts) per period and source. What came before
    a boundary is what came before its nearest UTC midnight (the whole UTC days read from `ledger_day_sums`, kept by
    triggers: a year is ~1,000 rows) plus or minus what the tables hold between that midnight and the boundary (a
    local midnight is not a UTC one; at most 12 hours, summed by a scan of each table's date index, a LATERAL join
    over the ranges). So a period is its anchors' whole days plus its end's part minus its start's: each boundary's
    part is read once, and a day's chart reads 8 of its 24 hours from the tables (Los Angeles) instead of all of them.
    Payments and deposits count alike, so the tables' payments and deposits are summed together ("payment")."""
    stmt = _period_sums_stmt(tuple(types))
    if stmt is None:
        return []
    naive = [_naive_utc(b) for b in bounds]
    anchors, parts, signs = [], [], []
    for j, b in enumerate(naive):
        midnight = datetime.combine(b.date(), time.min)
        if b - midnight > timedelta(hours=12):
            midnight += timedelta(days=1)
        anchors.append(midnight)
        if b != midnight:  # before b = before the midnight + [midnight, b), or - [b, midnight)
            parts.append((-1 - j, min(midnight, b), max(midnight, b)))
            signs.append(1 if b > midnight else -1)
    days = [(i, lo.date(), hi.date()) for i, (lo, hi) in enumerate(zip(anchors, anchors[1:], strict=False))
            if lo < hi]
    rows = db.session.execute(stmt, {
        "raw_i": [r[0] for r in parts], "raw_lo": [r[1] for r in parts], "raw_hi": [r[2] for r in parts],
        "day_i": [d[0] for d in days], "day_lo": [d[1] for d in days], "day_hi": [d[2] for d in days]})
    sign_of = {r[0]: sign for r, sign in zip(parts, signs, strict=True)}
    periods = len(naive) - 1
    out: dict[tuple[int, str], list[int]] = {}

    def add(i: int, kind: str, sign: int, values) -> None:
        entry = out.setdefault((i, kind), [0, 0, 0, 0])
        for k, value in enumerate(values):
            entry[k] += sign * int(value or 0)

    for i, kind, *values in rows:
        if i >= 0:
            add(i, kind, 1, values)
            continue
        j, sign = -1 - i, sign_of[i]
        if j > 0:  # the end of period j - 1
            add(j - 1, kind, sign, values)
        if j < periods:  # the start of period j
            add(j, kind, -sign, values)
    return [(i, kind, *values) for (i, kind), values in sorted(out.items())]


@lru_cache(maxsize=32)
def _period_sums_stmt(types: tuple[str, ...]):
    """_period_sums' SELECT for a choice of types, built once per process; the ranges read from the tables and the
    days read from ledger_day_sums are bound arrays, each with its period's index."""
    stamps, days_type = ARRAY(TIMESTAMP()), ARRAY(Date())
    periods = func.unnest(bindparam("raw_i", type_=ARRAY(Integer)), bindparam("raw_lo", type_=stamps),
                          bindparam("raw_hi", type_=stamps)) \
        .table_valued("i", "lo", "hi").render_derived(name="periods", with_types=False)
    days = func.unnest(bindparam("day_i", type_=ARRAY(Integer)), bindparam("day_lo", type_=days_type),
                       bindparam("day_hi", type_=days_type)) \
        .table_valued("i", "lo", "hi").render_derived(name="days", with_types=False)
    parts = []

    def branch(kind: str, when, amount, fee, *where) -> None:
        sums = (select(func.coalesce(func.sum(amount), 0).label("amount"), func.coalesce(func.sum(fee), 0).label("fee"),
                       func.count().label("n"),
                       func.coalesce(func.sum(case((amount > 0, amount), else_=0)), 0).label("positive"))
                .where(when >= periods.c.lo, when < periods.c.hi, *where).lateral(f"{kind}_sums"))
        parts.append(select(periods.c.i, literal(kind, String).label("type"), sums.c.amount,
                            sums.c.fee, sums.c.n, sums.c.positive).select_from(periods).join(sums, true()))

    kept = [t for t in TYPES if t in types]
    if kept:
        d = LedgerDaySum
        sums = (select(d.type, func.sum(d.amount_cents).label("amount"), func.sum(d.fee_cents).label("fee"),
                       func.sum(d.n).label("n"), func.sum(d.positive_cents).label("positive"))
                .where(d.day >= days.c.lo, d.day < days.c.hi, d.type.in_(kept)).group_by(d.type).lateral("day_sums"))
        parts.append(select(days.c.i, sums.c.type, sums.c.amount, sums.c.fee, sums.c.n, sums.c.positive)
                     .select_from(days).join(sums, true()))
    kinds = [k for k in ("payment", "deposit") if k in types]
    if kinds:
        branch("payment", Payment.received_at, Payment.amount_cents, Payment.fee_cents,
               *([Payment.kind == kinds[0]] if len(kinds) == 1 else []))
    if "refund" in types:
        branch("refund", Refund.created_at, -Refund.amount_cents, literal(0, Integer))
    if "adjustment" in types:
        branch("adjustment", Adjustment.created_at, Adjustment.amount_cents, literal(0, Integer))
    if "declined" in types:  # only counted (declined money never moved): the partial index alone
        branch("declined", ChargeAttempt.created_at, literal(0, Integer), literal(0, Integer),
               ChargeAttempt.status == "failed")
    if not parts:
        return None
    return union_all(*parts) if len(parts) > 1 else parts[0]


_FOLD = text("""
WITH split AS (SELECT day, type FROM ledger_day_sums GROUP BY day, type HAVING count(*) > 1 LIMIT :days),
gone AS (DELETE FROM ledger_day_sums s USING split WHERE s.day = split.day AND s.type = split.type
         RETURNING s.day, s.type, s.amount_cents, s.fee_cents, s.n, s.positive_cents),
kept AS (INSERT INTO ledger_day_sums (day, type, amount_cents, fee_cents, n, positive_cents)
         SELECT day, type, sum(amount_cents), sum(fee_cents), sum(n), sum(positive_cents) FROM gone GROUP BY day, type
         HAVING sum(n) <> 0 OR sum(amount_cents) <> 0 OR sum(fee_cents) <> 0 OR sum(positive_cents) <> 0
         RETURNING 1)
SELECT (SELECT count(*) FROM split), (SELECT count(*) FROM kept)""")


_FOLD_CUSTOMERS = text("""
WITH split AS (SELECT customer_id FROM customer_payment_sums GROUP BY customer_id HAVING count(*) > 1
               LIMIT :customers),
gone AS (DELETE FROM customer_payment_sums s USING split WHERE s.customer_id = split.customer_id
         RETURNING s.customer_id, s.paid_cents, s.n),
kept AS (INSERT INTO customer_payment_sums (customer_id, paid_cents, n)
         SELECT customer_id, sum(paid_cents), sum(n) FROM gone GROUP BY customer_id
         HAVING sum(n) <> 0 OR sum(paid_cents) <> 0
         RETURNING 1)
SELECT (SELECT count(*) FROM split), (SELECT count(*) FROM kept)""")


def compact_day_sums(days: int = 5000, customers: int = 20000) -> dict:
    """Scheduler rule (PostgreSQL): fold each day's rows of differences in ledger_day_sums into one row per day and
    type (a day and type that sums to nothing disappears), and each customer's in customer_payment_sums into one.
    One statement deletes the rows and inserts their sums, so the totals never change; concurrent runs each fold
    only the rows they deleted, and writers only ever add rows, so nobody waits on anybody. Commits."""
    if db.session.get_bind().dialect.name != "postgresql":
        return {"days": 0}
    folded, kept = db.session.execute(_FOLD, {"days": days}).one()
    folded_customers, _ = db.session.execute(_FOLD_CUSTOMERS, {"customers": customers}).one()
    db.session.commit()
    return {"days": int(folded), "rows": int(kept), "customers": int(folded_customers)}


def _sums(types: tuple[str, ...], start: date, end: date) -> tuple[dict, str, list[Bar]]:
    """The totals over the whole filter and the chart's money in/out per period, in one grouped query."""
    unit, periods = _periods(start, end)
    bars = [Bar(p.strftime("%b %-d" if unit == "day" else "%b %Y"), p) for p, _ in periods]
    totals = {"amount": 0, "fee": 0, "net": 0, "count": 0, "declined": 0, "rows": 0}
    lo, hi = _range(start, end)
    starts = [_range(p, p)[0] for p, _ in periods]
    if db.session.get_bind().dialect.name == "postgresql":
        rows = _period_sums(types, starts + [hi])
    else:
        tx = _union(types, lo, hi, slim=True)
        if tx is None:
            return totals, unit, bars
        period = _period_of(tx.c.when, starts).label("period")
        rows = list(db.session.execute(select(period, tx.c.type, func.sum(tx.c.amount), func.sum(tx.c.fee),
                                              func.count(), func.sum(case((tx.c.amount > 0, tx.c.amount), else_=0)))
                                       .group_by(period, tx.c.type)))
    index = {p: i for i, (p, _) in enumerate(periods)}
    for when, kind, amount, fee, count, positive in rows:
        amount, fee, positive, count = int(amount or 0), int(fee or 0), int(positive or 0), int(count or 0)
        totals["rows"] += count
        if kind == "declined":
            totals["declined"] += count
            continue
        totals["amount"] += amount
        totals["fee"] += fee
        totals["count"] += count
        i = int(when) if isinstance(when, int) else index.get(when.date() if isinstance(when, datetime) else when)
        if i is None:  # a month truncated before the range's first day
            i = 0
        bars[i].money_in += positive
        bars[i].money_out += positive - amount
    totals["net"] = totals["amount"] - totals["fee"]
    return totals, unit, bars


def money_by_day(start: date, end: date) -> tuple[dict, str, list[Bar]]:
    """Money in and out per local day (or month, past two months) with the totals, in one grouped query."""
    return _sums(("payment", "deposit", "refund", "adjustment"), start, end)


def transactions(start: date, end: date, types: tuple[str, ...] = TYPES, page=1,
                 per_page: int = PAGE_SIZE) -> Report:
    """Between two business-local dates, inclusive: one page of rows (oldest first), the totals over all of them
    and the chart (money in and out per day or month)."""
    totals, unit, bars = _sums(types, start, end)
    pages = max(1, -(-totals["rows"] // per_page))
    number = min(page_number(page), pages)
    lo, hi = _range(start, end)
    stmt = _page_stmt(tuple(types))
    rows = [entry_of(r) for r in db.session.execute(stmt, {
        "page_lo": lo, "page_hi": hi, "first": number * per_page, "per_page": per_page,
        "skip": (number - 1) * per_page})] if stmt is not None else []
    return Report(start, end, rows, types, totals, number, pages, per_page, bars, unit)


@lru_cache(maxsize=32)
def _page_stmt(types: tuple[str, ...]):
    """A page of the report's rows for a choice of types, built once per process (building the union cost more
    than running it); the range and the page are parameters."""
    tx = _union(types, bindparam("page_lo", type_=UTCDateTime()), bindparam("page_hi", type_=UTCDateTime()),
                first=bindparam("first", type_=Integer))
    if tx is None:
        return None
    return _rows_of(tx).limit(bindparam("per_page", type_=Integer)).offset(bindparam("skip", type_=Integer))


def stream_transactions(start: date, end: date, types: tuple[str, ...] = TYPES) -> Iterator[Entry]:
    """Every row for the CSV, read through a server-side cursor in batches: memory stays flat for a year."""
    lo, hi = _range(start, end)
    tx = _union(types, lo, hi)
    if tx is None:
        return
    result = db.session.execute(_rows_of(tx), execution_options={"stream_results": True, "yield_per": 2000})
    for row in result:
        yield entry_of(row)


def load_payment(payment_id: int) -> Payment:
    """A payment by id (staff side), or NotFound."""
    return found(db.session.get(Payment, payment_id), "Payment not found.")


def customer_payment(customer: Customer, payment_id: int) -> Payment:
    """One of the customer's payments (the portal's receipts), or NotFound."""
    return found(db.session.scalars(select(Payment).where(Payment.id == payment_id,
                                                          Payment.customer_id == customer.id)).first(),
                 "Payment not found.")


# --- the CSV, written by PostgreSQL ---------------------------------------------------------------------

def csv_in_database() -> bool:
    """PostgreSQL writes the transactions CSV's lines itself (a year is 200k rows: Python formatting dominated)."""
    return db.session.get_bind().dialect.name == "postgresql"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_CODES = tuple(ord(c) for c in _FORMULA_START)  # ascii(): the first character's code, no substring made


def _guarded(text):
    """The report's spreadsheet guard on a column (the Python writer's _cell): a cell starting like a formula gets
    a leading apostrophe; an empty cell is NULL (written as nothing). `text` is evaluated twice: meant for a
    column, not a costly computed value."""
    return case((func.ascii(text).in_(_FORMULA_CODES), "'" + text), else_=func.nullif(text, ""))


def _amount_text(cents, places: int):
    """What the Python CSV prints for cents: -12.34 (`places` decimals). One to_char, its digits placed around a
    literal point (an integer's digits fill the template's positions right to left)."""
    if not places:
        return cast(cents, String)
    return func.to_char(cents, literal("FM" + "9" * 18 + "0" + '"."' + "0" * places, String))


def _staff_text_sql(code, message):
    """declines.staff_text in SQL: the wording of every known code, the default wording for any other."""
    code = func.coalesce(func.nullif(code, ""), "card_declined")
    sentinel = "\x00"
    default_head, default_tail = declines.staff_parts(sentinel)
    before, after = default_head.split(sentinel)
    parts = {c: declines.staff_parts(c) for c in sorted(declines.known_codes())}
    # simple CASEs (CASE code WHEN …): the code is computed once per row, and the statement plans faster
    head = case({c: literal(h, String) for c, (h, _) in parts.items()}, value=code,
                else_=literal(before, String) + code + literal(after, String))
    tail = case({c: literal(t, String) for c, (_, t) in parts.items()}, value=code, else_=literal(default_tail, String))
    detail = case((func.coalesce(message, "") != "", " Processor: “" + message + "”."), else_="")
    return head + detail + tail


def csv_lines(start: date, end: date, types: tuple[str, ...], *, currency: str, places: int,
              tz_name: str) -> Iterator[bytes]:
    """The transactions CSV's rows (no header) as PostgreSQL writes them: `COPY (SELECT the cells) TO STDOUT`
    in CSV format, streamed in blocks of about 64 KB as the server sends them (memory stays flat for a year).
    The same cells, formula guard, quoting and order as the Python writer (admin/payments/reports.py), which
    SQLite keeps: COPY quotes a cell exactly when csv.writer does (a comma, a quote, CR or LF in it; an empty
    text cell is NULL, written as nothing), and each row's LF becomes the writer's CRLF (`pg_copy.crlf`).
    A range of many rows is cut by time into pieces of about equal rows (`_csv_pieces`), written at once on
    CSV_EXPORT_CONNECTIONS connections that share one snapshot (`platform.pg_copy`)."""
    if not any(t in TYPES for t in types):
        return
    lo, hi = _range(start, end)
    starts, offsets = _utc_offsets(ZoneInfo(tz_name), lo, hi)
    changes = len(starts) - 1 if len(starts) <= _TZ_CASES else None
    statement, fixed = _csv_copy(tuple(types), places, changes)
    params = dict(fixed, csv_currency=currency)
    if changes is None:
        params.update(csv_tz_from=starts, csv_tz_offset=offsets)
    else:
        params.update({f"csv_tz_at_{i}": at for i, at in enumerate(starts) if i},
                      **{f"csv_tz_off_{i}": off for i, off in enumerate(offsets)})
    connections = max(1, min(int(current_app.config["CSV_EXPORT_CONNECTIONS"]), CSV_MAX_CONNECTIONS))
    copies = [(f"COPY ({statement}) TO STDOUT WITH (FORMAT csv)",
               dict(params, csv_lo=_naive_utc(a), csv_hi=_naive_utc(b)))
              for a, b in _csv_pieces(tuple(types), lo, hi, connections)]
    yield from pg_copy.stream(copies, connections=connections)


CSV_MAX_CONNECTIONS = 8  # whatever CSV_EXPORT_CONNECTIONS says: the pool (5 + 10 overflow) must have them at once
CSV_PIECE_ROWS = (8000, 25000)  # a piece of the CSV: at least, at most this many rows (about 1 and 3 MB)


@lru_cache(maxsize=32)
def _day_rows_stmt(types: tuple[str, ...]):
    """Rows per UTC day of the chosen types from ledger_day_sums, between two days inclusive (built once)."""
    d = LedgerDaySum
    return (select(d.day, func.sum(d.n))
            .where(d.day >= bindparam("first_day", type_=Date()), d.day <= bindparam("last_day", type_=Date()),
                   d.type.in_([t for t in TYPES if t in types]))
            .group_by(d.day).order_by(d.day))


def _csv_pieces(types: tuple[str, ...], lo: datetime, hi: datetime,
                connections: int) -> list[tuple[datetime, datetime]]:
    """[lo, hi) cut at UTC midnights into consecutive half-open time ranges of about equal rows, as counted from
    ledger_day_sums (one small query; the first and last days are counted whole, so the sizes are estimates): about
    as many pieces as connections, aiming at CSV_PIECE_ROWS[0] rows at least (fewer rows in all: one piece) and
    CSV_PIECE_ROWS[1] at most (a year: many pieces, the connections taking turns). Only the balance between the
    connections depends on the estimate: every row is in exactly one piece."""
    if connections < 2:
        return [(lo, hi)]
    day_rows = db.session.execute(_day_rows_stmt(types), {
        "first_day": lo.astimezone(UTC).date(), "last_day": hi.astimezone(UTC).date()}).all()
    total = sum(int(n or 0) for _, n in day_rows)
    least, most = CSV_PIECE_ROWS
    if total < 2 * least:
        return [(lo, hi)]
    target = min(max(total / connections, least), most)
    cuts, count = [lo], 0
    for day, n in day_rows:
        count += int(n or 0)
        cut = datetime.combine(day + timedelta(days=1), time(), UTC)
        if count >= target and cuts[-1] < cut < hi:
            cuts.append(cut)
            count = 0
    return list(zip(cuts, cuts[1:] + [hi], strict=True))


def _utc_offsets(zone: ZoneInfo, lo: datetime, hi: datetime) -> tuple[list[datetime], list[timedelta]]:
    """The zone's UTC offsets over [lo, hi): where each starts (naive UTC; the first is lo) and the offset, found
    by stepping 6 hours at a time and bisecting to the second where the offset changes."""
    start, end = lo.astimezone(UTC), hi.astimezone(UTC)
    starts, offsets = [start], [start.astimezone(zone).utcoffset()]
    step = timedelta(hours=6)
    at = start
    while at < end:
        nxt = min(at + step, end)
        if nxt.astimezone(zone).utcoffset() != offsets[-1]:
            before, after = at, nxt  # the change is in (before, after]
            while after - before > timedelta(seconds=1):
                mid = before + timedelta(seconds=int((after - before).total_seconds()) // 2)
                if mid.astimezone(zone).utcoffset() == offsets[-1]:
                    before = mid
                else:
                    after = mid
            starts.append(after)
            offsets.append(after.astimezone(zone).utcoffset())
        at = nxt
    return [_naive_utc(s) for s in starts], [o or timedelta(0) for o in offsets]


def _naive_utc(when: datetime) -> datetime:
    """What UTCDateTime binds: naive UTC."""
    return when.astimezone(UTC).replace(tzinfo=None)


_TZ_CASES = 8  # up to this many UTC offsets over the range: a CASE per row; more: a lookup in arrays


@lru_cache(maxsize=64)
def _csv_copy(types: tuple[str, ...], places: int, changes: int | None) -> tuple[str, dict]:
    """The CSV's SELECT for COPY (which SQLAlchemy cannot run) as PostgreSQL text and its fixed parameters (IN
    lists expanded), built and compiled once per process for each choice of types: building and compiling it
    cost ~17 ms a request. The range and currency are the parameters csv_lo, csv_hi, csv_currency; the zone's
    offsets over the range: `changes` times the offset changes, the offsets are csv_tz_off_0 … and from csv_tz_at_1 …
    on (naive UTC); `changes` None: arrays csv_tz_from (where each offset starts) and csv_tz_offset."""
    tx = _union(types, bindparam("csv_lo", None), bindparam("csv_hi", None))
    zone: tuple
    if changes is None:
        zone = (bindparam("csv_tz_from", None, type_=ARRAY(TIMESTAMP())),
                bindparam("csv_tz_offset", None, type_=ARRAY(Interval())))
    else:
        zone = ([bindparam(f"csv_tz_at_{i}", None, type_=TIMESTAMP()) for i in range(1, changes + 1)],
                [bindparam(f"csv_tz_off_{i}", None, type_=Interval()) for i in range(changes + 1)])
    stmt = _csv_cells(tx, currency=bindparam("csv_currency", None, type_=String), places=places, zone=zone)
    compiled = stmt.compile(dialect=db.session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    return str(compiled), compiled.construct_params()


def _csv_cells(tx, *, currency, places: int, zone):
    """The fifteen cells of each CSV row in the CSV's order; a text cell that would be empty is NULL.
    The rows are sorted first, narrow (the union's columns, the customer's names and the sort key), then each
    row's cells are computed as it leaves: PostgreSQL sees the inner subquery's order, sorts nothing more, and
    the first rows reach the client while the rest are still being formatted."""
    key = _type_then_id(tx.c.type, tx.c.row_id).label("key")
    counted = tx.c.type.in_(("payment", "deposit", "refund", "adjustment")).label("counted")  # Entry.counts
    rows = (select(tx, Customer.kind.label("c_kind"), Customer.first_name.label("c_first"),
                   Customer.last_name.label("c_last"), Customer.company_name.label("c_company"), key, counted)
            .select_from(tx).outerjoin(Customer, Customer.id == tx.c.customer_id)
            .order_by(tx.c.when, key).offset(0).subquery("s"))
    r = rows.c
    counted = r.counted  # tested once per row, below the sort
    # local time: the UTC time plus the zone's offset then (Python's own tz data); `zone`: arrays of where each
    # offset starts and the offsets, or lists of the instants the offset changes and the offsets
    starts, offsets = zone
    if not isinstance(offsets, list):
        local = r.when + Grouping(offsets)[func.width_bucket(r.when, starts)]
    elif len(offsets) == 1:
        local = r.when + offsets[0]
    else:  # a few offsets (a month: one change at most): compared in turn, cheaper than the array lookup
        local = r.when + case(*[(r.when < at, off) for at, off in zip(starts, offsets, strict=False)],
                              else_=offsets[-1])
    # Customer.display_name, guarded; the usual cases first (a business with its name, a person with both
    # names), each guarding the column the name starts with (the name itself is computed once)
    general = func.coalesce(func.nullif(func.concat_ws(" ", func.nullif(r.c_first, ""), func.nullif(r.c_last, "")),
                                        ""), func.nullif(r.c_company, ""), "Customer #" + cast(r.customer_id, String))
    name = case((and_(r.c_kind == "business", r.c_company != ""), _guarded(r.c_company)),
                (and_(r.c_first != "", r.c_last != ""), _guarded(r.c_first) + " " + r.c_last),
                (r.customer_id.is_(None), None),
                else_=_guarded(general))  # rare: computed twice
    # _card_text: the brand title-cased ("card" without one), then the last four digits
    brand = case(*[(r.brand == b, b.title()) for b in ("visa", "mastercard", "amex", "discover")],
                 else_=func.initcap(func.coalesce(func.nullif(r.brand, ""), "card")))
    card = case((r.last4 != "", brand + " •••• " + r.last4), else_=None)
    declined = _staff_text_sql(r.code, r.note)
    message = case((r.type == "declined", declined if _staff_text_safe() else _guarded(declined)),
                   else_=_guarded(r.note))
    zero = literal("0." + "0" * places if places else "0", String)
    # "YYYY-MM-DD HH:MI" cut from the ISO text (csv_lines sets DateStyle ISO): cheaper than to_char
    return (select(func.left(cast(local, String), 16), name, cast(r.customer_id, String),
                   func.nullif(r.type, ""), func.nullif(cast(r.method, String), ""), card,
                   cast(r.status, String), message,  # a status is never empty (CHECK constraints)
                   case((counted, _amount_text(r.amount, places)), else_=zero),
                   _amount_text(r.fee, places),  # 0 for a declined attempt
                   case((counted, _amount_text(r.amount - r.fee, places)), else_=zero),
                   case((counted, None), else_=_amount_text(r.amount, places)),
                   func.nullif(currency, ""), _guarded(r.reference), cast(r.payment_id, String))
            .order_by(r.when, r.key))


@cache
def _staff_text_safe() -> bool:
    """Whether every staff wording of a decline starts with a character no spreadsheet reads as a formula (then
    the CSV needs no guard on it)."""
    starts = [declines.staff_parts(c)[0] for c in sorted(declines.known_codes())]
    starts.append(declines.staff_parts("\x00")[0].split("\x00")[0])
    return all(text[:1] and text[:1] not in _FORMULA_START for text in starts)


def _type_then_id(kind, row_id):
    """The report's order after the time (type, then id) as one bigint: the types' alphabetical rank, then the id
    (the sort compares two fixed-width keys, not a string; a month's CSV sorts ~2.5 ms faster)."""
    ranks = {t: i for i, t in enumerate(sorted(TYPES + ("unknown",)))}
    tested = ("payment", "declined", "refund", "deposit", "adjustment", "unknown")  # the most frequent first
    assert set(tested) == set(ranks)
    rank = case(*[(kind == t, ranks[t]) for t in tested], else_=len(ranks))
    return cast(rank, BigInteger) * (1 << 32) + row_id
