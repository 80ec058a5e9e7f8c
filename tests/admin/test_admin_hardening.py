"""Staff pages under odd input, double submits and role limits: a message or a refusal, never a 500."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Customer, Estimate, Invoice, Job, StaffUser
from tests.factories import make_customer, make_job, make_staff
from tests.helpers import csrf_token_from

LINE = {"line-0-description": "Tune-up", "line-0-quantity": "1", "line-0-price": "120.00"}


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("kind,url,data,model,view", [
    ("job", "jobs/new", {"title": "Fix AC", **LINE}, Job, "/admin/jobs/"),
    ("estimate", "estimates/new", {"title": "New system", "deposit": "0", **LINE}, Estimate, "/admin/estimates/"),
    ("invoice", "invoices/new", {"discount_percent": "0", "tax_percent": "0", **LINE}, Invoice, "/admin/invoices/"),
])
def test_a_create_form_submitted_twice_creates_one(app, client, login_staff, kind, url, data, model, view):
    with app.app_context():
        staff = make_staff("office")
        c = make_customer()
    login_staff(staff)
    page = client.get(f"/admin/customers/{c.id}/{url}").get_data(True)
    key = re.search(r'name="form_key" type="hidden" value="([^"]+)"', page).group(1)
    form = {"csrf_token": csrf_token_from(page), "form_key": key, **data}
    first = client.post(f"/admin/customers/{c.id}/{url}", data=form)
    second = client.post(f"/admin/customers/{c.id}/{url}", data=form)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"] and view in first.headers["Location"]
    assert _count(app, model) == 1
    # a fresh form (new key) is a new document
    page = client.get(f"/admin/customers/{c.id}/{url}").get_data(True)
    key2 = re.search(r'name="form_key" type="hidden" value="([^"]+)"', page).group(1)
    assert key2 != key
    client.post(f"/admin/customers/{c.id}/{url}", data={**form, "form_key": key2})
    assert _count(app, model) == 2


def test_odd_ids_dates_and_numbers_get_messages_not_500s(app, client, login_staff):
    with app.app_context():
        staff = make_staff("admin")
        c = make_customer()
        job = make_job(c)
    login_staff(staff)
    card = client.get(f"/admin/customers/{c.id}").get_data(True)
    csrf = csrf_token_from(card)
    for data in ({"due_at": "2030-01-01T10:00", "assignee_id": "²"}, {"due_at": "2030-01-01T10:00",
                                                                      "assignee_id": "9" * 25},
                 {"due_at": "9999-12-31T23:59"}):
        r = client.post(f"/admin/customers/{c.id}/task", data={"csrf_token": csrf, **data})
        assert r.status_code == 302, data
    r = client.post(f"/admin/customers/{c.id}/manager", data={"csrf_token": csrf, "manager_id": "9" * 30})
    assert r.status_code == 302
    r = client.post(f"/admin/jobs/{job.id}/visits", data={"csrf_token": csrf, "day": "9999-12-31", "start": "20:00",
                                                          "end": "23:00", "technician_id": "²"})
    assert r.status_code == 400 and "between the years 2000 and 2100" in r.get_data(True)
    r = client.post(f"/admin/customers/{c.id}/invoices/new",
                    data={"csrf_token": csrf, "issue_date": "9999-12-31", "discount_percent": "0",
                          "tax_percent": "0", **LINE})
    assert r.status_code == 400
    for value in ("NaN", "Infinity", "sNaN"):
        r = client.post(f"/admin/customers/{c.id}/edit", data={"csrf_token": csrf, "kind": "individual",
                                                               "first_name": "Ana", "status": "active",
                                                               "preferred_language": "en",
                                                               "discount_percent": value})
        assert r.status_code == 400 and "Enter a number." in r.get_data(True), value
    for url in (f"/admin/customers?page={'9' * 30}", f"/admin/customers?manager={'9' * 30}",
                "/admin/customers?q=a%00b", "/admin/invoices?q=%00"):
        assert client.get(url).status_code in (200, 400), url
    with app.app_context():
        assert db.session.get(Customer, c.id).discount_bp == 0


def test_search_treats_percent_and_underscore_literally(app, client, login_staff):
    with app.app_context():
        staff = make_staff("office")
        make_customer("Ana", "Under_score")
        make_customer("Ben", "Plain")
    login_staff(staff)
    page = client.get("/admin/customers?q=_").get_data(True)
    assert "Under_score" in page and "Ben Plain" not in page
    assert "Ben Plain" not in client.get("/admin/customers?q=%25").get_data(True)


def test_technicians_start_and_finish_only_their_jobs_and_see_no_money(app, client, login_staff):
    with app.app_context():
        tech = make_staff("technician")
        other = make_staff("technician")
        c = make_customer()
        own = make_job(c, "Own job", technician=tech)
        theirs = make_job(c, "Their job", technician=other)
        db.session.get(Customer, c.id).discount_bp = 1500
        db.session.commit()
        from portal.services.billing import invoices
        from portal.services.work.line_items import Line
        invoices.create(db.session.get(Customer, c.id), db.session.get(StaffUser, other.id),
                        lines=[Line("Secret price line", 1, 77_777)])
        db.session.commit()
    login_staff(tech)
    csrf = csrf_token_from(client.get(f"/admin/jobs/{own.id}").get_data(True))
    assert client.post(f"/admin/jobs/{own.id}/status", data={"csrf_token": csrf, "status": "cancelled"}).status_code \
        == 403
    assert client.post(f"/admin/jobs/{own.id}/status", data={"csrf_token": csrf, "status": "in_progress"}) \
        .status_code == 302
    assert client.post(f"/admin/jobs/{theirs.id}/status", data={"csrf_token": csrf, "status": "in_progress"}) \
        .status_code == 404
    card = client.get(f"/admin/customers/{c.id}").get_data(True)
    assert "777.77" not in card and "Discount" not in card and "15.00 %" not in card
    assert client.get(f"/admin/customers/{c.id}/activity").status_code == 403
    listing = client.get("/admin/customers?balance=1").get_data(True)
    assert c.last_name in listing  # the money filter is ignored for technicians, not applied
    with app.app_context():
        assert db.session.get(Job, own.id).status == "in_progress"
        assert db.session.get(Job, theirs.id).status == "scheduled"


def test_business_settings_drive_deposits_terms_and_the_portal(app, client, login_staff, login_customer):
    from portal.models import BusinessSettings
    from tests.factories import make_estimate

    with app.app_context():
        owner = make_staff("admin")
        office = make_staff("office")
        c = make_customer()
        est = make_estimate(c, deposit_cents=5_000)
    login_staff(owner)
    csrf = csrf_token_from(client.get("/admin/settings").get_data(True))
    bad = client.post("/admin/settings/business", data={"csrf_token": csrf, "name": "", "invoice_due_days": "400",
                                                         "default_tax": "NaN"})
    assert bad.status_code == 400 and "Enter the business name." in bad.get_data(True)
    ok = client.post("/admin/settings/business", data={
        "csrf_token": csrf, "name": "Cool Breeze HVAC", "email": "Desk@Example.com", "phone": "(555) 123-0000",
        "address": "1 Main St", "invoice_due_days": "30", "default_tax": "8.25", "require_card_for_deposits": "y"})
    assert ok.status_code == 302
    with app.app_context():
        row = db.session.scalars(select(BusinessSettings)).one()
        assert (row.name, row.email, row.invoice_due_days, row.default_tax_bp, row.require_card_for_deposits) == \
            ("Cool Breeze HVAC", "desk@example.com", 30, 825, True)
    portal = app.test_client()
    login_customer(c, c=portal)
    page = portal.get(f"/portal/estimates/{est.id}").get_data(True)
    assert "Cool Breeze HVAC" in page and "data-consent" in page
    office_client = app.test_client()
    login_staff(office, c=office_client)
    office_csrf = csrf_token_from(office_client.get(f"/admin/customers/{c.id}").get_data(True))
    assert office_client.post("/admin/settings/business", data={"csrf_token": office_csrf, "name": "X"}) \
        .status_code == 403


def test_general_block_is_edited_in_place_and_the_feed_says_what_changed(app, client, login_staff):
    from portal.models import ActivityEvent

    with app.app_context():
        staff = make_staff("office", name="Olly Office")
        c = make_customer("Ana", "Diaz", email="ana@example.com", phone="(555) 201-0000")
    login_staff(staff)
    card = client.get(f"/admin/customers/{c.id}").get_data(True)
    form = re.search(r'<details class="edit-in-place" id="edit-general">(.*?)</details>', card, re.S).group(1)
    assert f'action="/admin/customers/{c.id}/edit"' in form and 'value="ana@example.com"' in form
    r = client.post(f"/admin/customers/{c.id}/edit", data={
        "csrf_token": csrf_token_from(card), "kind": "individual", "first_name": "Ana", "last_name": "Diaz-Ruiz",
        "email": "ana@example.com", "phone": "(555) 201-0000", "preferred_language": "es", "status": "active",
        "category": "VIP", "discount_percent": "5", "manager_id": "", "tags": "pets"})
    assert r.status_code == 302
    with app.app_context():
        summary = db.session.scalars(select(ActivityEvent.summary).where(ActivityEvent.customer_id == c.id)
                                     .order_by(ActivityEvent.id.desc())).first()
    for label in ("name", "language", "category", "discount", "tags"):
        assert label in summary, (label, summary)
    assert "email" not in summary.split(":", 1)[1]  # unchanged fields are not listed
