"""Issue 18: staff two-factor in Chromium — enrol (QR code and key, confirm with a code, recovery codes shown
once) → log out → password → code → in; a recovery code works once. No CSP violation on the way (the `page`
fixture fails on one)."""
from __future__ import annotations

import pyotp
import pytest
from playwright.sync_api import expect

from tests import factories
from tests.factories import PASSWORD
from tests.helpers import staff_logs_in


def _password(page, live_server, email):
    page.goto(f"{live_server}/admin/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server}/admin/login/code")
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your code")


def _log_out(page, live_server):
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{live_server}/admin/login")


@pytest.mark.e2e
def test_staff_enrol_two_factor_then_log_in_with_a_code_and_a_recovery_code_once(app, live_server, page,
                                                                                frozen_clock):
    with app.app_context():
        staff = factories.make_staff("office", email="olga@brightair.test", name="Olga Office")
    staff_logs_in(page, live_server, staff.email)

    page.get_by_role("link", name="Olga Office · office").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My account")
    expect(page.get_by_role("row")).to_have_count(2)  # this browser's session
    page.get_by_role("link", name="Set up two-factor authentication").click()
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    secret = page.locator("[data-totp-secret]").inner_text()
    page.get_by_label("6-digit code from the app").fill(pyotp.TOTP(secret).at(frozen_clock.now()))
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Two-factor authentication is on")
    codes = page.get_by_role("list", name="Recovery codes").locator("code").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("link", name="I have saved them — continue").click()
    expect(page).to_have_url(f"{live_server}/admin/")
    _log_out(page, live_server)

    # password → the code step; /admin/ stays closed until the code
    frozen_clock.advance(seconds=30)
    _password(page, live_server, staff.email)
    page.goto(f"{live_server}/admin/")
    expect(page).to_have_url(f"{live_server}/admin/login?next=/admin/")
    page.goto(f"{live_server}/admin/login/code")
    page.get_by_label("Code from your authenticator app, or a recovery code").fill("000000")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("That code is not right")
    page.get_by_label("Code from your authenticator app, or a recovery code").fill(
        pyotp.TOTP(secret).at(frozen_clock.now()))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{live_server}/admin/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Good day, Olga Office")
    _log_out(page, live_server)

    # a recovery code instead of the app, once
    for attempt in (1, 2):
        _password(page, live_server, staff.email)
        page.get_by_label("Code from your authenticator app, or a recovery code").fill(codes[0])
        page.get_by_role("button", name="Continue").click()
        if attempt == 1:
            expect(page).to_have_url(f"{live_server}/admin/")
            expect(page.get_by_role("status")).to_contain_text("9 left")
            _log_out(page, live_server)
        else:
            expect(page.get_by_role("alert")).to_contain_text("That code is not right")
            expect(page).to_have_url(f"{live_server}/admin/login/code")
