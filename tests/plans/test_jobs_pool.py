"""Issue 16: `flask jobs run` charges on a pool of PORTAL_JOBS_CONCURRENCY workers, still exactly once.

Against bench/fake_stripe.py, a Stripe-shaped HTTP server with latency (the app in real-Stripe mode with
STRIPE_API_BASE pointed at it, as the contract tests do; it records every PaymentIntent and every create request):

- four `flask jobs run` processes with PORTAL_JOBS_CONCURRENCY=8 over the same due plan payments, some of them
  SIGKILLed while their charges are in flight at Stripe, then a run as if 10 minutes later: every payment is
  charged exactly once (one succeeded PaymentIntent, one attempt settled succeeded, one Payment, one allocation);
- Stripe answering 429 `rate_limit` for a while: the run backs off, asks again with the same idempotency key (no
  second attempt row, no decline, no dunning), lets fewer calls through and still charges every payment once.

On SQLite a run charges one at a time (workers.concurrency() is 1 there); the scenarios are the same.
"""
from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from sqlalchemy import func, select

from bench.fake_stripe import FakeStripe
from portal.extensions import db
from portal.models import Card, ChargeAttempt, Customer, PlanPayment
from portal.services.platform import scheduler, workers
from tests.conftest import BACKEND
from tests.factories import make_customer
from tests.plans.test_jobs_concurrency import (
    assert_charged_exactly_once,
    finish,
    jobs_env,
    later,
    run_jobs,
    seed_due_payments,
    start_run,
)

RUNNERS, CONCURRENCY = 4, 8
PAYMENTS = 48 if BACKEND == "postgres" else 24
LATENCY_MS = 50


@pytest.fixture
def fake_stripe():
    server = FakeStripe(0, LATENCY_MS).start()
    yield server
    server.shutdown()
    server.server_close()


def stripe_config(fake: FakeStripe) -> dict:
    return {"STRIPE_SECRET_KEY": "sk_test_fake", "STRIPE_API_BASE": fake.url, "STRIPE_MAX_NETWORK_RETRIES": None,
            "STRIPE_TIMEOUT_SECONDS": 10}


def customers_with_cards(count: int) -> list[tuple[int, int]]:
    """(customer id, card id): Stripe ids of our own making, which the fake Stripe accepts. No email."""
    pairs = []
    for i in range(count):
        c = make_customer(first_name=f"Pool{i}", email=None)
        customer = db.session.get(Customer, c.id)
        customer.stripe_customer_id = f"cus_pool{c.id}"
        card = Card(customer_id=c.id, stripe_payment_method_id=f"pm_pool{c.id}", brand="visa", last4="4242",
                    exp_month=12, exp_year=2034, is_default=True)
        db.session.add(card)
        db.session.commit()
        pairs.append((c.id, card.id))
    return pairs


def open_attempts(ids: list[int]) -> list[ChargeAttempt]:
    db.session.rollback()
    found = list(db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.plan_payment_id.in_(ids),
                                                                ChargeAttempt.status.in_(("pending", "unknown")))))
    db.session.rollback()
    return found


def children_of(pid: int) -> list[int]:
    """The processes `pid` started (Linux /proc), e.g. a `flask jobs run`'s worker processes."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(x) for x in f.read().split()]
    except FileNotFoundError:
        pass
    return found


def assert_gone(pids: list[int], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    alive = pids
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}") and not _zombie(pid)]
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"worker processes outlived their killed run: {alive}")


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_until_quiet(fake, quiet: float = 0.5, timeout: float = 30) -> None:
    """Until the fake Stripe has had no request in flight and no new request for `quiet` seconds (a loaded machine
    can take longer than the fake's latency to serve what a killed runner sent just before it died)."""
    deadline = time.monotonic() + timeout
    seen, since = fake.state.stats["requests"], time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now_seen = fake.state.stats["requests"]
        if now_seen != seen or fake.state.stats["in_flight"]:
            seen, since = now_seen, time.monotonic()
        elif time.monotonic() - since >= max(quiet, LATENCY_MS / 1000 + 0.2):
            return
    raise AssertionError(f"the fake Stripe never went quiet: {fake.state.stats}")


def test_four_runners_of_eight_workers_killed_mid_flight_charge_every_payment_once(app, ctx, smtp, fake_stripe):
    pairs = customers_with_cards(6)
    env = jobs_env(app, {"port": 0}, smtp)
    env.update({"PORTAL_STRIPE_SECRET_KEY": "sk_test_fake", "PORTAL_STRIPE_API_BASE": fake_stripe.url,
                "PORTAL_JOBS_CONCURRENCY": str(CONCURRENCY)})
    stripe = {"url": fake_stripe.url}
    all_ids: list[int] = []
    interrupted = 0
    for trial, killed in enumerate((2, 3)):
        ids = seed_due_payments(pairs, PAYMENTS)
        all_ids += ids
        fake_stripe.state.stats["max_in_flight"] = 0
        procs = [start_run(env) for _ in range(RUNNERS)]
        try:
            # kill `killed` runners once a quarter of the payments have attempts, calls are in flight at Stripe
            # and (PostgreSQL) one of those runners has its worker processes
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                db.session.rollback()
                made = db.session.scalar(select(func.count()).select_from(ChargeAttempt)
                                         .where(ChargeAttempt.plan_payment_id.in_(ids)))
                forked = BACKEND != "postgres" or any(len(children_of(p.pid)) >= 2 for p in procs[:killed])
                if made >= PAYMENTS // 4 and fake_stripe.state.stats["in_flight"] >= 1 and forked:
                    break
                time.sleep(0.002)
            workers_of_killed = [pid for proc in procs[:killed] for pid in children_of(proc.pid)]
            if BACKEND == "postgres":  # a runner spreads its 8 workers over worker processes (2 CPUs here: 2)
                assert len(workers_of_killed) >= min(2, os.cpu_count() or 1), workers_of_killed
            for proc in procs[:killed]:
                proc.send_signal(signal.SIGKILL)
            for proc in procs[:killed]:
                proc.communicate(timeout=30)
            # a killed run's worker processes die with it (as its threads would): nothing charges unsupervised
            assert_gone(workers_of_killed)
        except BaseException:
            for proc in procs:  # a failed trial leaves no run behind to write into the next test's database
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate(timeout=30)
            raise
        left_open = open_attempts(ids)
        at_stripe = {pi["metadata"].get("attempt_key") for pi in fake_stripe.state.intents.values()}
        interrupted += sum(a.idempotency_key in at_stripe for a in left_open)  # charged, outcome not recorded
        for proc in procs[killed:]:
            finish(proc)  # the survivors finish their own work; the open attempts' plans wait for the reconciler
        if BACKEND == "postgres":
            # runners really overlapped their Stripe calls (8 workers each)
            assert fake_stripe.state.stats["max_in_flight"] > RUNNERS, fake_stripe.state.stats
        # what the dead runners sent has been answered: in production the reconciler only asks Stripe about
        # attempts some minutes old (real time); here the runs move the clock, so wait until the fake is quiet
        wait_until_quiet(fake_stripe)
        result = run_jobs(env, later())
        assert result["charge_reconciler"]["errors"] == 0, result
        assert_charged_exactly_once(stripe, ids, f"trial {trial}, {killed} of {RUNNERS} runners killed")

    result = run_jobs(env, later(15))
    assert result["plans"]["charged"] == 0, result
    assert_charged_exactly_once(stripe, all_ids, "after both trials")
    # the kills hit charges in flight: some attempts were charged at Stripe while their runner died
    assert interrupted >= 1


def test_rate_limited_for_a_while_backs_off_with_the_same_key_and_charges_each_payment_once(app, ctx, fake_stripe):
    limited = 6
    pairs = customers_with_cards(4)
    ids = seed_due_payments(pairs, 16)
    config = {**stripe_config(fake_stripe), "JOBS_CONCURRENCY": CONCURRENCY, "JOBS_RATE_LIMIT_BACKOFF_SECONDS": 0.02}
    saved = {key: app.config.get(key) for key in (*config, "JOBS_RATE_LIMIT_RETRIES")}
    app.config.update(config)
    requests.post(fake_stripe.url + "/_fake/config", data={"latency_ms": 20, "rate_limit_creates": limited},
                  timeout=5).raise_for_status()
    try:
        result = scheduler.run_due()

        plans = result["plans"]
        assert (plans["charged"], plans["declined"], plans["rate_limited"]) == (16, 0, limited), plans
        # concurrency adapted: the gate halved at least once (SQLite charges one at a time anyway)
        assert plans["lowest_concurrency"] <= (CONCURRENCY // 2 if BACKEND == "postgres" else 1), plans
        assert_charged_exactly_once({"url": fake_stripe.url}, ids, "rate limited")
        creates = requests.get(fake_stripe.url + "/_fake/creates", timeout=5).json()
        refused = [c["idempotency_key"] for c in creates if c["status"] == 429]
        succeeded = [c["idempotency_key"] for c in creates if c["status"] == 200]
        assert len(refused) == limited and len(succeeded) == 16
        assert set(refused) <= set(succeeded)  # each refused create was asked again with its key, and went through
        # one attempt per payment: a 429 is neither a decline nor a new attempt (no dunning, nothing to reconcile)
        attempts = db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.plan_payment_id.in_(ids))).all()
        assert sorted(a.idempotency_key for a in attempts) == sorted(succeeded)
        assert {r.attempt_count for r in db.session.scalars(select(PlanPayment).where(PlanPayment.id.in_(ids)))} == {1}

        # Still refused after the last retry: nothing was charged, the bill is not failed (no dunning, no email),
        # and the next run charges it with its next attempt.
        (late,) = seed_due_payments(pairs, 1)
        app.config["JOBS_RATE_LIMIT_RETRIES"] = 1
        requests.post(fake_stripe.url + "/_fake/config", data={"rate_limit_creates": 2}, timeout=5).raise_for_status()
        plans = scheduler.run_due()["plans"]
        assert (plans["charged"], plans["declined"], plans["not_submitted"]) == (0, 0, 1), plans
        row = db.session.get(PlanPayment, late)
        assert (row.status, row.failure_code, row.first_failed_at) == ("scheduled", None, None)
        plans = scheduler.run_due()["plans"]
        assert plans["charged"] == 1, plans
        db.session.rollback()
        attempts = db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.plan_payment_id == late)
                                      .order_by(ChargeAttempt.id)).all()
        assert [(a.idempotency_key, a.status, a.decline_code) for a in attempts] == [
            (f"plan_{late}_1", "failed", "not_submitted"), (f"plan_{late}_2", "succeeded", None)]
        assert_charged_exactly_once({"url": fake_stripe.url}, ids + [late], "after the refused one")
    finally:
        app.config.update(saved)


def test_gate_halves_on_rate_limits_and_grows_back_one_at_a_time():
    gate = workers.Gate(8, retries=3, first_backoff=0.0, max_backoff=0.0)
    gate.slow_down()
    assert gate.limit == 4
    gate.slow_down()
    assert (gate.limit, gate.lowest, gate.rate_limited) == (2, 2, 2)
    for _ in range(2):
        gate.succeeded()
    assert gate.limit == 3
    for _ in range(100):
        gate.succeeded()
    assert gate.limit == 8  # never above the pool's size


def test_rate_limited_run_in_worker_processes_backs_off_and_charges_each_payment_once(app, ctx, smtp, fake_stripe):
    """The same as above in a real `flask jobs run` (PostgreSQL: its 8 workers are worker processes, each with its
    own gate): the refused creates are asked again with their keys, the run reports them, nothing is charged
    twice."""
    limited = 6
    ids = seed_due_payments(customers_with_cards(4), 16)
    env = jobs_env(app, {"port": 0}, smtp)
    env.update({"PORTAL_STRIPE_SECRET_KEY": "sk_test_fake", "PORTAL_STRIPE_API_BASE": fake_stripe.url,
                "PORTAL_JOBS_CONCURRENCY": str(CONCURRENCY), "PORTAL_JOBS_RATE_LIMIT_BACKOFF_SECONDS": "0.02"})
    requests.post(fake_stripe.url + "/_fake/config", data={"latency_ms": 20, "rate_limit_creates": limited},
                  timeout=5).raise_for_status()

    plans = run_jobs(env)["plans"]

    assert (plans["charged"], plans["declined"], plans["rate_limited"]) == (16, 0, limited), plans
    assert 1 <= plans["lowest_concurrency"] < CONCURRENCY, plans  # the processes let fewer calls through at once
    assert_charged_exactly_once({"url": fake_stripe.url}, ids, "rate limited, worker processes")
    creates = requests.get(fake_stripe.url + "/_fake/creates", timeout=5).json()
    refused = {c["idempotency_key"] for c in creates if c["status"] == 429}
    succeeded = [c["idempotency_key"] for c in creates if c["status"] == 200]
    assert len(succeeded) == 16 and refused <= set(succeeded)


def test_the_pool_spreads_items_over_worker_processes_and_raises_what_one_of_them_raised(app, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "JOBS_PROCESSES", 2)
    monkeypatch.setitem(app.config, "JOBS_CONCURRENCY", 4)

    def where(item: int) -> str:
        time.sleep(0.01)
        return f"pid {os.getpid()}"

    done = workers.run(range(40), where)
    assert sum(done.values()) == 40
    runs_here = {f"pid {os.getpid()}"}
    if BACKEND == "postgres":  # two forked processes did the work, the run itself none
        assert len(done) == 2 and not runs_here & set(done), done
    else:  # SQLite: one at a time in the run's own thread
        assert set(done) == runs_here

    def fails_once(item: int) -> str:
        if item == 7:
            raise RuntimeError("card processor exploded on item 7")
        return "ok"

    with pytest.raises(Exception, match="exploded on item 7"):
        workers.run(range(40), fails_once)

    if BACKEND == "postgres":  # a worker process that dies mid-run: the run fails and stops the other one too
        import multiprocessing

        def dies_on_item_5(item: int) -> str:
            if item == 5:
                os._exit(3)
            time.sleep(2)  # the other process is slow: the run finds the queue full and a process dead
            return "ok"

        started = time.monotonic()
        with pytest.raises(workers.WorkerProcessError, match="died"):
            workers.run(range(40), dies_on_item_5)
        assert multiprocessing.active_children() == []  # the slow one was stopped, not left waiting for items
        assert time.monotonic() - started < 15


def test_the_fake_stripe_acts_on_no_request_cut_short(fake_stripe):
    """A runner killed while it sends a create: Stripe never has the whole request and charges nothing, and the
    fake does the same (it created a PaymentIntent from what had arrived, without its metadata, and the kill test
    then counted one PaymentIntent more than Payments)."""
    import socket
    from urllib.parse import urlparse

    address = urlparse(fake_stripe.url)
    body = (b"amount=1000&currency=usd&customer=cus_cut&payment_method=pm_cut&confirm=true&off_session=true"
            b"&metadata[attempt_key]=plan_1_1")

    def send(data: bytes) -> bytes:
        with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
            sock.sendall(b"POST /v1/payment_intents HTTP/1.1\r\nHost: fake\r\nAuthorization: Bearer sk_test_fake\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\nIdempotency-Key: cut-1\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + data)
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            return answer

    assert send(body[:40]) == b""  # cut short: no answer, nothing created
    assert requests.get(fake_stripe.url + "/_fake/intents", timeout=5).json() == []
    assert send(body).startswith(b"HTTP/1.")  # the whole request: created
    assert [pi["metadata"]["attempt_key"] for pi in requests.get(fake_stripe.url + "/_fake/intents", timeout=5).json()] \
        == ["plan_1_1"]
