"""Issue 18: security headers on every response, a CSP that forbids inline script and style and framing, the
Stripe.js origin allowed (sandbox in development, js.stripe.com with a Stripe key), HSTS only over https; no
template carries inline script, event handlers or style attributes; the browser reports a violation."""
import re
from pathlib import Path

from playwright.sync_api import expect

from tests.factories import make_customer, make_staff
from tests.helpers import csp_violations

REPO = Path(__file__).resolve().parent.parent


def _policy(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def _assert_headers(r, path, referrer="strict-origin-when-cross-origin"):
    csp = _policy(r)
    assert csp["default-src"] == ["'self'"], path
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"], path
    assert csp["style-src"] == ["'self'"], path
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"], path
    assert r.headers["X-Frame-Options"] == "DENY", path
    assert r.headers["X-Content-Type-Options"] == "nosniff", path
    assert r.headers["Referrer-Policy"] == referrer, path
    assert "camera=()" in r.headers["Permissions-Policy"] and "geolocation=()" in r.headers["Permissions-Policy"]
    assert "Strict-Transport-Security" not in r.headers, path  # BASE_URL is http in the tests
    return csp


def test_security_headers_on_pages_errors_and_static_files(app, client, login_staff, login_customer):
    with app.app_context():
        staff, customer = make_staff("admin"), make_customer()
        sandbox = f"http://127.0.0.1:{app.config['STRIPE_SANDBOX_PORT']}"
    for path in ("/admin/login", "/portal/login", "/no-such-page", "/static/portal.css", "/static/cards.js"):
        csp = _assert_headers(client.get(path), path)
        assert csp["script-src"] == ["'self'", sandbox]  # the sandbox serves the fake Stripe.js
        assert csp["connect-src"] == ["'self'", sandbox] and csp["frame-src"] == [sandbox]
    login_staff(staff)
    login_customer(customer)
    for path in ("/admin/", "/admin/settings", "/admin/account", "/admin/account/2fa", "/portal/", "/portal/wallet"):
        r = client.get(path)
        assert r.status_code == 200, path
        _assert_headers(r, path, "no-referrer" if path == "/portal/" else "strict-origin-when-cross-origin")
    # the magic-link landing (and the portal home it leads to) keep their stricter referrer policy
    assert client.get("/portal/magic/not-a-token").headers["Referrer-Policy"] == "no-referrer"


def test_hsts_over_https_and_stripe_origins_with_a_real_key(app, client):
    previous = dict(app.config)
    try:
        app.config.update(BASE_URL="https://portal.example", STRIPE_SECRET_KEY="sk_live_x",
                          STRIPE_PUBLISHABLE_KEY="pk_live_x")
        r = client.get("/admin/login")
        assert r.headers["Strict-Transport-Security"] == "max-age=31536000"
        csp = _policy(r)
        assert csp["script-src"] == ["'self'", "https://js.stripe.com", "https://*.js.stripe.com"]
        assert csp["frame-src"] == ["https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com"]
        assert csp["connect-src"] == ["'self'", "https://api.stripe.com"]
    finally:
        app.config.clear()
        app.config.update(previous)


def test_templates_carry_no_inline_script_event_handler_or_style():
    offenders = []
    for template in sorted([*REPO.glob("portal/templates/**/*.html"), *REPO.glob("admin/templates/**/*.html")]):
        if "/templates/email/" in str(template):
            continue  # emails are not served under our CSP; mail clients need inline styles
        text = template.read_text()
        for pattern in (r"<script(?![^>]*\bsrc=)[^>]*>", r"\son[a-z]+\s*=", r"\sstyle\s*=", r"<style\b",
                        r"javascript:"):
            offenders += [f"{template.relative_to(REPO)}: {m.group(0)}" for m in re.finditer(pattern, text, re.I)]
    assert offenders == []


def test_the_browser_enforces_the_policy_and_the_journeys_would_see_it(app, live_server, page):
    """An inline script and a style attribute put into a served page are blocked and reported; the `page` fixture
    turns such a report into a failure for every journey (here it is read, then cleared)."""
    page.goto(f"{live_server}/admin/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("Staff login")
    page.evaluate("""() => {
        const s = document.createElement('script'); s.textContent = 'window.__inline_ran = true';
        document.body.appendChild(s);
        document.querySelector('h1').setAttribute('style', 'color: red');
    }""")
    page.wait_for_function("() => true")
    assert page.evaluate("() => window.__inline_ran === undefined")
    assert page.evaluate("() => getComputedStyle(document.querySelector('h1')).color") != "rgb(255, 0, 0)"
    found = []
    for _ in range(50):
        found = csp_violations(page.context.csp_console)
        if len(found) >= 2:
            break
        page.wait_for_timeout(50)
    assert any("script-src" in m for m in found) and any("style-src" in m for m in found), page.context.csp_console
    page.context.csp_console.clear()
