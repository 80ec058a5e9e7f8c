"""Benchmark: the busiest pages with a customer who has years of history.

    .venv/bin/python bench/pages.py [--rows 300] [--runs 20]

Targets (median on a 2-core machine, SQLite): portal home < 150 ms, client card < 250 ms,
portal invoices < 150 ms. Prints the timings and exits 1 when a target is missed. Not part of `make test`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGETS_MS = {"portal home": 150, "portal invoices": 150, "client card": 250}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300, help="jobs, invoices, estimates, notes and events")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    from portal import create_app
    from portal.extensions import db
    from portal.models import ActivityEvent, Customer, StaffUser
    from portal.services.platform import magic_links
    from tests.factories import make_customer, make_estimate, make_invoice, make_job, make_plan, make_staff

    folder = tempfile.mkdtemp(prefix="portal-bench-")
    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/bench.sqlite3", "BASE_URL": "http://bench"})
    with app.app_context():
        db.create_all()
        staff = make_staff("admin")
        customer = make_customer("Busy", "Customer")
        make_plan(customer, payments=[(date(2024, 1, 1) + timedelta(days=30 * k), "paid") for k in range(24)])
        for i in range(args.rows):
            make_invoice(customer, 5_000 + i)
            make_estimate(customer)
            if i % 3 == 0:
                make_job(customer, f"Job {i}", visit_in_days=(i % 60) - 30)
            db.session.add(ActivityEvent(customer_id=customer.id, event_type="note", summary=f"event {i}",
                                         actor_kind="staff", actor_staff_id=staff.id))
        db.session.commit()
        token = magic_links.issue_token(db.session.get(Customer, customer.id))
        staff_email = db.session.get(StaffUser, staff.id).email

    portal, admin = app.test_client(), app.test_client()
    portal.get(f"/portal/magic/{token}")
    from tests.factories import PASSWORD

    admin.post("/admin/login", data={"email": staff_email, "password": PASSWORD})
    pages = {"portal home": (portal, "/portal/"), "portal invoices": (portal, "/portal/invoices?show=all"),
             "client card": (admin, f"/admin/customers/{customer.id}")}
    missed = 0
    for name, (client, url) in pages.items():
        client.get(url)  # warm up
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        median = statistics.median(times)
        ok = median <= TARGETS_MS[name]
        missed += not ok
        print(f"{name:16} median {median:7.1f} ms  p90 {sorted(times)[int(len(times) * .9) - 1]:7.1f} ms  "
              f"target {TARGETS_MS[name]} ms  {'ok' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
