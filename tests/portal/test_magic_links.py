"""A-1 … A-8: the portal door, through a real SMTP server and a moved clock."""
import re
from datetime import timedelta

from itsdangerous import URLSafeTimedSerializer

from portal.extensions import db
from portal.models import Customer
from tests.factories import make_customer, make_staff
from tests.helpers import csrf_token_from

LINK = re.compile(r"http://portal\.test(/portal/magic/[A-Za-z0-9_.\-]+)")


def _invite(app, client, login_staff, customer_id):
    with app.app_context():
        staff = make_staff("office")
    login_staff(staff)
    page = client.get(f"/admin/customers/{customer_id}").get_data(True)
    r = client.post(f"/admin/customers/{customer_id}/portal-invitation", data={"csrf_token": csrf_token_from(page)})
    assert r.status_code == 302
    return client


def _link_in(smtp, msg):
    return LINK.search(smtp.text(msg)).group(1)


def test_invitation_email_link_logs_in_and_strips_the_token(app, client, login_staff, smtp):
    with app.app_context():
        customer = make_customer("Ana", "Diaz", email="ana.diaz@example.com")
    _invite(app, client, login_staff, customer.id)
    [msg] = smtp.to("ana.diaz@example.com")
    assert "customer portal" in msg["Subject"]
    text, html = smtp.text(msg), smtp.html(msg)
    path = _link_in(smtp, msg)
    assert path in text and path in html and "7 days" in text

    browser = app.test_client()
    landing = browser.get(path)
    assert landing.status_code == 302
    assert landing.headers["Location"] == "/portal/"  # the address bar no longer holds the token
    assert landing.headers["Referrer-Policy"] == "no-referrer"
    home = browser.get("/portal/")
    assert home.status_code == 200 and "Hello, Ana" in home.get_data(True)
    assert home.headers["Referrer-Policy"] == "no-referrer"
    # the same link works again within 7 days.
    assert app.test_client().get(path).status_code == 302


def test_login_sets_a_httponly_lax_session_cookie(app, client, login_customer):
    with app.app_context():
        customer = make_customer()
    login_customer(customer)
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_expired_link_emails_a_fresh_one_once_per_ten_minutes(app, client, smtp, frozen_clock):
    from portal.services.platform import magic_links

    with app.app_context():
        customer = make_customer("Ana", "Diaz", email="ana.diaz@example.com")
        token = magic_links.issue_token(db.session.get(Customer, customer.id))
    start = frozen_clock.now()

    frozen_clock.set(start + timedelta(days=7) - timedelta(minutes=1))
    assert client.get(f"/portal/magic/{token}").status_code == 302  # still valid just before day 7
    client.post("/portal/logout", data={"csrf_token": csrf_token_from(client.get("/portal/").get_data(True))})

    frozen_clock.set(start + timedelta(days=7, minutes=1))
    late = client.get(f"/portal/magic/{token}")
    assert late.status_code == 410
    assert "We have just emailed you a new link" in late.get_data(True)
    assert client.get("/portal/").status_code == 302  # not logged in
    [fresh] = smtp.to("ana.diaz@example.com")
    assert "new login link" in fresh["Subject"]

    frozen_clock.advance(minutes=5)
    again = client.get(f"/portal/magic/{token}")
    assert again.status_code == 410 and "a few minutes ago" in again.get_data(True)
    assert len(smtp.to("ana.diaz@example.com")) == 1  # nothing more within 10 minutes

    new_path = _link_in(smtp, fresh)
    assert app.test_client().get(new_path).status_code == 302  # the fresh link works

    frozen_clock.advance(minutes=6)
    client.get(f"/portal/magic/{token}")
    assert len(smtp.to("ana.diaz@example.com")) == 2  # after 10 minutes, one more


def test_tampered_or_foreign_tokens_show_the_error_page_with_a_request_form(app, client):
    from portal.services.platform import magic_links

    with app.app_context():
        customer = make_customer()
        token = magic_links.issue_token(db.session.get(Customer, customer.id))
        other_purpose = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="unsubscribe").dumps(
            {"c": customer.id, "v": magic_links.fingerprint(db.session.get(Customer, customer.id))})
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for bad in (tampered, "not-a-token", other_purpose):
        r = client.get(f"/portal/magic/{bad}")
        assert r.status_code == 400
        body = r.get_data(True)
        assert "This link does not work" in body and 'action="/portal/login"' in body
        assert client.get("/portal/").status_code == 302


def test_known_and_unknown_addresses_get_byte_identical_answers(app, smtp):
    with app.app_context():
        make_customer(email="known@example.com")
    answers = []
    for address in ("known@example.com", "unknown@example.com"):
        c = app.test_client()
        token = csrf_token_from(c.get("/portal/login").get_data(True))
        r = c.post("/portal/login", data={"email": address, "csrf_token": token})
        follow = c.get(r.headers["Location"])
        answers.append((r.status_code, r.headers["Location"], r.get_data(), follow.status_code, follow.get_data()))
    assert answers[0] == answers[1]
    assert len(smtp.to("known@example.com")) == 1 and smtp.to("unknown@example.com") == []
    assert LINK.search(smtp.text(smtp.to("known@example.com")[0]))


def test_link_requests_are_rate_limited_per_address(app, smtp):
    with app.app_context():
        make_customer(email="known@example.com")
    c = app.test_client()
    token = csrf_token_from(c.get("/portal/login").get_data(True))
    codes = [c.post("/portal/login", data={"email": "known@example.com", "csrf_token": token}).status_code
             for _ in range(6)]
    assert codes == [302] * 5 + [429]
    assert len(smtp.to("known@example.com")) == 5
    # Another address from another visitor is not affected by this address's limit.
    other = app.test_client()
    token = csrf_token_from(other.get("/portal/login").get_data(True))
    assert other.post("/portal/login", data={"email": "someone@example.com", "csrf_token": token}).status_code == 302


def test_bad_addresses_on_the_login_form_get_a_message(client):
    token = csrf_token_from(client.get("/portal/login").get_data(True))
    for value, message in (("", "Enter your email address."), ("not-an-email", "Enter a valid email address"),
                           ("a" * 250 + "@example.com", "too long")):
        r = client.post("/portal/login", data={"email": value, "csrf_token": token})
        assert r.status_code == 400 and message in r.get_data(True)


def test_revoking_links_logs_out_open_sessions_and_kills_old_links(app, client, login_customer, login_staff):
    from portal.services.platform import magic_links

    with app.app_context():
        customer = make_customer()
        old_token = magic_links.issue_token(db.session.get(Customer, customer.id))
        staff = make_staff("office")
    portal = app.test_client()
    login_customer(customer, c=portal)
    assert portal.get("/portal/").status_code == 200

    login_staff(staff)
    page = client.get(f"/admin/customers/{customer.id}").get_data(True)
    client.post(f"/admin/customers/{customer.id}/portal-revoke", data={"csrf_token": csrf_token_from(page)})

    assert portal.get("/portal/").status_code == 302
    assert app.test_client().get(f"/portal/magic/{old_token}").status_code == 400
    assert "revoked" in client.get(f"/admin/customers/{customer.id}").get_data(True)
    login_customer(customer, c=app.test_client())  # a new link works


def test_archived_and_blacklisted_customers_cannot_log_in(app):
    from portal.services.platform import magic_links

    with app.app_context():
        archived = make_customer(status="archived")
        blacklisted = make_customer(status="blacklisted", blacklist_reason="No-shows")
        tokens = [magic_links.issue_token(db.session.get(Customer, c.id)) for c in (archived, blacklisted)]
    for token in tokens:
        c = app.test_client()
        assert c.get(f"/portal/magic/{token}").status_code == 400
        assert c.get("/portal/").status_code == 302


def test_session_expires_after_the_idle_time(app, client, login_customer, frozen_clock):
    with app.app_context():
        customer = make_customer()
    login_customer(customer)
    frozen_clock.advance(hours=11)
    assert client.get("/portal/").status_code == 200  # activity keeps it alive
    frozen_clock.advance(hours=11, minutes=59)
    assert client.get("/portal/").status_code == 200
    frozen_clock.advance(hours=12, minutes=1)
    r = client.get("/portal/")
    assert r.status_code == 302 and "expired=1" in r.headers["Location"]
    assert "inactivity" in client.get(r.headers["Location"]).get_data(True)


def test_login_rotates_the_session(app, client, login_customer):
    with app.app_context():
        first = make_customer("Ana")
        second = make_customer("Ben")
    login_customer(first)
    before = client.get_cookie("session").value
    csrf_before = csrf_token_from(client.get("/portal/login").get_data(True))
    login_customer(second)
    assert client.get_cookie("session").value != before
    # A form token from before the login no longer works.
    r = client.post("/portal/logout", data={"csrf_token": csrf_before})
    assert r.status_code == 400
    assert "Hello, Ben" in client.get("/portal/").get_data(True)


def test_customer_a_never_sees_customer_b(app, login_customer):
    with app.app_context():
        a = make_customer("Ana", "Alpha", email="ana@example.com", phone="(555) 111-1111")
        b = make_customer("Ben", "Beta", email="ben@example.com", phone="(555) 222-2222")
    client_a, client_b = app.test_client(), app.test_client()
    login_customer(a, c=client_a)
    login_customer(b, c=client_b)
    page_a, page_b = client_a.get("/portal/").get_data(True), client_b.get("/portal/").get_data(True)
    assert "Ana Alpha" in page_a and "ana@example.com" in page_a
    assert "Ben" not in page_a and "ben@example.com" not in page_a and "222-2222" not in page_a
    assert "Ana" not in page_b and "ana@example.com" not in page_b


def test_tokens_carry_128_random_bits_and_never_reach_the_logs(app, caplog):
    import logging

    from portal import _RedactTokens
    from portal.services.platform import magic_links

    with app.app_context():
        customer = make_customer()
        c = db.session.get(Customer, customer.id)
        t1, t2 = magic_links.issue_token(c), magic_links.issue_token(c)
        payload = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=magic_links.LOGIN_SALT).loads(t1)
    assert t1 != t2 and len(payload["n"]) >= 22  # 16 random bytes, url-safe base64
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, '127.0.0.1 "GET %s HTTP/1.1" 302 -',
                               (f"/portal/magic/{t1}",), None)
    _RedactTokens().filter(record)
    assert t1 not in record.getMessage() and "[redacted]" in record.getMessage()
