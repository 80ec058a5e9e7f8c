"""Pages load their data in a bounded number of queries: more rows, not more queries."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import date, timedelta

from sqlalchemy import event

from portal.extensions import db
from portal.models import Customer, StaffUser
from portal.services import crm, work
from tests.factories import make_customer, make_estimate, make_invoice, make_job, make_plan, make_staff


@contextmanager
def counting(app):
    counter = {"n": 0}

    def count(*_args, **_kwargs):
        counter["n"] += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _grow(customer_id: int, staff_ids: list[int], n: int) -> None:
    """n of everything: jobs with visits, invoices, estimates, notes and contacts by different staff."""
    customer = db.session.get(Customer, customer_id)
    for i in range(n):
        staff = db.session.get(StaffUser, staff_ids[i % len(staff_ids)])
        job = make_job(customer, f"Job {i}", visit_in_days=i + 1, technician=staff)
        make_invoice(customer, 1_000 + i)
        make_estimate(customer)
        crm.add_note(customer, staff, f"note {i}")
        crm.log_contact(customer, staff, channel="call", outcome=f"call {i}", contacted_at=None)
        if i % 2:
            work.set_status(db.session.get(type(job), job.id), staff, "finished")
        db.session.commit()


def _queries(app, client, url: str) -> int:
    with counting(app) as counter:
        assert client.get(url).status_code == 200
    return counter["n"]


def test_client_card_and_portal_pages_do_not_grow_with_rows(app, client, login_staff, login_customer):
    with app.app_context():
        staff = [make_staff("office") for _ in range(4)]
        small, big = make_customer("Small"), make_customer("Big")
        for c in (small, big):
            make_plan(c, payments=[(date(2026, 1, 1) + timedelta(days=30 * k), "paid") for k in range(3)])
        _grow(small.id, [s.id for s in staff], 2)
        _grow(big.id, [s.id for s in staff], 12)
    login_staff(staff[0])
    assert _queries(app, client, f"/admin/customers/{big.id}") == _queries(app, client, f"/admin/customers/{small.id}")
    assert _queries(app, client, "/admin/") <= 20
    staff_client, portal_small, portal_big = client, app.test_client(), app.test_client()
    login_customer(small, c=portal_small)
    login_customer(big, c=portal_big)
    for url in ("/portal/", "/portal/invoices?show=all", "/portal/appointments", "/portal/estimates",
                "/portal/plans"):
        assert _queries(app, portal_big, url) == _queries(app, portal_small, url), url
    assert staff_client is client
