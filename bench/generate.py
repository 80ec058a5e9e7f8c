"""Generate a business at a chosen scale on PostgreSQL, fast (COPY), for the page benchmark (bench/pages.py).

    .venv/bin/python bench/generate.py --url postgresql://postgres@127.0.0.1:5432/bench --scale 1.0

Scale 1.0 is the business of issue 15: ~10,000 customers, 200,000 invoices, 1,000,000 payments, 50,000 jobs and
visits, 3,000 plans with 72,000 plan payments, 200,000 activity events — plus one customer with years of history
(2,000 invoices, 10,000 payments, 500 jobs, 300 estimates, 5,000 events, a plan with 60 bills). The database is
emptied (schema dropped) and migrated first. Dates spread over the five years before today. Not part of `make test`.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

YEARS = 5
BUSY_ID = 1  # the customer with years of history
PASSWORD = "bench-password-1"
STAFF_EMAIL = "owner@bench.test"


def _ts(day: date, rng: random.Random) -> datetime:
    return datetime(day.year, day.month, day.day, rng.randrange(14, 23), rng.randrange(60), tzinfo=UTC)


class Loader:
    """COPY rows into a table; columns not given get the model's scalar default (or NOW for callables)."""

    def __init__(self, raw, metadata):
        self.raw, self.metadata, self.counts = raw, metadata, {}
        self.now = datetime.now(UTC).replace(tzinfo=None)

    def copy(self, table_name: str, columns: list[str], rows) -> int:
        from portal.models.types import UTCDateTime

        table = self.metadata.tables[table_name]
        with self.raw.cursor() as cur:  # the migrated table (the models may be ahead of the migrations meanwhile)
            cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                        "AND is_nullable = 'NO' AND column_default IS NULL", (table_name,))
            required = {r[0] for r in cur.fetchall()}
        extra = []
        for col in table.columns:
            if col.name in columns or col.name not in required:
                continue
            default = col.default
            if default is None:
                raise SystemExit(f"{table_name}.{col.name} needs a value")
            value = self.now if callable(getattr(default, "arg", None)) and isinstance(col.type, UTCDateTime) \
                else default.arg
            if callable(value):
                value = value(None) if value.__code__.co_argcount else value()
            extra.append((col.name, value))
        utc_cols = {i for i, c in enumerate(columns) if isinstance(table.columns[c].type, UTCDateTime)}
        names = columns + [n for n, _ in extra]
        tail = tuple(v for _, v in extra)
        n = 0
        with self.raw.cursor() as cur, cur.copy(f"COPY {table_name} ({', '.join(names)}) FROM STDIN") as cp:
            for row in rows:
                if utc_cols:
                    row = tuple(v.replace(tzinfo=None) if i in utc_cols and v is not None else v
                                for i, v in enumerate(row))
                cp.write_row(row + tail)
                n += 1
        self.counts[table_name] = self.counts.get(table_name, 0) + n
        return n


def generate(url: str, scale: float, seed: int = 15) -> dict:
    from flask_migrate import upgrade
    from sqlalchemy import text
    from werkzeug.security import generate_password_hash

    from portal import create_app
    from portal.extensions import db

    rng = random.Random(seed)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "BASE_URL": "http://bench"})
    started = time.perf_counter()
    with app.app_context():
        db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        db.session.commit()
        upgrade(directory=str(Path(__file__).resolve().parents[1] / "migrations"))
        raw = db.engine.raw_connection()
        raw.driver_connection.execute("SET synchronous_commit TO off")
        load = Loader(raw.driver_connection, db.metadata)
        today = date.today()
        first_day = today - timedelta(days=365 * YEARS)
        days = (today - first_day).days

        def day(rng_=rng) -> date:
            return first_day + timedelta(days=rng_.randrange(days))

        n_customers = max(int(10_000 * scale), 20)
        staff_hash = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
        load.copy("staff_users", ["id", "email", "name", "role", "password_hash", "session_token"],
                  [(i, STAFF_EMAIL if i == 1 else f"staff{i}@bench.test", f"Staff {i}",
                    ("admin", "office", "technician")[min(i - 1, 2) if i < 4 else i % 3], staff_hash, f"tok{i:060d}")
                   for i in range(1, 11)])
        load.copy("business_settings", ["id", "name"], [(1, "Bench Heating & Air")])
        statuses = ("active",) * 8 + ("lead", "inactive")
        load.copy("customers", ["id", "first_name", "last_name", "status", "manager_id", "auth_secret", "created_at"],
                  [(i, f"First{i}", f"Last{i}", "active" if i == BUSY_ID else rng.choice(statuses), 1 + i % 10,
                    f"{i:032x}", _ts(day(), rng)) for i in range(1, n_customers + 1)])
        load.copy("customer_emails", ["customer_id", "email", "is_primary"],
                  [(i, f"c{i}@bench.test", True) for i in range(1, n_customers + 1)])
        load.copy("addresses", ["customer_id", "kind", "line1", "city", "region", "postal_code"],
                  [(i, "service", f"{i} Oak St", "Springfield", "CA", "90210") for i in range(1, n_customers + 1)])
        load.copy("cards", ["id", "customer_id", "stripe_payment_method_id", "brand", "last4", "exp_month", "exp_year",
                            "is_default"],
                  [(i, i, f"pm_bench_{i}", "visa", f"{i % 10000:04d}", 1 + i % 12, today.year + 1 + i % 4, True)
                   for i in range(1, n_customers + 1)])

        def customer_for(k: int, busy_share: int) -> int:
            """Spread rows over customers; the busy customer gets `busy_share` of them first."""
            return BUSY_ID if k < busy_share else 2 + k % (n_customers - 1)

        # Invoices: mostly paid; 6 % open or partly paid, half of them past due.
        n_inv = int(200_000 * scale) + 2_000
        invoices = []
        for k in range(n_inv):
            issued = day()
            total = rng.randrange(5_000, 60_000)
            r = rng.random()
            if r < 0.94:
                status, paid, due = "paid", total, issued + timedelta(days=14)
            elif r < 0.97:
                status, paid, due = "open", 0, issued + timedelta(days=14)
            else:
                status, paid, due = "partially_paid", total // 2, issued + timedelta(days=14)
            if status != "paid" and rng.random() < 0.5:
                due = today + timedelta(days=rng.randrange(1, 30))
            invoices.append((k + 1, customer_for(k, 2_000), f"INV-{k + 1:07d}", status, issued, due, total, total,
                             paid, _ts(issued, rng), _ts(issued, rng)))
        load.copy("invoices", ["id", "customer_id", "number", "status", "issue_date", "due_date", "subtotal_cents",
                               "total_cents", "paid_cents", "sent_at", "created_at"], invoices)
        load.copy("invoice_line_items", ["invoice_id", "description", "quantity", "unit_price_cents", "position"],
                  ((inv[0], "Service call", 1, inv[6], 0) for inv in invoices))

        # Payments: one per paid invoice (allocated), the rest card payments of plans and walk-ins.
        n_pay = int(1_000_000 * scale) + 10_000
        payments, allocations = [], []
        paid_invoices = [inv for inv in invoices if inv[8]]
        for k in range(n_pay):
            if k < len(paid_invoices):
                inv = paid_invoices[k]
                customer_id, amount, when = inv[1], inv[8], _ts(inv[4] + timedelta(days=rng.randrange(0, 20)), rng)
                allocations.append((k + 1, inv[0], amount))
            else:
                customer_id, amount, when = customer_for(k - len(paid_invoices), 10_000 - 2_000), \
                    rng.randrange(1_000, 40_000), _ts(day(), rng)
            if when.date() > today:
                when = _ts(today, rng)
            card = rng.random() < 0.8
            fee = amount * 29 // 1000 + 30 if card else 0
            refunded = amount if rng.random() < 0.01 else 0
            # Every payment is held by an invoice or a plan payment (the plan and walk-in payments' allocations
            # are not generated) except one in a thousand, left as credit on account.
            allocated = amount if k < len(paid_invoices) else 0 if rng.random() < 0.001 else amount - refunded
            payments.append((k + 1, customer_id, "payment", "card" if card else "check",
                             "refunded" if refunded else "succeeded", amount, fee, amount - fee, refunded,
                             allocated,
                             customer_id if card else None, "visa" if card else None,
                             f"{customer_id % 10000:04d}" if card else None, when, when))
        load.copy("payments", ["id", "customer_id", "kind", "method", "status", "amount_cents", "fee_cents",
                               "net_cents", "refunded_cents", "allocated_cents", "card_id", "card_brand", "card_last4",
                               "received_at",
                               "created_at"], payments)
        load.copy("payment_allocations", ["payment_id", "invoice_id", "amount_cents"], allocations)
        load.copy("refunds", ["payment_id", "customer_id", "amount_cents", "reason", "method", "status",
                              "idempotency_key", "created_at", "settled_at"],
                  ((p[0], p[1], p[8], "Customer asked", "card", "succeeded", f"rf_{p[0]}", p[13] + timedelta(days=2),
                    p[13] + timedelta(days=2)) for p in payments if p[8]))
        # Declined attempts: 5 % of the payments' number.
        decline_codes = ("insufficient_funds", "generic_decline", "expired_card", "do_not_honor")
        load.copy("charge_attempts", ["idempotency_key", "customer_id", "card_id", "amount_cents", "status", "purpose",
                                      "decline_code", "failure_message", "initiated_by", "created_at", "settled_at"],
                  ((f"dec_{k}", c, c, rng.randrange(1_000, 40_000), "failed", "invoice", rng.choice(decline_codes),
                    "Your card was declined.", "customer", w, w)
                   for k in range(n_pay // 20) for c in (customer_for(k, 200),) for w in (_ts(day(), rng),)))

        # Jobs with one visit each, estimates.
        n_jobs = int(50_000 * scale) + 500
        jobs = [(k + 1, customer_for(k, 500), f"J-{k + 1:07d}", f"Job {k + 1}", 2 + k % 9,
                 "finished" if rng.random() < 0.9 else "scheduled", _ts(day(), rng)) for k in range(n_jobs)]
        load.copy("jobs", ["id", "customer_id", "number", "title", "technician_id", "status", "created_at"], jobs)
        load.copy("visits", ["job_id", "starts_at", "ends_at", "technician_id", "status"],
                  ((j[0], j[6], j[6] + timedelta(hours=2), j[4],
                    "completed" if j[5] == "finished" else "scheduled") for j in jobs))
        n_est = int(20_000 * scale) + 300
        estimates = [(k + 1, customer_for(k, 300), f"E-{k + 1:07d}", f"Estimate {k + 1}",
                      rng.choice(("sent", "approved", "declined", "converted")), _ts(day(), rng))
                     for k in range(n_est)]
        load.copy("estimates", ["id", "customer_id", "number", "title", "status", "sent_at", "created_at"],
                  ((e[0], e[1], e[2], e[3], e[4], e[5], e[5]) for e in estimates))
        load.copy("estimate_line_items", ["estimate_id", "description", "quantity", "unit_price_cents", "position"],
                  ((e[0], "Work", 1, rng.randrange(10_000, 90_000), 0) for e in estimates))

        # Plans: 3,000 at 1.0 with 24 bills each (the busy customer's plan has 60); 3 % failed/overdue.
        n_plans = max(int(3_000 * scale), 5)
        plans, plan_payments, lines = [], [], []
        pp_id = 0
        for k in range(n_plans):
            customer_id = BUSY_ID if k == 0 else 2 + (k * 7) % (n_customers - 1)
            freq = rng.choice(("monthly",) * 6 + ("quarterly", "yearly"))
            price = {"monthly": 1_999, "quarterly": 5_499, "yearly": 19_900}[freq]
            status = "active" if rng.random() < 0.85 else rng.choice(("cancelled", "pending", "draft"))
            bills = 60 if k == 0 else 24
            step = {"monthly": 30, "quarterly": 91, "yearly": 365}[freq]
            start = today - timedelta(days=step * bills)
            plans.append((k + 1, customer_id, f"Comfort Club {k + 1}", status, 1_999, freq, price, "card", customer_id,
                          start, start.day if start.day <= 28 else 28,
                          today + timedelta(days=rng.randrange(1, step)) if status == "active" else None,
                          _ts(start, rng)))
            for b in range(bills):
                pp_id += 1
                due = start + timedelta(days=step * b)
                r = rng.random()
                pstatus = "paid" if r < 0.97 else ("failed" if r < 0.99 else "overdue")
                plan_payments.append((pp_id, k + 1, due, price, pstatus, "card" if pstatus != "overdue" else "cash",
                                      customer_id, "insufficient_funds" if pstatus == "failed" else None,
                                      "Your card has insufficient funds." if pstatus == "failed" else None,
                                      _ts(due, rng)))
                lines.append((pp_id, "Plan", price))
        load.copy("customer_plans", ["id", "customer_id", "name", "status", "price_monthly_cents", "frequency",
                                     "price_cents", "payment_method", "card_id", "start_date", "billing_anchor_day",
                                     "next_billing_date", "created_at"], plans)
        load.copy("plan_payments", ["id", "plan_id", "due_date", "amount_cents", "status", "method", "card_id",
                                    "failure_code", "failure_message", "created_at"], plan_payments)
        load.copy("plan_payment_lines", ["plan_payment_id", "description", "amount_cents"], lines)
        load.copy("plan_addons", ["plan_id", "customer_id", "name", "amount_cents", "payment_plan", "status"],
                  ((p[0], p[1], "Filter", 500, "recurring", "active") for p in plans if p[0] % 4 == 0))

        # Activity, messages, emails, notes.
        n_events = int(200_000 * scale) + 5_000
        kinds = ("payment", "invoice", "note", "email", "job", "portal")
        load.copy("activity_events", ["customer_id", "event_type", "summary", "actor_kind", "created_at"],
                  ((customer_for(k, 5_000), kinds[k % len(kinds)], f"Event {k}", "system", _ts(day(), rng))
                   for k in range(n_events)))
        n_messages = int(5_000 * scale) + 50
        load.copy("message_requests", ["customer_id", "kind", "name", "body", "status", "created_at"],
                  ((customer_for(k, 50), "message", f"First{k}", "Please call me about the filter.",
                    "new" if rng.random() < 0.1 else "handled", _ts(day(), rng)) for k in range(n_messages)))
        n_emails = int(50_000 * scale) + 100
        load.copy("queued_emails", ["template", "to_address", "subject", "body_text", "body_html", "customer_id",
                                    "status", "sent_at", "created_at"],
                  (("invoice_sent", f"c{c}@bench.test", f"Invoice {k}", "Your invoice.", "<p>Your invoice.</p>", c,
                    "sent", w, w)
                   for k in range(n_emails) for c in (customer_for(k, 100),) for w in (_ts(day(), rng),)))
        load.copy("customer_notes", ["customer_id", "author_id", "body", "created_at"],
                  ((customer_for(k, 200), 1 + k % 10, f"Note {k}", _ts(day(), rng))
                   for k in range(int(20_000 * scale) + 200)))
        raw.driver_connection.commit()
        for table in (db.metadata.tables[name] for name in load.counts):
            pk = [c for c in table.primary_key.columns]
            if len(pk) == 1 and pk[0].autoincrement and str(pk[0].type) == "INTEGER":
                raw.driver_connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{pk[0].name}'), "
                    f"COALESCE((SELECT MAX({pk[0].name}) FROM {table.name}), 1))")
        raw.driver_connection.commit()
        raw.driver_connection.autocommit = True
        raw.driver_connection.execute("VACUUM ANALYZE")
        raw.close()
    load.counts["seconds"] = round(time.perf_counter() - started, 1)
    return load.counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="a PostgreSQL database it may empty")
    parser.add_argument("--scale", type=float, default=0.1)
    args = parser.parse_args()
    if not args.url.startswith("postgresql"):
        raise SystemExit("PostgreSQL only (COPY)")
    counts = generate(args.url, args.scale)
    for name, n in counts.items():
        print(f"{name:24} {n:>10,}" if name != "seconds" else f"generated in {n} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
