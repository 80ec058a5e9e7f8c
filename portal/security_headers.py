"""Issue 18: the security headers of every response, set in this one place (an after_request hook).

- Content-Security-Policy: scripts, styles, fonts, images and requests only from this site, plus Stripe.js —
  js.stripe.com with Stripe (and its frames and API), the local sandbox's origin without a Stripe key (it serves
  the fake Stripe.js at /js.stripe.com/v3/ and answers its requests). No 'unsafe-inline' for scripts or styles:
  templates carry no inline script, event handler or style attribute (tests/test_security_headers.py checks the
  templates; the browser journeys fail on any CSP violation). `frame-ancestors 'none'` and X-Frame-Options DENY
  stop clickjacking; `form-action 'self'`, `base-uri 'self'`, `object-src 'none'` close the usual side doors.
- X-Content-Type-Options nosniff, Referrer-Policy strict-origin-when-cross-origin (a view may set a stricter one:
  the magic-link landing sends no-referrer), a Permissions-Policy that turns off what the site never uses,
  Strict-Transport-Security for a year when BASE_URL is https.

PDFs (invoices, receipts) get only `frame-ancestors 'none'` as their policy, so the browser's own PDF viewer works.
"""
from __future__ import annotations

from flask import Flask, current_app

from portal.services.payments import gateway

HSTS = "max-age=31536000"  # not includeSubDomains: the business may run other sites on sibling hosts
PERMISSIONS = ("accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
               "magnetometer=(), microphone=(), midi=(), payment=(self \"https://js.stripe.com\"), usb=(), "
               "xr-spatial-tracking=()")
# What Stripe's documentation lists for Stripe.js and Elements (card element, 3-D Secure frames).
STRIPE = {"script": ["https://js.stripe.com", "https://*.js.stripe.com"],
          "frame": ["https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com"],
          "connect": ["https://api.stripe.com"], "img": ["https://*.stripe.com"]}


def stripe_origins() -> dict[str, list[str]]:
    """Where Stripe.js comes from and talks to: Stripe, or the local sandbox (its origin serves all of it)."""
    if gateway.using_sandbox():
        origin = gateway.sandbox_url()
        return {"script": [origin], "frame": [origin], "connect": [origin], "img": []}
    return STRIPE


def content_security_policy() -> str:
    stripe = stripe_origins()
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *stripe["script"]],
        "style-src": ["'self'"],
        "img-src": ["'self'", *stripe["img"]],
        "font-src": ["'self'"],
        "connect-src": ["'self'", *stripe["connect"]],
        "frame-src": stripe["frame"] or ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def init_app(app: Flask) -> None:
    @app.after_request
    def security_headers(response):
        headers = response.headers
        if response.mimetype == "application/pdf":
            headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        else:
            headers.setdefault("Content-Security-Policy", content_security_policy())
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        headers.setdefault("Permissions-Policy", PERMISSIONS)
        if str(current_app.config.get("BASE_URL", "")).startswith("https://"):
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response
