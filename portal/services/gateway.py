"""The only module that imports `stripe` (Q-2).

With STRIPE_SECRET_KEY set it talks to Stripe; otherwise to the local sandbox
(localstripe) on 127.0.0.1. Clients are built from the config when used (rule 9).
"""
from __future__ import annotations

import stripe
from flask import current_app

from portal.models import Customer

SANDBOX_KEY = "sk_test_sandbox"
SANDBOX_PUBLISHABLE_KEY = "pk_test_sandbox"


def using_sandbox() -> bool:
    return not current_app.config.get("STRIPE_SECRET_KEY")


def sandbox_url() -> str:
    cfg = current_app.config
    return f"http://{cfg['STRIPE_SANDBOX_HOST']}:{cfg['STRIPE_SANDBOX_PORT']}"


def client() -> stripe.StripeClient:
    cfg = current_app.config
    http = stripe.RequestsClient(timeout=cfg["STRIPE_TIMEOUT_SECONDS"])
    # Retries are deliberate: 0 by default because our own reconciler settles unknown outcomes (PAY-3).
    retries = int(cfg["STRIPE_MAX_NETWORK_RETRIES"])
    if using_sandbox():
        return stripe.StripeClient(SANDBOX_KEY, base_addresses={"api": sandbox_url()},
                                   max_network_retries=retries, http_client=http)
    return stripe.StripeClient(cfg["STRIPE_SECRET_KEY"], max_network_retries=retries, http_client=http)


def publishable_key() -> str:
    return current_app.config.get("STRIPE_PUBLISHABLE_KEY") or SANDBOX_PUBLISHABLE_KEY


def stripe_js_url() -> str:
    return f"{sandbox_url()}/js.stripe.com/v3/" if using_sandbox() else "https://js.stripe.com/v3/"


def ensure_customer(customer: Customer) -> str:
    """The Stripe customer is created lazily and its id kept (caller commits)."""
    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    params = {"name": customer.display_name, "metadata": {"portal_customer_id": str(customer.id)}}
    if customer.primary_email:
        params["email"] = customer.primary_email
    created = client().v1.customers.create(params=params)
    customer.stripe_customer_id = created.id
    return created.id


def retrieve_customer(stripe_customer_id: str):
    return client().v1.customers.retrieve(stripe_customer_id)


def register_sandbox_webhook(url: str, secret: str, name: str = "portal") -> None:
    """Point the sandbox's webhooks at our endpoint (dev and tests only)."""
    import requests

    requests.post(f"{sandbox_url()}/_config/webhooks/{name}", data={"url": url, "secret": secret}, timeout=5)


def reset_sandbox() -> None:
    import requests

    requests.delete(f"{sandbox_url()}/_config/data", timeout=5).raise_for_status()
