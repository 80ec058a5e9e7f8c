from __future__ import annotations
import pytest
from sqlalchemy import func, select
from portal.extensions import db
from portal.models import Invoice, Job, ContactTask, ActivityEvent, Estimate
from tests.factories import make_customer, make_staff, make_job, make_invoice, make_estimate
from tests.helpers import csrf_token_from


@pytest.fixture
def as_staff(app, login_staff):
    def _as(user):
        c = app.test_client()
        login_staff(user, c=c)
        import re as _re
        m = _re.search(r'name="csrf_token"[^>]*value="([^"]+)"', c.get("/admin/").get_data(True)) or _re.search(r'name="csrf_token"[^>]*value="([^"]+)"', c.get("/admin/customers/" + str(_cid[0])).get_data(True))
        c.csrf = m.group(1)
        return c
    return _as


_cid=[0]

def P(c, url, data=None):
    return c.post(url, data={"csrf_token": c.csrf, **(data or {})})


def test_probes(app, as_staff):
    actx = app.app_context(); actx.push()
    admin = make_staff("admin"); office = make_staff("office"); tech = make_staff("technician")
    cust = make_customer()
    job = make_job(cust, technician=tech)
    actx.pop()
    c = as_staff(admin)
    out = {}
    cid = cust.id
    _cid[0] = cid
    out["task_year9999"] = P(c, f"/admin/customers/{cid}/task", {"due_at": "9999-12-31T23:59"}).status_code
    out["task_assignee_sup2"] = P(c, f"/admin/customers/{cid}/task", {"due_at": "2030-01-01T10:00", "assignee_id": "²"}).status_code
    out["task_assignee_huge"] = P(c, f"/admin/customers/{cid}/task", {"due_at": "2030-01-01T10:00", "assignee_id": "9"*25}).status_code
    out["reassign_sup2"] = P(c, f"/admin/customers/{cid}/manager", {"manager_id": "²"}).status_code
    out["reassign_huge"] = P(c, f"/admin/customers/{cid}/manager", {"manager_id": "9"*25}).status_code
    out["list_manager_huge"] = c.get("/admin/customers?manager=" + "9"*25).status_code
    out["job_new_tech_sup2"] = P(c, f"/admin/customers/{cid}/jobs/new", {"title": "x", "technician_id": "²"}).status_code
    out["visit_9999"] = P(c, f"/admin/jobs/{job.id}/visits", {"day": "9999-12-31", "start": "20:00", "end": "23:00"}).status_code
    out["visit_tech_sup2"] = P(c, f"/admin/jobs/{job.id}/visits", {"day": "2030-01-01", "start": "09:00", "end": "10:00", "technician_id": "²"}).status_code
    out["invoice_issue_9999"] = P(c, f"/admin/customers/{cid}/invoices/new", {"issue_date": "9999-12-31", "discount_percent": "0", "tax_percent": "0", "line-0-description": "a", "line-0-quantity": "1", "line-0-price": "10"}).status_code
    out["invoice_disc100"] = P(c, f"/admin/customers/{cid}/invoices/new", {"discount_percent": "100", "tax_percent": "0", "line-0-description": "a", "line-0-quantity": "1", "line-0-price": "10"}).get_data(True)
    import re
    m = re.search(r'role="alert">([^<]*)<', out["invoice_disc100"]); out["invoice_disc100"] = m and m.group(1)
    out["contact_year1"] = P(c, f"/admin/customers/{cid}/contacts", {"channel": "phone", "contacted_at": "0001-01-01T00:00"}).status_code
    out["activity_page_huge"] = c.get(f"/admin/customers/{cid}/activity?page=" + "9"*30).status_code
    out["invoices_page_huge"] = c.get(f"/admin/invoices?page=" + "9"*30).status_code
    out["list_page_huge"] = c.get(f"/admin/customers?page=" + "9"*30).status_code
    # double submit job_new
    for _ in range(2):
        P(c, f"/admin/customers/{cid}/jobs/new", {"title": "Double", "line-0-description": "a", "line-0-price": "1"})
    with app.app_context(): out["jobs_titled_double"] = db.session.scalar(select(func.count()).select_from(Job).where(Job.title == "Double"))
    for _ in range(2):
        P(c, f"/admin/customers/{cid}/invoices/new", {"discount_percent": "0", "tax_percent": "0", "notes": "dbl", "line-0-description": "a", "line-0-quantity": "1", "line-0-price": "10"})
    with app.app_context(): out["invoices_dbl"] = db.session.scalar(select(func.count()).select_from(Invoice).where(Invoice.notes == "dbl"))
    # office sees delete form?
    o = as_staff(office)
    page = o.get(f"/admin/customers/{cid}").get_data(True)
    out["office_sees_delete"] = "Delete for good" in page
    out["office_delete_status"] = P(o, f"/admin/customers/{cid}/delete", {"confirm_name": "x"}).status_code
    # tech
    with app.app_context(): make_invoice(cust, total_cents=123456)
    P(c, f"/admin/customers/{cid}/invoices/new", {"discount_percent": "0", "tax_percent": "0", "line-0-description": "money", "line-0-quantity": "1", "line-0-price": "777.77"})
    t = as_staff(tech)
    page = t.get(f"/admin/customers/{cid}").get_data(True)
    out["tech_sees_money_in_feed"] = "$777.77" in page
    out["tech_activity_link"] = "/activity" in page
    out["tech_activity_status"] = t.get(f"/admin/customers/{cid}/activity").status_code
    out["tech_balance_filter"] = t.get("/admin/customers?balance=1").status_code
    lst = t.get("/admin/customers?balance=1").get_data(True)
    out["tech_balance_filter_count"] = re.search(r"(\d+) customers?</p>", lst).group(1)
    with app.app_context(): make_customer(first_name="NoBal")
    lst = t.get("/admin/customers?balance=1").get_data(True)
    out["tech_balance_filter_count_after_nobal"] = re.search(r"(\d+) customers?</p>", lst).group(1)
    out["tech_cancel_job"] = P(t, f"/admin/jobs/{job.id}/status", {"status": "cancelled"}).status_code
    with app.app_context(): out["job_status_after_tech"] = db.session.get(Job, job.id).status
    for k, v in out.items():
        print(k, "=>", v)
