"""The only module that imports `stripe` (Q-2).

With STRIPE_SECRET_KEY set it talks to Stripe; otherwise to the local sandbox
(localstripe) on 127.0.0.1. Clients are built from the config when used (rule 9).

Network retries are deliberate: real Stripe honours our idempotency keys, so the library may
retry a request with the same key (2 retries); the sandbox ignores idempotency keys, so a retry
there could charge twice and we never retry against it (0). STRIPE_MAX_NETWORK_RETRIES overrides.
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import requests.utils
import stripe
from flask import current_app

from portal.models import Customer
from portal.services.platform import workers

SANDBOX_KEY = "sk_test_sandbox"
SANDBOX_PUBLISHABLE_KEY = "pk_test_sandbox"

# Re-exported so services never import stripe themselves.
StripeError = stripe.StripeError
SignatureVerificationError = stripe.SignatureVerificationError


def using_sandbox() -> bool:
    return not current_app.config.get("STRIPE_SECRET_KEY")


def sandbox_url() -> str:
    cfg = current_app.config
    return f"http://{cfg['STRIPE_SANDBOX_HOST']}:{cfg['STRIPE_SANDBOX_PORT']}"


def network_retries() -> int:
    configured = current_app.config.get("STRIPE_MAX_NETWORK_RETRIES")
    if configured is not None:
        return int(configured)
    return 0 if using_sandbox() else 2


_clients: dict[tuple, stripe.StripeClient] = {}
_clients_lock = threading.Lock()


def client() -> stripe.StripeClient:
    """One client per configuration, kept: its HTTP client holds a connection pool per thread (the library keeps
    the `requests` session in a thread-local), so the run's worker threads share it safely and reuse connections."""
    cfg = current_app.config
    retries = network_retries()
    base = cfg.get("STRIPE_API_BASE")  # contract tests and the benchmark point a client at a local HTTP server
    key = (cfg.get("STRIPE_SECRET_KEY"), base, sandbox_url() if using_sandbox() else None, retries,
           cfg["STRIPE_TIMEOUT_SECONDS"])
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = _new_client(retries, base)
        return found


def forget_clients() -> None:
    """In a forked process (the billing run's worker processes, gunicorn's workers): clients of its own; the
    parent's hold the parent's connections."""
    global _clients_lock
    _clients.clear()
    _clients_lock = threading.Lock()


os.register_at_fork(after_in_child=forget_clients)


class _RequestsClient(stripe.RequestsClient):
    """Stripe's `requests` client, whose per-thread sessions do not read the environment on every request: with
    `trust_env` requests scans every environment variable for proxy settings per call (a third of the client's
    CPU in a night's billing run). The proxy the environment names for the API's address is read once instead
    (HTTPS_PROXY / NO_PROXY as requests reads them); certificates are Stripe's bundle either way."""

    def _request_internal(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(self._thread_local, "session", None) is None:
            session = requests.Session()
            session.trust_env = False
            self._thread_local.session = session
        return super()._request_internal(*args, **kwargs)


def _new_client(retries: int, base: str | None) -> stripe.StripeClient:
    cfg = current_app.config
    api = base or (sandbox_url() if using_sandbox() else "https://api.stripe.com")
    proxies = requests.utils.get_environ_proxies(api)
    proxy: Any = {k: v for k, v in proxies.items() if k in ("http", "https")} or None
    http = _RequestsClient(timeout=cfg["STRIPE_TIMEOUT_SECONDS"], proxy=proxy)
    if using_sandbox():
        return stripe.StripeClient(SANDBOX_KEY, base_addresses={"api": base or sandbox_url()},
                                   max_network_retries=retries, http_client=http)
    extra: Any = {"base_addresses": {"api": base}} if base else {}
    return stripe.StripeClient(cfg["STRIPE_SECRET_KEY"], max_network_retries=retries, http_client=http, **extra)


def publishable_key() -> str:
    return current_app.config.get("STRIPE_PUBLISHABLE_KEY") or SANDBOX_PUBLISHABLE_KEY


def stripe_js_url() -> str:
    return f"{sandbox_url()}/js.stripe.com/v3/" if using_sandbox() else "https://js.stripe.com/v3/"


def webhook_secret() -> str | None:
    """The configured signing secret; in sandbox mode one is generated once under instance/."""
    configured = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if configured or not using_sandbox():
        return configured
    path = Path(current_app.instance_path) / "stripe_webhook_secret"
    if not path.exists():
        path.write_text("whsec_" + secrets.token_hex(24))
        path.chmod(0o600)
    return path.read_text().strip()


def get(obj, *path, default=None):
    """Read a field of a Stripe object (not a dict in this library) or of a plain dict, safely."""
    for key in path:
        if obj is None:
            return default
        try:
            obj = obj[key]
        except (KeyError, TypeError, IndexError):
            return default
    return default if obj is None else obj


def id_of(value) -> str | None:
    """An expandable field: either the id string or the object."""
    if value is None or isinstance(value, str):
        return value
    return get(value, "id")


# --- Customers and cards ------------------------------------------------------------------------------

def ensure_customer(customer: Customer) -> str:
    """The Stripe customer is created lazily and its id kept (caller commits)."""
    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    params: Any = {"name": customer.display_name, "metadata": {"portal_customer_id": str(customer.id)}}
    if customer.primary_email:
        params["email"] = customer.primary_email
    created = client().v1.customers.create(params=params)
    customer.stripe_customer_id = created.id
    return created.id


def retrieve_customer(stripe_customer_id: str):
    return client().v1.customers.retrieve(stripe_customer_id)


def create_setup_intent(stripe_customer_id: str, metadata: dict):
    params: Any = {"customer": stripe_customer_id, "usage": "off_session", "payment_method_types": ["card"],
                   "metadata": metadata}
    return client().v1.setup_intents.create(params=params)


def retrieve_setup_intent(setup_intent_id: str):
    return client().v1.setup_intents.retrieve(setup_intent_id)


def retrieve_payment_method(payment_method_id: str):
    return client().v1.payment_methods.retrieve(payment_method_id)


def attach_payment_method(payment_method_id: str, stripe_customer_id: str):
    return client().v1.payment_methods.attach(payment_method_id, params={"customer": stripe_customer_id})


def detach_payment_method(payment_method_id: str):
    return client().v1.payment_methods.detach(payment_method_id)


def list_customers(starting_after: str | None = None, limit: int = 100):
    """One page of the account's Stripe customers (DATA-3); follow `has_more` with the last id."""
    params: Any = {"limit": limit}
    if starting_after:
        params["starting_after"] = starting_after
    return client().v1.customers.list(params=params)


def list_card_payment_methods(stripe_customer_id: str, starting_after: str | None = None, limit: int = 100):
    """One page of a Stripe customer's saved cards (DATA-3)."""
    params: Any = {"customer": stripe_customer_id, "type": "card", "limit": limit}
    if starting_after:
        params["starting_after"] = starting_after
    return client().v1.payment_methods.list(params=params)


# --- Charges ------------------------------------------------------------------------------------------

def create_payment_intent(*, amount: int, currency: str, stripe_customer_id: str, payment_method_id: str,
                          off_session: bool, metadata: dict, idempotency_key: str):
    """Create and confirm. Rate limited (429 / `rate_limit`: nothing was charged) → wait and ask again with the
    same idempotency key, and let fewer calls through the run's gate (`platform.workers`); after the gate's
    retries the RateLimitError is raised (`classify`: rejected, nothing charged)."""
    params: Any = {"amount": amount, "currency": currency.lower(), "customer": stripe_customer_id,
              "payment_method": payment_method_id, "confirm": True, "metadata": metadata,
              "payment_method_types": ["card"]}
    if off_session:
        params["off_session"] = True
    gate = workers.gate()
    retry = 0
    while True:
        with gate:
            try:
                intent = client().v1.payment_intents.create(params=params,
                                                            options={"idempotency_key": idempotency_key})
            except stripe.RateLimitError:
                gate.slow_down()
                if retry >= gate.retries:
                    raise
            else:
                gate.succeeded()
                return intent
        time.sleep(gate.backoff(retry))  # outside the gate: the slot goes to a call that may get through
        retry += 1


def retrieve_payment_intent(payment_intent_id: str):
    return client().v1.payment_intents.retrieve(payment_intent_id)


def cancel_payment_intent(payment_intent_id: str):
    return client().v1.payment_intents.cancel(payment_intent_id)


def find_payment_intent(attempt_key: str, stripe_customer_id: str | None = None, created_after: int | None = None):
    """The PaymentIntent created for one of our attempts, found by its metadata (PAY-3), or None.

    Search is fast but can lag behind; None is only answered after the consistent list of the
    customer's PaymentIntents since the attempt was created has been walked too."""
    if not using_sandbox():
        found = client().v1.payment_intents.search(
            params={"query": f"metadata['attempt_key']:'{attempt_key}'", "limit": 1})
        if found.data:
            return found.data[0]
    if using_sandbox() or stripe_customer_id:
        # localstripe has no search API nor list filters: walk the whole list (small in dev and tests).
        starting_after = None
        while True:
            params: Any = {"limit": 100}
            if not using_sandbox():
                params["customer"] = stripe_customer_id
                if created_after:
                    params["created"] = {"gte": created_after}
            if starting_after:
                params["starting_after"] = starting_after
            page = client().v1.payment_intents.list(params=params)
            for pi in page.data:
                if get(pi, "metadata", "attempt_key") == attempt_key:
                    return pi
            if not page.has_more or not page.data:
                return None
            starting_after = page.data[-1].id
    return None


def sandbox_intents_by_key() -> dict:
    """Every PaymentIntent the sandbox holds, by its `attempt_key` metadata, in one walk of its list (it has no
    search API nor list filters; the reconciler asks once per batch of attempts)."""
    found: dict = {}
    starting_after = None
    while True:
        params: Any = {"limit": 100}
        if starting_after:
            params["starting_after"] = starting_after
        page = client().v1.payment_intents.list(params=params)
        for pi in page.data:
            key = get(pi, "metadata", "attempt_key")
            if key:
                found.setdefault(key, pi)
        if not page.has_more or not page.data:
            return found
        starting_after = page.data[-1].id


# --- Refunds ------------------------------------------------------------------------------------------

def create_refund(*, payment_intent_id: str, amount: int, metadata: dict, idempotency_key: str):
    return client().v1.refunds.create(params={"payment_intent": payment_intent_id, "amount": amount,
                                              "metadata": metadata},
                                      options={"idempotency_key": idempotency_key})


def retrieve_refund(refund_id: str):
    return client().v1.refunds.retrieve(refund_id)


def list_refunds(payment_intent_id: str):
    return client().v1.refunds.list(params={"payment_intent": payment_intent_id, "limit": 100}).data


# --- The account (flask stripe-check) -----------------------------------------------------------------

def retrieve_account():
    return client().v1.accounts.retrieve_current()


def list_webhook_endpoints() -> list:
    return list(client().v1.webhook_endpoints.list(params={"limit": 100}).data)


# --- Errors -------------------------------------------------------------------------------------------

@dataclass
class Failure:
    """What a Stripe error means for money: `declined` and `rejected` charged nothing; `unknown` may have."""

    outcome: str  # declined / rejected / unknown
    code: str | None
    message: str
    payment_intent_id: str | None = None


def classify(exc: Exception) -> Failure:
    if isinstance(exc, stripe.CardError):
        err = exc.error
        code = (getattr(err, "decline_code", None) or getattr(exc, "code", None) or "card_declined") if err else (
            exc.code or "card_declined")
        pi = getattr(err, "payment_intent", None) if err else None
        pi_id = id_of(pi)
        return Failure("declined", code, exc.user_message or str(exc), pi_id)
    if isinstance(exc, stripe.APIConnectionError):
        return Failure("unknown", "network_error", "No answer from the card processor (network error or timeout).")
    if isinstance(exc, stripe.APIError):
        return Failure("unknown", "api_error", "The card processor had an internal error.")
    if isinstance(exc, stripe.IdempotencyError):
        return Failure("unknown", "idempotency_error", "The card processor is still handling this request.")
    if isinstance(exc, stripe.RateLimitError):
        return Failure("rejected", "rate_limit", "The card processor is busy; nothing was charged. Try again.")
    if isinstance(exc, stripe.StripeError):
        err = exc.error
        code = getattr(err, "code", None) if err else None
        return Failure("rejected", code or "invalid_request",
                       exc.user_message or str(exc) or "Refused by the card processor.")
    raise exc


def construct_event(payload: bytes, sig_header: str | None, secret: str):
    """Verify the signature with the library's default tolerance (PAY-8)."""
    return stripe.Webhook.construct_event(payload, sig_header, secret)


def register_sandbox_webhook(url: str, secret: str, name: str = "portal") -> None:
    """Point the sandbox's webhooks at our endpoint (dev and tests only)."""
    import requests

    requests.post(f"{sandbox_url()}/_config/webhooks/{name}", data={"url": url, "secret": secret},
                  timeout=5).raise_for_status()
