"""Small helpers shared by the tests: pages, emails, the Stripe sandbox, the browser, the clock and the job runner."""
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("America/Los_Angeles")  # the business time zone (config default)


def csrf_token_from(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def wait_for_email(smtp, address: str | None = None, subject_part: str = "", timeout: float = 10.0):
    """Emails go out after the response that queued them: poll the capture server. `address=None` looks at every
    recipient; returns the matching messages (subject containing `subject_part`)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pool = smtp.to(address) if address else list(smtp.messages)
        found = [m for m in pool if subject_part in str(m["Subject"])]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no email {'to ' + address if address else ''} with {subject_part!r} in the subject "
                         f"within {timeout:.0f} s; got {[(str(m['To']), str(m['Subject'])) for m in smtp.messages]}")


def fill_card_element(form, number: str = "4242424242424242", month: str = "12", year: str = "30",
                      cvc: str = "123", postal_code: str = "90210") -> None:
    """Type a card into the sandbox Stripe.js card element (five plain inputs) inside a Playwright `form`."""
    from playwright.sync_api import expect

    element = form.locator("[data-card-element]")
    for placeholder, value in (("number", number), ("exp_month", month), ("exp_year", year), ("cvc", cvc),
                               ("postal_code", postal_code)):
        box = element.get_by_placeholder(placeholder, exact=True)
        box.fill(value)
        expect(box).to_have_value(value)


def sandbox_intents(sandbox: dict | None = None) -> list[dict]:
    """Every PaymentIntent the Stripe sandbox holds, oldest first. `sandbox` is the `stripe_sandbox` fixture (or any
    {"url": …}); without it, the sandbox the app is configured with (call inside an app context)."""
    import requests

    if sandbox is None:
        from portal.services.payments import gateway

        url = gateway.sandbox_url()
    else:
        url = sandbox["url"]
    intents, after = [], None
    while True:  # localstripe pages with limit/starting_after
        params = {"limit": 100, **({"starting_after": after} if after else {})}
        r = requests.get(f"{url}/v1/payment_intents", params=params, timeout=60,
                         headers={"Authorization": "Bearer sk_test_sandbox"})
        r.raise_for_status()
        page = r.json()
        intents.extend(page["data"])
        if not page["has_more"] or not page["data"]:
            return sorted(intents, key=lambda pi: (pi["created"], pi["id"]))
        after = page["data"][-1]["id"]


def staff_logs_in(page, live_server: str, email: str) -> None:
    """Through the staff login page in the browser, landing on the dashboard."""
    from playwright.sync_api import expect

    from tests.factories import PASSWORD

    page.goto(f"{live_server}/admin/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("Staff login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server}/admin/")


def log_in_staff(c, user, password: str | None = None):
    """Through the staff login form with a Flask test client `c`; returns `c`. (The `login_staff` fixture.)"""
    from tests.factories import PASSWORD

    r = c.post("/admin/login", data={"email": user.email, "password": password or PASSWORD,
                                      "csrf_token": csrf_token_from(c.get("/admin/login").get_data(True))})
    assert r.status_code == 302, r.get_data(True)[:500]
    return c


def log_in_customer(app, c, customer):
    """The customer follows a fresh magic link with the Flask test client `c`; returns `c`. (The `login_customer`
    fixture.)"""
    from portal.extensions import db
    from portal.models import Customer
    from portal.services.platform import magic_links

    with app.app_context():
        token = magic_links.issue_token(db.session.get(Customer, customer.id))
    r = c.get(f"/portal/magic/{token}")
    assert r.status_code == 302, r.status_code
    return c


def staff_client(app, login_staff, user):
    """A fresh browser (test client) logged in as `user` now, carrying a CSRF token for its POSTs in `c.csrf`."""
    c = app.test_client()
    login_staff(user, c=c)
    c.csrf = csrf_token_from(c.get("/admin/").get_data(True))
    return c


def set_clock(day: date, hour: int = 10, minute: int = 0) -> datetime:
    """Move the one clock to hour:minute business time on `day`; returns that moment."""
    from portal import clock

    when = datetime(day.year, day.month, day.day, hour, minute, tzinfo=BUSINESS_TZ)
    clock.set_now(when)
    return when


def run_jobs_at(when: datetime) -> dict:
    """Move the clock to `when` and run the due jobs, as `flask jobs run` does then; returns the runner's results."""
    from portal import clock
    from portal.services.platform import scheduler

    clock.set_now(when)
    return scheduler.run_due()


# Every page a journey opens reports Content-Security-Policy violations (the DOM event, and Chromium's own console
# error); `close_checking_csp` fails the test on any, so no journey passes with a blocked script, style or frame.
CSP_PROBE = """document.addEventListener('securitypolicyviolation', function (e) {
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') +
                ' at ' + e.sourceFile + ':' + e.lineNumber);
});"""


def watch_csp(context) -> list[str]:
    """Collect a Playwright browser context's console messages (the `page` fixture does this for its context; call
    it on any other context a journey opens, then `close_checking_csp(context)` at the end)."""
    console: list[str] = []
    context.add_init_script(CSP_PROBE)
    context.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    context.csp_console = console
    return console


def csp_violations(console: list[str]) -> list[str]:
    return [m for m in console if "CSP violation" in m or "Content Security Policy" in m]


def close_checking_csp(context) -> None:
    console = getattr(context, "csp_console", [])
    context.close()
    assert csp_violations(console) == [], f"Content-Security-Policy violations in the browser: {console}"
