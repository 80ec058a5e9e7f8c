"""Every staff page renders for the demo business, and the everyday flow works: job → visit → finish →
invoice → send; estimate → send; notes, contacts, tasks, fields on the client card."""
from datetime import timedelta

from sqlalchemy import select

from tests.factories import make_staff
from tests.helpers import csrf_token_from


def test_every_admin_page_renders_and_the_daily_flow_works(app, client, login_staff, stripe_sandbox):
    from portal import clock, demo
    from portal.extensions import db
    from portal.models import Customer, Estimate, Invoice, Job
    with app.app_context():
        demo.seed()
        db.session.commit()
        cids = db.session.scalars(select(Customer.id)).all()
        jids = db.session.scalars(select(Job.id)).all()
        eids = db.session.scalars(select(Estimate.id)).all()
        iids = db.session.scalars(select(Invoice.id)).all()
        a = make_staff("admin")
    login_staff(a)
    urls = ["/admin/", "/admin/customers", "/admin/customers?balance=1", "/admin/customers?no_card=1&category=A", "/admin/invoices",
            "/admin/invoices?status=overdue", "/admin/invoices?q=inv", "/admin/settings/fields", "/admin/messages"]
    urls += [f"/admin/customers/{c}" for c in cids] + [f"/admin/customers/{c}/activity" for c in cids[:3]]
    urls += [f"/admin/jobs/{j}" for j in jids] + [f"/admin/jobs/{j}/edit" for j in jids[:2]]
    urls += [f"/admin/estimates/{e}" for e in eids] + [f"/admin/estimates/{e}/edit" for e in eids[:2]]
    urls += [f"/admin/invoices/{i}" for i in iids] + [f"/admin/invoices/{i}.pdf" for i in iids[:2]] + [f"/admin/invoices/{i}/edit" for i in iids[:2]]
    urls += [f"/admin/customers/{cids[0]}/jobs/new", f"/admin/customers/{cids[0]}/estimates/new", f"/admin/customers/{cids[0]}/invoices/new"]
    for u in urls:
        r = client.get(u)
        assert r.status_code in (200, 302), (u, r.status_code, r.get_data(True)[-1500:])
    # flow: new job with line, visit, finish, invoice, send
    cid = cids[0]
    html = client.get(f"/admin/customers/{cid}/jobs/new").get_data(True)
    r = client.post(f"/admin/customers/{cid}/jobs/new", data={"csrf_token": csrf_token_from(html), "title": "Fix AC",
        "address": "1 Main", "technician_id": "", "line-0-description": "Labor", "line-0-quantity": "2", "line-0-price": "75.00"})
    assert r.status_code == 302, r.get_data(True)[-2000:]
    job_url = r.headers["Location"]
    html = client.get(job_url).get_data(True)
    day = (clock.today() + timedelta(days=2)).isoformat()
    r = client.post(job_url + "/visits", data={"csrf_token": csrf_token_from(html), "day": day, "start": "09:00", "end": "11:00"})
    assert r.status_code == 302, r.get_data(True)[-2000:]
    r = client.post(job_url + "/status", data={"csrf_token": csrf_token_from(html), "status": "finished"})
    assert r.status_code == 302
    r = client.post(job_url + "/invoice", data={"csrf_token": csrf_token_from(html)})
    assert r.status_code == 302 and "/admin/invoices/" in r.headers["Location"], r.headers.get("Location")
    inv_url = r.headers["Location"]
    page = client.get(inv_url).get_data(True)
    assert "$150.00" in page
    r = client.post(inv_url + "/send", data={"csrf_token": csrf_token_from(page)})
    assert r.status_code == 302
    page = client.get(inv_url).get_data(True)
    assert "sent to" in page or "Resend" in page
    # estimate create/send/convert path
    html = client.get(f"/admin/customers/{cid}/estimates/new").get_data(True)
    r = client.post(f"/admin/customers/{cid}/estimates/new", data={"csrf_token": csrf_token_from(html), "title": "Duct job",
        "deposit": "50", "line-0-description": "Ducts", "line-0-quantity": "1", "line-0-price": "500"})
    assert r.status_code == 302, r.get_data(True)[-2000:]
    est_url = r.headers["Location"]
    r = client.post(est_url + "/send", data={"csrf_token": csrf_token_from(html)})
    assert r.status_code == 302
    assert "Resend" in client.get(est_url).get_data(True)
    # client card posts
    card = client.get(f"/admin/customers/{cid}").get_data(True)
    t = csrf_token_from(card)
    for path, data in [("notes", {"body": "Secret gate code 1234"}), ("contacts", {"channel": "call", "outcome": "Left voicemail"}),
                       ("task", {"due_at": (clock.local_now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"), "note": "Call back"}),
                       ("fields", {}), ("invoice-unpaid-work", {})]:
        r = client.post(f"/admin/customers/{cid}/{path}", data={"csrf_token": t, **data})
        assert r.status_code == 302, (path, r.status_code)
    card = client.get(f"/admin/customers/{cid}").get_data(True)
    assert "Secret gate code 1234" in card and "Left voicemail" in card and "Call back" in card
