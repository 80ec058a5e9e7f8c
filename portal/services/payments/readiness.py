"""`flask stripe-check` (issue 14): is this install ready for real Stripe?

Checks the configured keys (test or live mode, the account's name), that Stripe has a webhook endpoint for
BASE_URL/webhooks/stripe that is enabled and sends every event the app handles, and that the publishable key and
the webhook signing secret are set. Returns what it found and what is missing; it changes nothing at Stripe.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from portal.services.payments import gateway, webhooks


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)  # what is fine
    missing: list[str] = field(default_factory=list)  # what to do

    @property
    def ok(self) -> bool:
        return not self.missing


def _mode(key: str | None) -> str | None:
    if not key:
        return None
    for prefix, mode in (("sk_live_", "live"), ("rk_live_", "live"), ("pk_live_", "live"),
                         ("sk_test_", "test"), ("rk_test_", "test"), ("pk_test_", "test")):
        if key.startswith(prefix):
            return mode
    return "unknown"


def webhook_url() -> str:
    return current_app.config["BASE_URL"].rstrip("/") + "/webhooks/stripe"


def check() -> Report:
    cfg, report = current_app.config, Report()
    secret_key = cfg.get("STRIPE_SECRET_KEY")
    if not secret_key:
        report.missing.append("STRIPE_SECRET_KEY is not set: the app uses the local sandbox, not Stripe.")
        return report
    mode = _mode(secret_key)
    if mode == "unknown":
        report.missing.append("STRIPE_SECRET_KEY does not look like a Stripe secret key (sk_live_… or sk_test_…).")
    publishable = cfg.get("STRIPE_PUBLISHABLE_KEY")
    if not publishable:
        report.missing.append("STRIPE_PUBLISHABLE_KEY is not set (the card form needs it).")
    elif _mode(publishable) != mode:
        report.missing.append(f"STRIPE_PUBLISHABLE_KEY is a {_mode(publishable)} key but the secret key is {mode}.")
    if not cfg.get("STRIPE_WEBHOOK_SECRET"):
        report.missing.append("STRIPE_WEBHOOK_SECRET is not set: copy the endpoint's signing secret (whsec_…).")
    if not str(cfg.get("BASE_URL", "")).startswith("https://"):
        report.missing.append(f"BASE_URL {cfg.get('BASE_URL')} is not https://: Stripe sends live webhooks only "
                              "to https, and cookies are Secure only then.")
    try:
        account = gateway.retrieve_account()
        endpoints = gateway.list_webhook_endpoints()
    except gateway.StripeError as exc:
        report.missing.append(f"Stripe refused the secret key: {gateway.classify(exc).message}")
        return report
    name = (gateway.get(account, "settings", "dashboard", "display_name")
            or gateway.get(account, "business_profile", "name") or gateway.get(account, "email") or "(no name)")
    report.lines.append(f"Stripe account: {name} ({gateway.get(account, 'id')}), {mode} mode")
    url = webhook_url()
    mine = [e for e in endpoints if gateway.get(e, "url") == url]
    if not mine:
        report.missing.append(f"No webhook endpoint for {url}: add one in the Stripe dashboard (Developers › "
                              f"Webhooks) with these events: {', '.join(webhooks.HANDLED)}.")
        return report
    endpoint = mine[0]
    if gateway.get(endpoint, "status") != "enabled":
        report.missing.append(f"The webhook endpoint {gateway.get(endpoint, 'id')} for {url} is disabled.")
    enabled = set(gateway.get(endpoint, "enabled_events", default=[]) or [])
    lacking = [] if "*" in enabled else [e for e in webhooks.HANDLED if e not in enabled]
    if lacking:
        report.missing.append(f"The webhook endpoint for {url} does not send: {', '.join(lacking)}.")
    else:
        report.lines.append(f"Webhook endpoint {gateway.get(endpoint, 'id')} for {url} sends every event the app "
                            "handles")
    return report
