"""Issue 18 point 1: sessions that really end. A cookie captured before logout opens nothing afterwards (staff and
portal, on any app node sharing the database); login rotates the session and the CSRF token; staff see and end
their sessions at /admin/account; a portal revoke (A-6) ends the customer's sessions; last-seen is written at most
once a minute."""

from sqlalchemy import func, select

from portal import create_app
from portal.extensions import db
from portal.models import LoginSession
from tests.factories import make_customer, make_staff
from tests.helpers import csrf_token_from, log_in_customer, log_in_staff


def _cookie(c) -> str:
    return c.get_cookie("session").value


def _replay(app, cookie: str):
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def _rows(app, **owner) -> list[LoginSession]:
    with app.app_context():
        return list(db.session.scalars(select(LoginSession).filter_by(**owner)))


def test_a_staff_cookie_replayed_after_logout_gets_the_login_page_on_any_node(app, client):
    with app.app_context():
        staff = make_staff("admin")
    log_in_staff(client, staff)
    captured = _cookie(client)
    assert _replay(app, captured).get("/admin/").status_code == 200  # the copy works while logged in
    [row] = _rows(app, staff_id=staff.id)
    assert row.ip == "127.0.0.1" and row.user_agent and row.customer_id is None

    # a second node: its own app object, same database and SECRET_KEY
    node2 = create_app({**{k: app.config[k] for k in ("SQLALCHEMY_DATABASE_URI", "SQLALCHEMY_ENGINE_OPTIONS",
                                                     "SECRET_KEY", "STRIPE_SANDBOX_PORT", "BASE_URL")},
                        "TESTING": True, "MAIL_SERVER": app.config["MAIL_SERVER"],
                        "MAIL_PORT": app.config["MAIL_PORT"]})
    on_node2 = _replay(node2, captured)
    assert on_node2.get("/admin/").status_code == 200
    csrf = csrf_token_from(on_node2.get("/admin/").get_data(True))
    assert on_node2.post("/admin/logout", data={"csrf_token": csrf}).status_code == 302  # logged out on node 2

    replayed = _replay(app, captured).get("/admin/")
    assert replayed.status_code == 302 and "/admin/login" in replayed.headers["Location"]
    assert _rows(app, staff_id=staff.id) == []
    with node2.app_context():
        db.engine.dispose()


def test_a_portal_cookie_replayed_after_logout_gets_the_login_page(app, client):
    with app.app_context():
        customer = make_customer()
    log_in_customer(app, client, customer)
    captured = _cookie(client)
    assert _replay(app, captured).get("/portal/").status_code == 200
    csrf = csrf_token_from(client.get("/portal/").get_data(True))
    assert client.post("/portal/logout", data={"csrf_token": csrf}).status_code == 302
    replayed = _replay(app, captured).get("/portal/invoices")
    assert replayed.status_code == 302 and "/portal/login" in replayed.headers["Location"]
    assert _rows(app, customer_id=customer.id) == []


def test_login_rotates_the_session_and_the_csrf_token(app, client):
    with app.app_context():
        staff, customer = make_staff("office"), make_customer()
    before = csrf_token_from(client.get("/admin/login").get_data(True))
    log_in_staff(client, staff)
    after = csrf_token_from(client.get("/admin/").get_data(True))
    assert after != before
    r = client.post("/admin/customers/new", data={"csrf_token": before, "first_name": "Old", "last_name": "Token"})
    assert r.status_code == 400 and "Your form expired" in r.get_data(True)  # the pre-login token is dead

    portal = app.test_client()
    old_portal_token = csrf_token_from(portal.get("/portal/login").get_data(True))
    log_in_customer(app, portal, customer)
    r = portal.post("/portal/messages/new", data={"csrf_token": old_portal_token, "subject": "Hi", "body": "Hello"})
    assert r.status_code == 400 and "Your form expired" in r.get_data(True)


def test_staff_see_their_sessions_and_end_one_or_all(app):
    with app.app_context():
        staff = make_staff("technician", name="Tina Tech")
    laptop, phone = app.test_client(), app.test_client()
    log_in_staff(laptop, staff)
    log_in_staff(phone, staff)
    page = laptop.get("/admin/account").get_data(True)
    assert "Where you are logged in" in page and page.count("End session") == 2 and "This browser" in page
    phone_row = max(_rows(app, staff_id=staff.id), key=lambda s: s.id)
    csrf = csrf_token_from(page)
    r = laptop.post(f"/admin/account/sessions/{phone_row.id}/end", data={"csrf_token": csrf}, follow_redirects=True)
    assert "That session is ended" in r.get_data(True)
    assert phone.get("/admin/").status_code == 302  # the phone is logged out
    assert laptop.get("/admin/").status_code == 200

    log_in_staff(phone, staff)
    r = laptop.post("/admin/account/sessions/end", data={"csrf_token": csrf, "scope": "others"},
                    follow_redirects=True)
    assert "1 other session ended" in r.get_data(True)
    assert phone.get("/admin/").status_code == 302 and laptop.get("/admin/").status_code == 200
    r = laptop.post("/admin/account/sessions/end", data={"csrf_token": csrf, "scope": "all"})
    assert r.status_code == 302 and "/admin/login" in r.headers["Location"]
    assert laptop.get("/admin/").status_code == 302 and _rows(app, staff_id=staff.id) == []


def test_someone_elses_session_cannot_be_ended(app):
    with app.app_context():
        a, b = make_staff("admin"), make_staff("office")
    ca, cb = log_in_staff(app.test_client(), a), log_in_staff(app.test_client(), b)
    [b_row] = _rows(app, staff_id=b.id)
    csrf = csrf_token_from(ca.get("/admin/account").get_data(True))
    r = ca.post(f"/admin/account/sessions/{b_row.id}/end", data={"csrf_token": csrf}, follow_redirects=True)
    assert "already ended" in r.get_data(True) and cb.get("/admin/").status_code == 200


def test_revoking_portal_links_and_deactivating_staff_end_their_sessions(app, client):
    with app.app_context():
        admin, office, customer = make_staff("admin"), make_staff("office"), make_customer()
    portal = log_in_customer(app, app.test_client(), customer)
    office_client = log_in_staff(app.test_client(), office)
    log_in_staff(client, admin)
    csrf = csrf_token_from(client.get("/admin/").get_data(True))
    assert client.post(f"/admin/customers/{customer.id}/portal-revoke", data={"csrf_token": csrf}).status_code == 302
    assert _rows(app, customer_id=customer.id) == []
    assert portal.get("/portal/").status_code == 302
    assert client.post(f"/admin/staff/{office.id}/deactivate", data={"csrf_token": csrf}).status_code == 302
    assert _rows(app, staff_id=office.id) == [] and office_client.get("/admin/").status_code == 302


def test_last_seen_is_written_at_most_once_a_minute_and_idle_portal_sessions_end(app, client, frozen_clock):
    with app.app_context():
        staff = make_staff("admin")
    log_in_staff(client, staff)
    [row] = _rows(app, staff_id=staff.id)
    started = row.last_seen_at
    frozen_clock.advance(seconds=50)
    assert client.get("/admin/").status_code == 200
    assert _rows(app, staff_id=staff.id)[0].last_seen_at == started  # no write within the minute
    frozen_clock.advance(seconds=20)
    assert client.get("/admin/").status_code == 200
    assert _rows(app, staff_id=staff.id)[0].last_seen_at == frozen_clock.now()
    with app.app_context():
        customer = make_customer()
    portal = log_in_customer(app, app.test_client(), customer)
    frozen_clock.advance(hours=app.config["PORTAL_IDLE_TIMEOUT_HOURS"], minutes=1)
    assert portal.get("/portal/").status_code == 302  # idle too long: logged out
    assert _rows(app, customer_id=customer.id) == []  # and its row is gone
    assert client.get("/admin/").status_code == 200  # staff sessions have no idle limit (as before)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginSession)) == 1
