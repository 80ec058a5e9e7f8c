"""P-6: messages from the portal reach the staff inbox and the staff's email; P-4: reschedule requests."""
from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.models import ActivityEvent, MessageRequest
from portal.services.platform import settings
from tests.factories import make_customer, make_job, make_staff
from tests.helpers import csrf_token_from


def _form(client, url="/portal/messages/new"):
    html = client.get(url).get_data(True)
    return html, csrf_token_from(html)


def test_message_reaches_the_staff_inbox_and_email(app, client, login_customer, login_staff, smtp):
    with app.app_context():
        manager = make_staff("office", email="maya@example.com", name="Maya Office")
        c = make_customer("Ana", "Diaz", phone="(555) 777-1234", manager_id=manager.id)
    login_customer(c)
    html, csrf = _form(client)
    assert 'value="Ana Diaz"' in html and 'value="(555) 777-1234"' in html  # prefilled, editable
    r = client.post("/portal/messages/new", data={"csrf_token": csrf, "name": "Ana D.", "phone": "555 000 9999",
                                                  "body": "Can you also check the water heater?"})
    assert r.status_code == 302
    assert "Can you also check the water heater?" in client.get("/portal/messages").get_data(True)
    [msg] = smtp.to("maya@example.com")  # delivered after the request, through SMTP
    assert msg["Subject"] == "New message from Ana Diaz"
    text = smtp.text(msg)
    assert "Can you also check the water heater?" in text and "555 000 9999" in text and "/admin/messages" in text
    staff_client = app.test_client()
    login_staff(manager, c=staff_client)
    inbox = staff_client.get("/admin/messages").get_data(True)
    assert "Can you also check the water heater?" in inbox and "Ana D." in inbox
    with app.app_context():
        assert db.session.scalars(select(ActivityEvent).where(ActivityEvent.event_type == "message")).first()


def test_send_message_button_is_on_every_portal_page(app, client, login_customer):
    with app.app_context():
        c = make_customer()
    login_customer(c)
    for url in ("/portal/", "/portal/invoices", "/portal/appointments", "/portal/estimates", "/portal/plans",
                "/portal/wallet", "/portal/messages"):
        assert 'href="/portal/messages/new"' in client.get(url).get_data(True), url


def test_bad_messages_get_a_message_and_store_nothing(app, client, login_customer, smtp):
    with app.app_context():
        c = make_customer()
    login_customer(c)
    html, csrf = _form(client)
    cases = [({"name": "Ana", "body": ""}, "Write your message."),
             ({"name": "Ana", "body": "   "}, "Write your message."),
             ({"name": "", "body": "Hi"}, "Enter your name."),
             ({"name": "Ana", "body": "x" * 5001}, "under 5000 characters"),
             ({"name": "A" * 161, "body": "Hi"}, "under 160 characters"),
             ({"name": "Ana", "phone": "9" * 40, "body": "Hi"}, "under 32 characters"),
             ({"name": "Ana", "phone": "call me", "body": "Hi"}, "phone number with digits")]
    for data, expected in cases:
        r = client.post("/portal/messages/new", data={"csrf_token": csrf, **data})
        assert r.status_code == 400 and expected in r.get_data(True), (data, expected)
    with app.app_context():
        assert db.session.scalars(select(MessageRequest)).all() == []
    assert smtp.messages == []


def test_reschedule_request_is_tied_to_the_visit(app, client, login_customer, login_staff, smtp):
    with app.app_context():
        settings.ensure().email = "office@example.com"
        db.session.commit()
        staff = make_staff("office")
        c = make_customer("Ana", "Diaz")
        visit = make_job(c, "Spring AC check", visit_in_days=5).visits[0]
    login_customer(c)
    page = client.get("/portal/appointments").get_data(True)
    assert f"/portal/appointments/{visit.id}/reschedule" in page and f"/portal/appointments/{visit.id}.ics" in page
    html, csrf = _form(client, f"/portal/appointments/{visit.id}/reschedule")
    r = client.post(f"/portal/appointments/{visit.id}/reschedule",
                    data={"csrf_token": csrf, "name": "Ana Diaz", "phone": "555", "body": "Any afternoon next week?"})
    assert r.status_code == 302
    with app.app_context():
        m = db.session.scalars(select(MessageRequest)).one()
        assert (m.kind, m.visit_id, m.customer_id) == ("reschedule", visit.id, c.id)
    [msg] = smtp.to("office@example.com")
    assert "Reschedule request" in smtp.text(msg) and "Spring AC check" in smtp.text(msg)
    staff_client = app.test_client()
    login_staff(staff, c=staff_client)
    inbox = staff_client.get("/admin/messages").get_data(True)
    assert "Reschedule request" in inbox and "Spring AC check" in inbox


def test_staff_mark_handled_and_reply_by_email(app, client, login_customer, login_staff, smtp):
    with app.app_context():
        staff = make_staff("office", name="Maya Office")
        c = make_customer("Ana", "Diaz", email="ana@example.com", language="es")
    login_customer(c)
    html, csrf = _form(client)
    client.post("/portal/messages/new", data={"csrf_token": csrf, "name": "Ana", "body": "First question"})
    client.post("/portal/messages/new", data={"csrf_token": csrf, "name": "Ana", "body": "Second question"})
    with app.app_context():
        first, second = db.session.scalars(select(MessageRequest).order_by(MessageRequest.id)).all()
    staff_client = app.test_client()
    login_staff(staff, c=staff_client)
    inbox = staff_client.get("/admin/messages").get_data(True)
    scsrf = csrf_token_from(inbox)
    assert staff_client.post(f"/admin/messages/{first.id}/handled", data={"csrf_token": scsrf}).status_code == 302
    assert "First question" not in staff_client.get("/admin/messages").get_data(True)  # the "New" tab
    assert "First question" in staff_client.get("/admin/messages?status=handled").get_data(True)
    r = staff_client.post(f"/admin/messages/{second.id}/reply", data={"csrf_token": scsrf, "body": ""})
    assert r.status_code == 400 and "Write the reply." in r.get_data(True)
    r = staff_client.post(f"/admin/messages/{second.id}/reply",
                          data={"csrf_token": scsrf, "body": "Yes, we can do that on Tuesday."})
    assert r.status_code == 302
    replies = [m for m in smtp.to("ana@example.com")]
    assert len(replies) == 1 and "Yes, we can do that on Tuesday." in smtp.text(replies[0])
    assert "Respuesta de" in replies[0]["Subject"]  # the customer's language
    with app.app_context():
        m = db.session.get(MessageRequest, second.id)
        assert (m.status, m.reply_body, m.replied_by_id) == ("handled", "Yes, we can do that on Tuesday.", staff.id)
        assert db.session.get(MessageRequest, first.id).handled_by_id == staff.id
    assert "Yes, we can do that on Tuesday." in client.get("/portal/messages").get_data(True)


def test_technicians_cannot_open_the_inbox(app, login_staff):
    with app.app_context():
        tech = make_staff("technician")
    c = app.test_client()
    login_staff(tech, c=c)
    assert c.get("/admin/messages").status_code == 403
