"""`flask seed-demo`: a believable business, the admin login and a portal link that logs in."""
import re

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Customer, Estimate, Invoice, Job, PaymentAllocation, PlanPayment, StaffUser, Visit
from tests.helpers import csrf_token_from


def test_seed_demo_creates_a_business_and_prints_logins_that_work(app, runner):
    result = runner.invoke(args=["seed-demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        roles = sorted(db.session.scalars(select(StaffUser.role)))
        statuses = set(db.session.scalars(select(Customer.status)))
        count = lambda model: db.session.scalar(select(func.count()).select_from(model))
        assert roles == ["admin", "office", "technician"]
        assert count(Customer) >= 25 and {"lead", "active", "inactive", "archived", "blacklisted"} <= statuses
        assert count(Job) > 10 and count(Visit) > 10 and count(Invoice) > 5 and count(Estimate) > 0
        assert db.session.scalar(select(PlanPayment).where(PlanPayment.status == "failed")) is not None
        # every paid invoice is backed by a recorded payment, so the ledger and reports add up
        paid = db.session.scalars(select(Invoice).where(Invoice.status == "paid")).all()
        assert paid and all(i.paid_cents == db.session.scalar(
            select(func.sum(PaymentAllocation.amount_cents)).where(PaymentAllocation.invoice_id == i.id))
            for i in paid)

    login = re.search(r"Admin login:\s+(\S+) / (\S+)", result.output)
    link = re.search(r"http://portal\.test(/portal/magic/\S+)", result.output)
    assert login and link

    staff = app.test_client()
    token = csrf_token_from(staff.get("/admin/login").get_data(True))
    r = staff.post("/admin/login", data={"email": login.group(1), "password": login.group(2), "csrf_token": token})
    assert r.status_code == 302
    assert "Maria Lopez" in staff.get("/admin/customers?q=lopez").get_data(True)
    report = staff.get("/admin/reports/transactions?from=2024-01-01&to=2030-12-31")
    assert report.status_code == 200 and "check" in report.get_data(True)

    customer = app.test_client()
    assert customer.get(link.group(1)).status_code == 302
    assert "Hello, Maria" in customer.get("/portal/").get_data(True)

    again = runner.invoke(args=["seed-demo", "--if-empty"])
    assert "nothing seeded" in again.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(StaffUser)) == 3
