"""Benchmark: every busy admin and portal page against a floor route, in-process, on PostgreSQL.

    .venv/bin/python bench/pages.py --url postgresql://postgres@127.0.0.1:5432/bench --scale 1.0 [--runs 15]
    .venv/bin/python bench/pages.py --url ... --no-generate      # reuse the business generated last time

It generates the business first (bench/generate.py: it empties that database), then requests each page WARM_UP
times (a worker's steady state) and `--runs` times more through the app (test client: the whole Flask stack, no
network) and prints: page, median ms, floor ms, floor ratio (the floor's median / the page's: its share of the
floor's throughput), queries, KB. The floor is a route added to the same app: one primary-key query and a tiny
template, requested `--runs` times right before and right after each page (the machine's speed drifts over a run
by a fifth or more; the floor row is the median of all those). Then a year of transactions as CSV runs in a child
process (time and peak memory). Targets (issue 15): HTML pages ratio >= 0.10, <= 20 queries, <= 300 KB; PDF and CSV
ratio >= 0.04; the year CSV < 60 s and < 300 MB. Exits 1 when a target is missed. Not part of `make test`.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HTML_RATIO, FILE_RATIO, MAX_QUERIES, MAX_KB = 0.10, 0.04, 20, 300
WARM_UP = 12  # requests of each page before it is measured (psycopg prepares on the 6th run, PostgreSQL plans the
# first 5 executions of a prepared statement itself before it settles on a plan)


def _app(url: str):
    from flask import render_template_string

    from portal import create_app
    from portal.extensions import db
    from portal.models import Customer

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False,
                      "BASE_URL": "http://bench", "RATELIMIT_ENABLED": False})

    def floor():
        customer = db.session.get(Customer, 2)
        return render_template_string("<!doctype html><title>floor</title><p>{{ name }}</p>",
                                      name=customer.first_name if customer else "")

    app.add_url_rule("/bench/floor", "bench_floor", floor)
    return app


def _counter(app):
    """Counts the queries of a request, and remembers its slowest one (ms, the start of its SQL)."""
    from sqlalchemy import event

    from portal.extensions import db

    counter: dict = {"n": 0, "slowest": (0.0, "")}

    def before(conn, cursor, statement, *args):
        counter["n"] += 1
        conn.info["bench_t"] = time.perf_counter()

    def after(conn, cursor, statement, *args):
        ms = (time.perf_counter() - conn.info.pop("bench_t", time.perf_counter())) * 1000
        if ms > counter["slowest"][0]:
            counter["slowest"] = (ms, " ".join(statement.split())[:70])

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", before)
        event.listen(db.engine, "after_cursor_execute", after)
    return counter


def measure(url: str, runs: int) -> list[tuple]:
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import Customer, Invoice
    from portal.services.platform import magic_links

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from flask_migrate import upgrade
    from generate import BUSY_ID, PASSWORD, STAFF_EMAIL

    app = _app(url)
    with app.app_context():  # a business generated before newer migrations
        upgrade(directory=str(Path(__file__).resolve().parents[1] / "migrations"), revision="heads")
    counter = _counter(app)
    with app.app_context():
        token = magic_links.issue_token(db.session.get(Customer, BUSY_ID))
        db.session.commit()
        invoice_id = db.session.scalar(select(Invoice.id).where(Invoice.customer_id == BUSY_ID)
                                       .order_by(Invoice.id.desc()).limit(1))
    floor, admin, portal = app.test_client(), app.test_client(), app.test_client()
    r = admin.post("/admin/login", data={"email": STAFF_EMAIL, "password": PASSWORD})
    assert r.status_code == 302, ("staff login", r.status_code)
    assert portal.get(f"/portal/magic/{token}").status_code in (200, 302)
    today = date.today()
    month = f"from={today.replace(day=1).isoformat()}&to={today.isoformat()}"
    year = f"from={today.replace(month=1, day=1).isoformat()}&to={today.isoformat()}"
    pages = [
        ("floor", floor, "/bench/floor", "floor"),
        ("/admin/ (dashboard)", admin, "/admin/", "html"),
        ("/admin/customers", admin, "/admin/customers", "html"),
        ("/admin/customers/<busy> (client card)", admin, f"/admin/customers/{BUSY_ID}", "html"),
        ("/admin/invoices", admin, "/admin/invoices", "html"),
        ("/admin/overdue", admin, "/admin/overdue", "html"),
        ("/admin/reports/plans", admin, "/admin/reports/plans", "html"),
        ("/admin/reports/transactions (month)", admin, f"/admin/reports/transactions?{month}", "html"),
        ("/admin/reports/transactions (from Jan 1)", admin, f"/admin/reports/transactions?{year}", "html"),
        ("/admin/reports/transactions CSV (month)", admin, f"/admin/reports/transactions?{month}&format=csv",
         "file"),
        ("/admin/messages", admin, "/admin/messages", "html"),
        ("/admin/outbox", admin, "/admin/outbox", "html"),
        ("/portal/", portal, "/portal/", "html"),
        ("/portal/invoices", portal, "/portal/invoices?show=all", "html"),
        ("/portal/invoices/<id>", portal, f"/portal/invoices/{invoice_id}", "html"),
        ("/portal/invoices/<id>.pdf", portal, f"/portal/invoices/{invoice_id}.pdf", "file"),
        ("/portal/appointments", portal, "/portal/appointments", "html"),
        ("/portal/estimates", portal, "/portal/estimates", "html"),
        ("/portal/messages", portal, "/portal/messages", "html"),
    ]
    floor_client = pages[0][1]

    def sample(client, path: str) -> tuple[list[float], int, int, list[tuple[float, str]]]:
        """`runs` requests in a row: their times, the query count, the body's size, each one's slowest query."""
        times, queries, size, slowest = [], 0, 0, []
        for _ in range(runs):
            counter["n"], counter["slowest"] = 0, (0.0, "")
            start = time.perf_counter()
            response = client.get(path)
            body = response.get_data()
            times.append((time.perf_counter() - start) * 1000)
            queries, size = counter["n"], len(body)
            slowest.append(counter["slowest"])
            assert response.status_code == 200, (path, response.status_code)
        return times, queries, size, slowest

    results = []
    floors: list[float] = []
    for name, client, path, kind in pages[1:]:
        for _ in range(WARM_UP):  # a worker that has served the page a while: the PDF font loaded, the page's
            response = client.get(path)  # statements prepared and past PostgreSQL's first custom plans
            response.get_data()
            assert response.status_code == 200, (path, response.status_code)
        # the floor is measured right before and right after each page, so both see the machine in the same moment
        floor_times = sample(floor_client, "/bench/floor")[0]
        times, queries, size, slowest = sample(client, path)
        floor_times += sample(floor_client, "/bench/floor")[0]
        floors += floor_times
        sql_ms = statistics.median(ms for ms, _ in slowest)
        results.append((name, kind, statistics.median(times), queries, size / 1024, (sql_ms, max(slowest)[1]),
                        statistics.median(floor_times)))
    floor = statistics.median(floors)
    results.insert(0, ("floor", "floor", floor, 2, 0.0, (0.0, "the floor route"), floor))
    return results


def csv_year(url: str) -> tuple[float, float, int]:
    """One year of transactions as CSV in this (fresh) process: seconds, peak MB, bytes."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from generate import PASSWORD, STAFF_EMAIL

    app = _app(url)
    admin = app.test_client()
    admin.post("/admin/login", data={"email": STAFF_EMAIL, "password": PASSWORD})
    today = date.today()
    start = time.perf_counter()
    response = admin.get(f"/admin/reports/transactions?from={today.replace(year=today.year - 1).isoformat()}"
                         f"&to={today.isoformat()}&format=csv", buffered=False)
    size = sum(len(chunk) for chunk in response.response)
    seconds = time.perf_counter() - start
    return seconds, _peak_mb(), size


def _peak_mb() -> float:
    """This process's peak resident memory. Linux: VmHWM, which starts over at exec (ru_maxrss may still carry
    the forking parent's peak, e.g. after generating a business in the same run)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="a PostgreSQL database it may empty")
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-generate", action="store_true")
    parser.add_argument("--csv-year-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    url = args.url.replace("postgresql://", "postgresql+psycopg://", 1)
    if args.csv_year_only:
        seconds, mb, size = csv_year(url)
        print(f"{seconds:.2f} {mb:.1f} {size}")
        return 0
    if not args.no_generate:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from generate import generate

        counts = generate(url, args.scale)
        print(f"generated scale {args.scale}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    results = measure(url, args.runs)
    missed = 0
    print("\n| page | median ms | floor ms | floor ratio | queries | KB | | slowest query (median ms, SQL) |\n"
          "|---|---:|---:|---:|---:|---:|---|---|")
    for name, kind, median, queries, kb, (sql_ms, sql), floor_ms in results:
        ratio = floor_ms / median if median else 0
        ok = kind == "floor" or (ratio >= (HTML_RATIO if kind == "html" else FILE_RATIO)
                                 and (kind == "file" or (queries <= MAX_QUERIES and kb <= MAX_KB)))
        missed += not ok
        print(f"| {name} | {median:.1f} | {floor_ms:.2f} | {ratio:.3f} | {queries} | {kb:.1f} "
              f"| {'ok' if ok else 'MISSED'} | {sql_ms:.1f} `{sql}` |")
    child = subprocess.run([sys.executable, __file__, "--url", url, "--csv-year-only"], capture_output=True,
                           text=True, check=True)
    seconds, mb, size = child.stdout.split()[-3:]
    ok = float(seconds) < 60 and float(mb) < 300
    missed += not ok
    print(f"\nA year of transactions as CSV: {float(seconds):.1f} s, peak memory {float(mb):.0f} MB, "
          f"{int(size) / 1e6:.1f} MB of CSV — {'ok' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
