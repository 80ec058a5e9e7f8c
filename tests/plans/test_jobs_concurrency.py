"""Q-3, issue 6: `flask jobs run` is safe to run concurrently and to kill at any point.

Real processes against the real database and the Stripe sandbox (localstripe):

- several `flask jobs run` processes started together over many due card plan payments charge each payment
  exactly once: one succeeded PaymentIntent in the sandbox, one succeeded attempt, one Payment and one
  allocation per plan payment, and nothing else;
- a run killed with SIGKILL at a random point, then re-run as if 10 minutes later (so the reconciler settles
  what the dead run left open), leaves every payment charged exactly once.

PostgreSQL (PORTAL_TEST_DB=postgres) runs the full scenario (500 payments, 4 runners, 20 kill trials);
SQLite, which serialises writers and has no SKIP LOCKED, runs a smaller one.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select

from portal import clock
from portal.extensions import db
from portal.models import ChargeAttempt, CustomerPlan, Payment, PaymentAllocation, PlanPayment
from portal.services.plans import billing as plan_billing
from tests.conftest import BACKEND, REPO, running_sandbox
from tests.factories import make_card, make_customer
from tests.helpers import sandbox_intents
from tests.plans.jobs_process import JobsProcess

if BACKEND == "postgres":
    PAYMENTS, RUNNERS, CUSTOMERS = 500, 4, 50
    KILL_TRIALS, PER_TRIAL = 20, 10
else:
    PAYMENTS, RUNNERS, CUSTOMERS = 60, 3, 6
    KILL_TRIALS, PER_TRIAL = 5, 8

RUN_TIMEOUT = 240  # seconds; a hung runner fails the test instead of hanging the suite
SEED = 20260302


# --- A sandbox of our own ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sandbox_process():
    """localstripe without a data file. The session sandbox pickles its whole store to disk on every write,
    which makes the thousands of writes of hundreds of charges quadratic; this one keeps them in memory."""
    with running_sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(app, sandbox_process, monkeypatch):
    """Empty; the test's own app context (cards saved by the factories) talks to it too."""
    requests.delete(sandbox_process["url"] + "/_config/data", timeout=5).raise_for_status()
    monkeypatch.setitem(app.config, "STRIPE_SANDBOX_PORT", sandbox_process["port"])
    return sandbox_process


# --- Helpers ----------------------------------------------------------------------------------------------

def jobs_env(app, sandbox, smtp) -> dict:
    """The environment of a `flask jobs run` process pointed at the test database, sandbox and SMTP server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_") and k != "DATABASE_URL"}
    env.update({
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "PORTAL_INSTANCE_PATH": app.instance_path,
        "PORTAL_SECRET_KEY": app.config["SECRET_KEY"],
        "PORTAL_STRIPE_SANDBOX_PORT": str(sandbox["port"]),
        "PORTAL_MAIL_SERVER": "127.0.0.1",
        "PORTAL_MAIL_PORT": str(smtp.port),
        "PORTAL_BASE_URL": app.config["BASE_URL"],
    })
    return env


def start_run(env: dict, as_of: datetime | None = None) -> JobsProcess:
    """`flask --app wsgi jobs run [--as-of …]` in a process of its own (forked from a warm interpreter, see
    tests/plans/jobs_process.py: the same command without paying its imports on every one of dozens of starts)."""
    args = ["--app", "wsgi", "jobs", "run"]
    if as_of is not None:
        args += ["--as-of", as_of.isoformat(timespec="seconds")]
    return JobsProcess(args, env, REPO)


def finish(proc: JobsProcess) -> dict:
    """Wait for a run and return what it did (its JSON output)."""
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"`flask jobs run` did not finish in {RUN_TIMEOUT}s:\n{err[-3000:]}")
    assert proc.returncode == 0, f"`flask jobs run` exited {proc.returncode}:\n{err[-3000:]}\n{out[-1000:]}"
    return json.loads(out)


def run_jobs(env: dict, as_of: datetime | None = None) -> dict:
    return finish(start_run(env, as_of))


def later(minutes: int = 10) -> datetime:
    """--as-of past STRIPE_RECONCILE_AFTER_MINUTES, so attempts a dead run left open are reconciled."""
    return datetime.now(UTC) + timedelta(minutes=minutes)


def customers_with_cards(count: int) -> list[tuple[int, int]]:
    """(customer id, card id) pairs; each card saved through the sandbox. No email: no receipts to send."""
    pairs = []
    for i in range(count):
        customer = make_customer(first_name=f"Runner{i}", email=None)
        pairs.append((customer.id, make_card(customer.id).id))
    return pairs


def seed_due_payments(pairs: list[tuple[int, int]], count: int) -> list[int]:
    """`count` active monthly card plans, each with one scheduled payment due yesterday. Committed.
    Every payment has its own amount, so a PaymentIntent's amount names the payment it paid."""
    due = clock.today() - timedelta(days=1)
    first_amount = 1000 + (db.session.scalar(select(func.count()).select_from(PlanPayment)) or 0)
    plans = []
    for i in range(count):
        customer_id, card_id = pairs[i % len(pairs)]
        amount = first_amount + i
        plan = CustomerPlan(customer_id=customer_id, name=f"Comfort Club {amount}", status="active",
                            frequency="monthly", offered_frequencies="monthly", price_monthly_cents=amount,
                            price_cents=amount, payment_method="card", card_id=card_id,
                            billing_anchor_day=due.day, start_date=due,
                            next_billing_date=plan_billing.add_period(due, "monthly", due.day))
        db.session.add(plan)
        plans.append(plan)
    db.session.flush()
    rows = [PlanPayment(plan_id=plan.id, due_date=due, amount_cents=plan.price_cents, status="scheduled",
                        method="card", card_id=plan.card_id, attempt_count=0, retries_exhausted=False,
                        is_first_payment=False) for plan in plans]
    db.session.add_all(rows)
    db.session.commit()
    ids = [row.id for row in rows]
    db.session.remove()  # hold nothing while the runners work
    return ids


def plan_payment_id_of(intent: dict) -> int | None:
    """`plan_<payment id>_<attempt n>` → payment id."""
    key = (intent.get("metadata") or {}).get("attempt_key") or ""
    parts = key.split("_")
    if len(parts) == 3 and parts[0] == "plan" and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1])
    return None


def assert_charged_exactly_once(sandbox, payment_ids: list[int], context: str = "") -> None:
    """Each payment: paid, one succeeded attempt, one Payment for its amount, one allocation, one succeeded
    PaymentIntent (and no other PaymentIntent) in the sandbox, the same one the attempt recorded. And across
    the whole database and sandbox: PaymentIntents = Payments = paid plan payments."""
    db.session.rollback()  # fresh reads
    wanted = set(payment_ids)
    rows = {r.id: r for r in db.session.scalars(select(PlanPayment).where(PlanPayment.id.in_(wanted)))}
    assert len(rows) == len(wanted)
    not_paid = {i: (r.status, r.failure_code) for i, r in rows.items() if r.status != "paid"}
    assert not not_paid, f"{context}: payments not paid: {not_paid}"

    attempts = defaultdict(list)
    for a in db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.plan_payment_id.in_(wanted))):
        attempts[a.plan_payment_id].append(a)
    open_left = {i: [(a.idempotency_key, a.status) for a in atts if a.status in ("pending", "unknown")]
                 for i, atts in attempts.items()}
    assert not any(open_left.values()), f"{context}: attempts left open: {open_left}"
    succeeded = {i: [a for a in atts if a.status == "succeeded"] for i, atts in attempts.items()}
    wrong = {i: [a.idempotency_key for a in succeeded.get(i, [])] for i in wanted if len(succeeded.get(i, [])) != 1}
    assert not wrong, f"{context}: payments without exactly one succeeded attempt: {wrong}"

    payments = {p.charge_attempt_id: p for p in db.session.scalars(
        select(Payment).where(Payment.charge_attempt_id.in_([succeeded[i][0].id for i in wanted])))}
    allocations = defaultdict(list)
    for alloc in db.session.scalars(select(PaymentAllocation).where(PaymentAllocation.plan_payment_id.in_(wanted))):
        allocations[alloc.plan_payment_id].append(alloc)
    for i in wanted:
        row, attempt = rows[i], succeeded[i][0]
        payment = payments.get(attempt.id)
        assert payment is not None, f"{context}: no Payment for attempt {attempt.idempotency_key}"
        assert (payment.amount_cents, payment.status) == (row.amount_cents, "succeeded"), context
        assert row.payment_id == payment.id, context
        assert [a.payment_id for a in allocations[i]] == [payment.id], \
            f"{context}: payment {i} allocations {[(a.payment_id, a.amount_cents) for a in allocations[i]]}"

    by_payment = defaultdict(list)
    intents = sandbox_intents(sandbox)
    for intent in intents:
        pid = plan_payment_id_of(intent)
        if pid in wanted:
            by_payment[pid].append(intent)
    for i in wanted:
        found = [(pi["id"], pi["status"], pi["metadata"].get("attempt_key")) for pi in by_payment[i]]
        assert len(found) == 1 and found[0][1] == "succeeded", \
            f"{context}: payment {i} has PaymentIntents {found} (expected exactly one, succeeded)"
        intent = by_payment[i][0]
        assert intent["amount"] == rows[i].amount_cents, context
        assert intent["id"] == succeeded[i][0].stripe_payment_intent_id, context
        assert intent["metadata"]["attempt_key"] == succeeded[i][0].idempotency_key, context

    # Nothing anywhere else either: every PaymentIntent is a Payment is a paid plan payment.
    paid_rows = db.session.scalar(select(func.count()).select_from(PlanPayment).where(PlanPayment.status == "paid"))
    payment_count = db.session.scalar(select(func.count()).select_from(Payment))
    recorded = set(db.session.scalars(select(ChargeAttempt.stripe_payment_intent_id)
                                      .join(Payment, Payment.charge_attempt_id == ChargeAttempt.id)))
    unrecorded = [(pi["id"], pi["status"], (pi.get("metadata") or {}).get("attempt_key")) for pi in intents
                  if pi["id"] not in recorded]  # what a failure here is about
    assert len(intents) == payment_count == paid_rows, \
        f"{context}: {len(intents)} PaymentIntents, {payment_count} Payments, {paid_rows} paid plan payments; " \
        f"PaymentIntents without a Payment: {unrecorded}"
    assert all(pi["status"] == "succeeded" for pi in intents), context
    db.session.rollback()


# --- Tests ------------------------------------------------------------------------------------------------

def test_runners_started_together_charge_every_due_payment_once(app, sandbox, ctx, smtp):
    """Q-3: RUNNERS processes started together over PAYMENTS due plan payments → exactly PAYMENTS succeeded
    PaymentIntents and PAYMENTS paid rows."""
    pairs = customers_with_cards(CUSTOMERS)
    ids = seed_due_payments(pairs, PAYMENTS)
    env = jobs_env(app, sandbox, smtp)

    procs = [start_run(env) for _ in range(RUNNERS)]
    results = [finish(p) for p in procs]

    assert_charged_exactly_once(sandbox, ids, "concurrent runners")
    charged = [r["plans"]["charged"] for r in results]
    assert sum(charged) == PAYMENTS, f"charged per runner: {charged}"
    assert all(r["plans"]["declined"] == 0 for r in results), results
    if BACKEND == "postgres":
        # SKIP LOCKED spreads the work: the runners really charged side by side
        assert sum(1 for c in charged if c) >= 2, f"charged per runner: {charged}"

    # A later run finds nothing left to charge.
    again = run_jobs(env, later())
    assert again["plans"]["charged"] == 0 and again["charge_reconciler"]["succeeded"] == 0, again
    assert_charged_exactly_once(sandbox, ids, "after a re-run")


def _wait_for(ids: list[int], proc: JobsProcess, what: str, enough: int) -> bool:
    """Poll until the run has committed `enough` charge attempts for these payments (`what="attempts"`) or
    paid that many of them (`what="paid"`); False when it exited first."""
    query = (select(func.count()).select_from(ChargeAttempt).where(ChargeAttempt.plan_payment_id.in_(ids))
             if what == "attempts" else
             select(func.count()).select_from(PlanPayment).where(PlanPayment.id.in_(ids), PlanPayment.status == "paid"))
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        n = db.session.scalar(query)
        db.session.rollback()
        if n >= enough:
            return True
        time.sleep(0.005)
    return False


def test_killed_runs_leave_every_payment_charged_once(app, sandbox, ctx, smtp):
    """Issue 6: SIGKILL a run at a random point, re-run it as if 10 minutes later (the reconciler settles what
    the dead run left open) → every payment charged exactly once, never twice."""
    rng = random.Random(SEED)
    pairs = customers_with_cards(3)
    env = jobs_env(app, sandbox, smtp)

    # Calibrate: when a run starts charging, and how long charging PER_TRIAL payments takes.
    ids = seed_due_payments(pairs, PER_TRIAL)
    started = time.monotonic()
    proc = start_run(env)
    assert _wait_for(ids, proc, "attempts", 1)
    first_attempt = time.monotonic() - started
    assert _wait_for(ids, proc, "paid", PER_TRIAL)
    all_paid = time.monotonic() - started
    per_charge = max((all_paid - first_attempt) / PER_TRIAL, 0.005)
    assert finish(proc)["plans"]["charged"] == PER_TRIAL
    assert_charged_exactly_once(sandbox, ids, "calibration run")

    all_ids = list(ids)
    stats = defaultdict(int)
    for trial in range(KILL_TRIALS):
        ids = seed_due_payments(pairs, PER_TRIAL)
        all_ids += ids
        proc = start_run(env)
        if trial % 4 == 0:  # anywhere until its charges are done, start-up and reconciling included
            delay = rng.uniform(0, all_paid)
            time.sleep(delay)
            where = f"{delay:.2f}s after start"
        else:  # while it charges: between attempts, mid-request to Stripe, before the outcome is committed
            k = rng.randint(1, PER_TRIAL)
            _wait_for(ids, proc, "attempts", k)
            delay = rng.uniform(0, per_charge)
            time.sleep(delay)
            where = f"{delay * 1000:.0f}ms after attempt {k} of {PER_TRIAL}"
        proc.send_signal(signal.SIGKILL)  # a no-op when the run already finished
        proc.communicate(timeout=30)
        context = f"trial {trial} (seed {SEED}, killed {where})"
        stats["finished_before_kill"] += proc.returncode == 0

        db.session.rollback()
        paid = db.session.scalar(select(func.count()).select_from(PlanPayment)
                                 .where(PlanPayment.id.in_(ids), PlanPayment.status == "paid"))
        stats["killed_mid_batch"] += 0 < paid < PER_TRIAL
        left_open = db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.plan_payment_id.in_(ids),
                                                                   ChargeAttempt.status.in_(("pending", "unknown"))))
        left_open = list(left_open)
        keys_at_stripe = {(pi["metadata"] or {}).get("attempt_key") for pi in sandbox_intents(sandbox)}
        stats["open_attempts"] += len(left_open)
        stats["interrupted_while_charging"] += bool(left_open) or 0 < paid < PER_TRIAL
        stats["charged_not_recorded"] += sum(a.idempotency_key in keys_at_stripe for a in left_open)
        db.session.rollback()

        # Stripe has finished whatever the dead run sent it before anyone looks (in production the
        # reconciler waits STRIPE_RECONCILE_AFTER_MINUTES; --as-of only moves the clock, not the requests).
        # A run that exited by itself has nothing in flight.
        if proc.returncode != 0:
            time.sleep(0.3)
        result = run_jobs(env, later())
        stats["reconciled_succeeded"] += result["charge_reconciler"]["succeeded"]
        stats["reconciled_failed"] += result["charge_reconciler"]["failed"]
        assert_charged_exactly_once(sandbox, ids, context)

    # One more run changes nothing, and everything charged over all trials is still charged exactly once.
    result = run_jobs(env, later(15))
    assert result["plans"]["charged"] == 0, result
    assert_charged_exactly_once(sandbox, all_ids, "after every trial")
    # The kills really interrupted charging (not only start-up, not only finished runs).
    assert stats["interrupted_while_charging"] >= 1, dict(stats)
    print(f"\nkill trials: {dict(stats)}; first attempt after {first_attempt:.2f}s, {per_charge * 1000:.0f}ms a charge")
