"""Issue 18 point 3: staff two-factor (TOTP). Enrolment with a QR code and the base32 key, confirmed by a current
code; 10 recovery codes shown once and stored hashed; the password alone never reaches /admin/; wrong codes are
rate limited; a code and a recovery code work once; an admin can reset it (on the trail); Settings › Security can
require it for all staff."""
import re

import pyotp
from sqlalchemy import select

from portal.extensions import db
from portal.models import ActivityEvent, RecoveryCode, StaffUser
from tests.factories import PASSWORD, make_staff
from tests.helpers import csrf_token_from, log_in_staff


def _password_step(c, user):
    csrf = csrf_token_from(c.get("/admin/login").get_data(True))
    return c.post("/admin/login", data={"email": user.email, "password": PASSWORD, "csrf_token": csrf})


def _code_step(c, code):
    csrf = csrf_token_from(c.get("/admin/login/code").get_data(True))
    return c.post("/admin/login/code", data={"code": code, "csrf_token": csrf})


def _enrol(app, c, frozen_clock) -> tuple[str, list[str]]:
    page = c.get("/admin/account/2fa").get_data(True)
    assert "<svg" in page and "QR code for your authenticator app" in page and 'style="' not in page
    secret = re.search(r"data-totp-secret>([A-Z2-7]+)<", page).group(1)
    csrf = csrf_token_from(page)
    wrong = c.post("/admin/account/2fa", data={"code": "000000", "csrf_token": csrf})
    assert wrong.status_code == 400 and "That code is not right" in wrong.get_data(True)
    r = c.post("/admin/account/2fa", data={"code": pyotp.TOTP(secret).at(frozen_clock.now()), "csrf_token": csrf})
    assert r.status_code == 200, r.get_data(True)[:300]
    codes = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", r.get_data(True))
    assert len(codes) == 10 and len(set(codes)) == 10 and "shown only now" in r.get_data(True)
    return secret, codes


def test_enrol_then_log_in_with_a_code_or_a_recovery_code_once(app, client, frozen_clock):
    with app.app_context():
        staff = make_staff("office", name="Olga Office")
    log_in_staff(client, staff)
    secret, codes = _enrol(app, client, frozen_clock)
    with app.app_context():
        stored = db.session.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.staff_id == staff.id)).all()
        assert len(stored) == 10 and not set(codes) & set(stored)  # hashed, never the codes themselves
        assert "turned on two-factor" in db.session.scalars(select(ActivityEvent.summary)).one()
    assert "Two-factor authentication:" in client.get("/admin/account").get_data(True)
    assert client.post("/admin/logout", data={"csrf_token": csrf_token_from(client.get("/admin/").get_data(True))})

    browser = app.test_client()
    r = _password_step(browser, staff)
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin/login/code")
    assert browser.get("/admin/").status_code == 302  # the password alone never reaches /admin/
    assert _code_step(browser, "123456").status_code == 401
    enrol_code = pyotp.TOTP(secret).at(frozen_clock.now())
    assert _code_step(browser, enrol_code).status_code == 401  # the code used to enrol does not work again
    frozen_clock.advance(seconds=30)
    r = _code_step(browser, pyotp.TOTP(secret).at(frozen_clock.now()))
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin/")
    assert browser.get("/admin/").status_code == 200

    recovery = app.test_client()
    _password_step(recovery, staff)
    r = _code_step(recovery, codes[3].upper().replace("-", " "))  # typed loosely
    assert r.status_code == 302
    assert "9 left" in recovery.get("/admin/").get_data(True)
    again = app.test_client()
    _password_step(again, staff)
    assert _code_step(again, codes[3]).status_code == 401  # each recovery code works once
    assert again.get("/admin/").status_code == 302


def test_wrong_codes_are_rate_limited_per_account(app, client, frozen_clock):
    with app.app_context():
        staff = make_staff("admin")
    log_in_staff(client, staff)
    secret, _ = _enrol(app, client, frozen_clock)
    frozen_clock.advance(seconds=60)
    attacker = app.test_client()
    _password_step(attacker, staff)
    for _ in range(5):
        assert _code_step(attacker, "999999").status_code == 401
    # a fresh browser (new cookie) does not reset the count: it is kept per account
    fresh = app.test_client()
    _password_step(fresh, staff)
    assert _code_step(fresh, pyotp.TOTP(secret).at(frozen_clock.now())).status_code == 429
    assert fresh.get("/admin/").status_code == 302


def test_the_code_step_is_open_for_ten_minutes_after_the_password(app, client, frozen_clock):
    with app.app_context():
        staff = make_staff("admin")
    log_in_staff(client, staff)
    secret, _ = _enrol(app, client, frozen_clock)
    half = app.test_client()
    _password_step(half, staff)
    csrf = csrf_token_from(half.get("/admin/login/code").get_data(True))
    frozen_clock.advance(minutes=11)
    r = half.post("/admin/login/code", data={"code": pyotp.TOTP(secret).at(frozen_clock.now()), "csrf_token": csrf})
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin/login")
    assert half.get("/admin/").status_code == 302


def test_an_admin_resets_two_factor_and_can_require_it_for_all_staff(app, client, frozen_clock):
    with app.app_context():
        admin, tech = make_staff("admin", name="Ada Admin"), make_staff("technician", name="Tom Tech")
    tech_client = log_in_staff(app.test_client(), tech)
    _enrol(app, tech_client, frozen_clock)
    log_in_staff(client, admin)
    page = client.get("/admin/staff").get_data(True)
    assert "Reset two-factor" in page and "Tom Tech (" in page  # the enrolment is on the security trail
    csrf = csrf_token_from(page)
    r = client.post(f"/admin/staff/{tech.id}/reset-2fa", data={"csrf_token": csrf}, follow_redirects=True)
    assert "Two-factor authentication of Tom Tech is reset" in r.get_data(True)
    assert "was reset by Ada Admin" in r.get_data(True)
    with app.app_context():
        user = db.session.get(StaffUser, tech.id)
        assert user.totp_secret is None and not user.has_two_factor
        assert db.session.scalars(select(RecoveryCode).where(RecoveryCode.staff_id == tech.id)).all() == []
    assert tech_client.get("/admin/").status_code == 302  # the reset also ended the member's sessions
    tech_client = log_in_staff(app.test_client(), tech)  # password only now
    tech_csrf = csrf_token_from(tech_client.get("/admin/").get_data(True))
    assert tech_client.post(f"/admin/staff/{admin.id}/reset-2fa", data={"csrf_token": tech_csrf}).status_code == 403

    r = client.post("/admin/settings/security", data={"csrf_token": csrf, "require_staff_2fa": "y"},
                    follow_redirects=True)
    assert "Security settings saved" in r.get_data(True)
    newcomer = app.test_client()
    r = _password_step(newcomer, tech)
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin/account/2fa")
    for path in ("/admin/", "/admin/customers", "/admin/account"):
        r = newcomer.get(path)
        assert r.status_code == 302 and r.headers["Location"].endswith("/admin/account/2fa"), path
    frozen_clock.advance(seconds=30)
    _enrol(app, newcomer, frozen_clock)
    assert newcomer.get("/admin/customers").status_code == 200
