"""Small helpers for tests that read pages."""
import re


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


def sandbox_intents(sandbox: dict) -> list[dict]:
    """Every PaymentIntent the Stripe sandbox holds, oldest first."""
    import requests

    r = requests.get(f"{sandbox['url']}/v1/payment_intents?limit=1000",
                     headers={"Authorization": "Bearer sk_test_sandbox"}, timeout=10)
    r.raise_for_status()
    return sorted(r.json()["data"], key=lambda pi: (pi["created"], pi["id"]))


def staff_logs_in(page, live_server: str, email: str) -> None:
    """Through the staff login page in the browser, landing on the dashboard."""
    from playwright.sync_api import expect

    from tests.factories import PASSWORD

    page.goto(f"{live_server}/admin/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server}/admin/")
