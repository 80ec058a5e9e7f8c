"""Benchmark: the nightly billing run (`flask jobs run`) on PostgreSQL against the fake Stripe (issue 16).

    .venv/bin/python bench/billing.py --url postgresql://postgres@127.0.0.1:5432/bench_billing
    .venv/bin/python bench/billing.py --url ... --sizes 1000 --latencies 250 --concurrency 8
    .venv/bin/python bench/billing.py --url ... --sizes 1000 --latencies 0 --runners 2   # two runners share the work

For each latency (ms per Stripe request, bench/fake_stripe.py in a process of its own) and each N it empties the
database (it must be a database of its own: every table is emptied), generates N due card plan payments (N active
monthly plans, each its own customer with an email, a card on file and one bill with its line, due yesterday),
runs `flask --app wsgi jobs run` in a child process pointed at the fake Stripe (a secret key and
STRIPE_API_BASE, as in production; no SMTP server, so the receipts are printed to the child's stdout) and prints:

  payments/s      N / wall time of the whole `flask jobs run` (start-up, every rule, receipt delivery included)
  wall s          that wall time
  charge s        the plans rule alone: claims, Stripe calls, settlements (each payment paid, its receipt queued and
                  its feed entries written); `settled/s` is N / charge s
  stmts/payment   SQL statements sent by the plans rule / N, and by the whole run / N
  CPU ms/payment  the child's CPU time (all threads, and its worker processes) in the plans rule / N: what the run
                  itself costs, whatever else the machine is doing (wall times depend on that load: the header and
                  footer print it)
  (fake Stripe)   the fake Stripe's CPU time during the run / N: the machine's cores it took from the run (real
                  Stripe's work is done elsewhere)
  (PostgreSQL)    the local PostgreSQL server's CPU time during the whole run / N (its processes in /proc, with
                  the backends it has reaped): the database's share of the same cores
  peak RSS MB     the child's peak resident memory (the largest process's: runners and their worker processes)
  charges/payment the fake Stripe's succeeded PaymentIntents per plan payment: must be exactly 1 for every payment
                  (and every payment paid in the database)

Targets (issue 16; 2 cores), checked on the settling (the plans rule; the receipts' delivery by the emails rule
that follows is shown in the whole run's wall time): 250 ms → 1,000 payments settled in ≤ 60 s; 0 ms → ≥ 150
settled/s at N = 1,000; cost per payment at N = 5,000 within 1.3× of N = 300; peak memory at N = 5,000 ≤ 1.5× of
N = 300. Exits 1 when a target or the exactly-once check fails. Not part of `make test`.

The child is `flask --app wsgi jobs run` itself (flask.cli.main in this file's `--child` mode) with two listeners
added before it starts: one counts SQL statements (SQLAlchemy's before_cursor_execute) per scheduler rule, one
writes those counts and the peak RSS to a file when it exits.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES = (300, 1000, 5000)
LATENCIES = (0, 250)


# --- The child: `flask jobs run` with a statement counter ----------------------------------------------------

def child() -> None:
    """Runs in the child process: count statements per rule, then hand over to the flask CLI."""
    import atexit

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from portal.services.platform import scheduler

    counts: Counter = Counter()
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    current = {"rule": "start-up"}

    @event.listens_for(Engine, "before_cursor_execute")
    def _count(*_args, **_kwargs):
        counts[current["rule"]] += 1

    register = scheduler.register

    def counted_register(name, rule):
        def timed():
            current["rule"] = name
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                return rule()
            finally:
                seconds[name] = time.perf_counter() - started
                cpu[name] = time.process_time() - cpu_started
                current["rule"] = "after"
        register(name, timed)

    scheduler.register = counted_register

    from portal.services.platform import workers

    process_main = workers._process_main

    def counted_process_main(*args, **kwargs):
        """A worker process forked by the run (PORTAL_JOBS_PROCESSES): its statements, CPU and peak memory,
        written to a file of its own (it ends with os._exit, so atexit does not run there)."""
        counts.clear()
        try:
            return process_main(*args, **kwargs)
        finally:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            Path(f"{os.environ['BENCH_STATS_FILE']}.{os.getpid()}").write_text(json.dumps(
                {"statements": dict(counts), "cpu_total": usage.ru_utime + usage.ru_stime,
                 "peak_rss_mb": usage.ru_maxrss / 1024}))

    workers._process_main = counted_process_main

    def report():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        Path(os.environ["BENCH_STATS_FILE"]).write_text(json.dumps(
            {"statements": dict(counts), "seconds": seconds, "cpu": cpu, "cpu_total": usage.ru_utime + usage.ru_stime,
             "peak_rss_mb": usage.ru_maxrss / 1024}))

    atexit.register(report)
    sys.argv = ["flask", "--app", "wsgi", "jobs", "run"]
    from flask.cli import main

    main()


# --- The parent --------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_fake_stripe(latency_ms: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "fake_stripe.py"), "--port", str(port),
                             "--latency-ms", str(latency_ms)], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/_fake/stats", timeout=1)
            return proc, url
        except requests.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the fake Stripe did not start")


def make_app(url: str):
    from portal import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "BASE_URL": "http://bench"})


def prepare_schema(app) -> None:
    from sqlalchemy import text

    from portal.extensions import db

    with app.app_context():
        db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        db.session.commit()
        db.create_all()


def generate(app, n: int) -> None:
    """Empty every table, then N customers, each with an email, a card, an active monthly plan and its bill
    due yesterday (business time), with one line. Bulk inserts (the generator is not what is measured)."""
    from sqlalchemy import insert, text

    from portal import clock
    from portal.extensions import db
    from portal.models import Card, Customer, CustomerEmail, CustomerPlan, PlanPayment, PlanPaymentLine

    with app.app_context():
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        due = clock.today() - timedelta(days=1)
        now = clock.now()
        ids = range(1, n + 1)
        db.session.execute(insert(Customer), [
            {"id": i, "first_name": f"Bench{i}", "last_name": "Customer", "status": "active",
             "stripe_customer_id": f"cus_bench{i}", "created_at": now, "updated_at": now} for i in ids])
        db.session.execute(insert(CustomerEmail), [
            {"customer_id": i, "email": f"bench{i}@example.test", "is_primary": True} for i in ids])
        db.session.execute(insert(Card), [
            {"id": i, "customer_id": i, "stripe_payment_method_id": f"pm_bench{i}", "brand": "visa", "last4": "4242",
             "exp_month": 12, "exp_year": due.year + 3, "is_default": True, "created_at": now} for i in ids])
        db.session.execute(insert(CustomerPlan), [
            {"id": i, "customer_id": i, "name": "Comfort Club", "status": "active", "frequency": "monthly",
             "offered_frequencies": "monthly", "price_monthly_cents": 2_000 + i, "price_cents": 2_000 + i,
             "payment_method": "card", "card_id": i, "billing_anchor_day": due.day, "start_date": due,
             "next_billing_date": due + timedelta(days=31), "created_at": now} for i in ids])
        db.session.execute(insert(PlanPayment), [
            {"id": i, "plan_id": i, "due_date": due, "amount_cents": 2_000 + i, "status": "scheduled",
             "method": "card", "card_id": i, "attempt_count": 0, "retries_exhausted": False,
             "is_first_payment": False, "created_at": now} for i in ids])
        db.session.execute(insert(PlanPaymentLine), [
            {"plan_payment_id": i, "description": "Comfort Club (Monthly)", "amount_cents": 2_000 + i} for i in ids])
        for table in ("customers", "cards", "customer_plans", "plan_payments"):
            db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {n})"))
        db.session.commit()
        db.session.execute(text("ANALYZE"))
        db.session.commit()


def run_jobs(url: str, stripe_url: str, concurrency: int | None, instance: str, runners: int = 1,
             processes: int | None = None) -> tuple[dict, dict, float]:
    """`runners` `flask jobs run` processes started together (they share the work through SKIP LOCKED); returns
    the plans rule's results summed, the statistics combined (statements and CPU summed, the plans rule's time and
    peak memory of the slowest / largest process) and the wall time until the last one exits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_") and k != "DATABASE_URL"}
    env.update({"DATABASE_URL": url, "PORTAL_INSTANCE_PATH": instance, "PORTAL_SECRET_KEY": "bench",
                "PORTAL_BASE_URL": "http://bench", "PORTAL_STRIPE_SECRET_KEY": "sk_test_bench",
                "PORTAL_STRIPE_API_BASE": stripe_url})
    if concurrency is not None:
        env["PORTAL_JOBS_CONCURRENCY"] = str(concurrency)
    if processes is not None:
        env["PORTAL_JOBS_PROCESSES"] = str(processes)
    procs = []
    started = time.perf_counter()
    for k in range(runners):
        paths = {name: os.path.join(instance, f"{name}.{k}") for name in ("stdout", "stderr", "stats")}
        with open(paths["stdout"], "w") as out, open(paths["stderr"], "w") as err:
            procs.append((subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child"], cwd=REPO,
                                           env={**env, "BENCH_STATS_FILE": paths["stats"]}, stdout=out, stderr=err),
                          paths))
    for proc, _paths in procs:
        proc.wait()
    wall = time.perf_counter() - started
    results: dict = {"plans": Counter()}
    stats: dict = {"statements": Counter(), "seconds": {}, "cpu": Counter(), "peak_rss_mb": 0.0}
    for proc, paths in procs:
        if proc.returncode != 0:
            raise RuntimeError(f"`flask jobs run` exited {proc.returncode}:\n"
                               + Path(paths["stderr"]).read_text()[-3000:])
        text = Path(paths["stdout"]).read_text()
        one = json.loads(text[text.rindex("\n{\n") + 1:] if "\n{\n" in text else text[text.index("{"):])
        results["plans"].update({k: v for k, v in one["plans"].items() if isinstance(v, int)})
        child = json.loads(Path(paths["stats"]).read_text())
        stats["statements"].update(child["statements"])
        stats["cpu"].update(child["cpu"])
        for forked in Path(paths["stats"]).parent.glob(Path(paths["stats"]).name + ".*"):
            # the run's worker processes: their statements and CPU are the plans rule's (its only forked work)
            one = json.loads(forked.read_text())
            stats["statements"].update(one["statements"])
            stats["cpu"]["plans"] += one["cpu_total"]
            stats["peak_rss_mb"] = max(stats["peak_rss_mb"], one["peak_rss_mb"])
        for rule, seconds in child["seconds"].items():
            stats["seconds"][rule] = max(stats["seconds"].get(rule, 0.0), seconds)
        stats["peak_rss_mb"] = max(stats["peak_rss_mb"], child["peak_rss_mb"])
    return results, stats, wall


def postgres_cpu_seconds() -> float | None:
    """CPU seconds used so far by the local PostgreSQL server's processes (live ones, and the exited backends the
    postmaster has reaped: its cutime/cstime), from /proc. None when no local server is visible."""
    total, found = 0, False
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        found = True
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK") if found else None


def check_once(app, stripe_url: str, n: int) -> tuple[float, list[str]]:
    """Succeeded PaymentIntents per plan payment (from the fake Stripe's record), and what is wrong, if anything."""
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import Payment, PlanPayment

    intents = requests.get(stripe_url + "/_fake/intents", timeout=60).json()
    per_payment: Counter = Counter()
    for pi in intents:
        key = pi["metadata"].get("attempt_key", "")
        parts = key.split("_")
        if pi["status"] == "succeeded" and len(parts) == 3 and parts[0] == "plan":
            per_payment[int(parts[1])] += 1
    problems = []
    wrong = {pid: c for pid, c in per_payment.items() if c != 1}
    if wrong:
        problems.append(f"payments charged more than once: {dict(list(wrong.items())[:10])}")
    if len(per_payment) != n:
        problems.append(f"{n - len(per_payment)} payments without a charge")
    with app.app_context():
        paid = db.session.scalar(select(func.count()).select_from(PlanPayment).where(PlanPayment.status == "paid"))
        payments = db.session.scalar(select(func.count()).select_from(Payment))
    if paid != n or payments != n:
        problems.append(f"database: {paid} paid plan payments, {payments} payments, expected {n}")
    return (sum(per_payment.values()) / n if n else 0.0), problems


def main() -> int:
    if "--child" in sys.argv:
        child()
        return 0
    parser = argparse.ArgumentParser(description="The billing run against the fake Stripe (issue 16).")
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL",
                                                        "postgresql://postgres@127.0.0.1:5432/bench_billing"))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--latencies", default=",".join(map(str, LATENCIES)))
    parser.add_argument("--concurrency", type=int, default=None, help="PORTAL_JOBS_CONCURRENCY (default: 8)")
    parser.add_argument("--processes", type=int, default=None,
                        help="PORTAL_JOBS_PROCESSES (default: the CPU count, at most 4)")
    parser.add_argument("--runners", type=int, default=1, help="`flask jobs run` processes started together (1)")
    args = parser.parse_args()
    if not args.url.startswith("postgresql"):
        parser.error("the benchmark runs on PostgreSQL (--url postgresql://…)")
    sizes = [int(s) for s in args.sizes.split(",")]
    latencies = [float(s) for s in args.latencies.split(",")]

    app = make_app(args.url)
    prepare_schema(app)
    load = os.getloadavg()
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average before "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, PORTAL_JOBS_CONCURRENCY={args.concurrency or 'default (8)'}, "
          f"PORTAL_JOBS_PROCESSES={args.processes or 'default (' + str(min(os.cpu_count() or 1, 4)) + ')'}, "
          f"{args.runners} runner(s)")
    header = (f"{'latency':>8} {'N':>6} {'payments/s':>11} {'wall s':>7} {'charge s':>9} {'settled/s':>10} "
              f"{'stmts/payment':>14} "
              f"{'(whole run)':>12} {'CPU ms/payment':>15} {'(fake Stripe)':>14} {'(PostgreSQL)':>13} "
              f"{'peak RSS MB':>12} "
              f"{'charges/payment':>16}")
    print(header)
    print("-" * len(header))
    rows = []
    failed = []
    for latency in latencies:
        fake, stripe_url = start_fake_stripe(latency)
        try:
            for n in sizes:
                requests.post(stripe_url + "/_fake/reset", timeout=10).raise_for_status()
                generate(app, n)
                fake_cpu = requests.get(stripe_url + "/_fake/stats", timeout=10).json()["cpu_seconds"]
                pg_cpu = postgres_cpu_seconds()
                with tempfile.TemporaryDirectory(prefix="bench-billing-") as instance:
                    results, stats, wall = run_jobs(args.url, stripe_url, args.concurrency, instance,
                                                    args.runners, args.processes)
                fake_cpu = requests.get(stripe_url + "/_fake/stats", timeout=10).json()["cpu_seconds"] - fake_cpu
                pg_after = postgres_cpu_seconds()
                pg_ms = (pg_after - pg_cpu) / n * 1000 if pg_cpu is not None and pg_after is not None else float("nan")
                per_payment, problems = check_once(app, stripe_url, n)
                charged = results["plans"]["charged"]
                if charged != n:
                    problems.append(f"the run charged {charged} of {n}")
                plan_statements = stats["statements"].get("plans", 0) / n
                all_statements = sum(stats["statements"].values()) / n
                row = {"latency": latency, "n": n, "rate": n / wall, "wall": wall,
                       "charge": stats["seconds"].get("plans", 0.0), "stmts": plan_statements,
                       "all_stmts": all_statements, "rss": stats["peak_rss_mb"], "per_payment": per_payment,
                       "cpu_ms": stats["cpu"].get("plans", 0.0) / n * 1000, "fake_cpu_ms": fake_cpu / n * 1000,
                       "pg_cpu_ms": pg_ms}
                rows.append(row)
                print(f"{latency:>6.0f}ms {n:>6} {row['rate']:>11.1f} {wall:>7.1f} {row['charge']:>9.1f} "
                      f"{n / row['charge'] if row['charge'] else 0:>10.1f} "
                      f"{plan_statements:>14.1f} {all_statements:>12.1f} {row['cpu_ms']:>15.1f} "
                      f"{row['fake_cpu_ms']:>14.1f} {row['pg_cpu_ms']:>13.1f} "
                      f"{row['rss']:>12.0f} "
                      f"{per_payment:>16.2f}",
                      flush=True)
                for p in problems:
                    failed.append(f"{latency:.0f} ms, N={n}: {p}")
        finally:
            fake.terminate()
            fake.wait(10)
    load = os.getloadavg()
    print(f"# load average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    failed += targets(rows)
    for line in failed:
        print("MISSED:", line)
    return 1 if failed else 0


def targets(rows: list[dict]) -> list[str]:
    missed = []
    by = {(r["latency"], r["n"]): r for r in rows}
    slow = by.get((250.0, 1000))
    if slow and slow["charge"] > 60:
        missed.append(f"250 ms, N=1000: settled in {slow['charge']:.1f} s > 60 s")
    fast = by.get((0.0, 1000))
    if fast and 1000 / fast["charge"] < 150:
        missed.append(f"0 ms, N=1000: {1000 / fast['charge']:.1f} settled/s < 150")
    for latency in {r["latency"] for r in rows}:
        small, large = by.get((latency, 300)), by.get((latency, 5000))
        if small and large:
            cost_small, cost_large = small["charge"] / 300, large["charge"] / 5000
            if cost_large > 1.3 * cost_small:
                missed.append(f"{latency:.0f} ms: {cost_large * 1000:.1f} ms a payment at N=5000 > 1.3 × "
                              f"{cost_small * 1000:.1f} ms at N=300")
            if large["rss"] > 1.5 * small["rss"]:
                missed.append(f"{latency:.0f} ms: peak RSS {large['rss']:.0f} MB at N=5000 > 1.5 × "
                              f"{small['rss']:.0f} MB at N=300")
    return missed


if __name__ == "__main__":
    sys.exit(main())
