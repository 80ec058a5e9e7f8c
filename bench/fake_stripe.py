"""A small Stripe-compatible HTTP server for benchmarks and tests (issue 16).

It answers what `flask jobs run` asks of Stripe, in Stripe's shapes, so the official `stripe` library builds the
real requests and parses the real answers: customers (create, retrieve), PaymentIntents (create + confirm,
retrieve, cancel, list by customer and `created[gte]`, search by `metadata['attempt_key']`) and payment methods
(retrieve, attach, detach). Point the app at it the way the contract tests do: a secret key and the base address,

    PORTAL_STRIPE_SECRET_KEY=sk_test_fake PORTAL_STRIPE_API_BASE=http://127.0.0.1:8470 flask --app wsgi jobs run

It serves requests concurrently (one thread per connection, HTTP/1.1 keep-alive), waits `--latency-ms` before
answering each API request (after doing the work: a client that dies while waiting has been charged, as with
Stripe), honours idempotency keys like Stripe (the same key answers the same result; the same key while the
first request is still running answers 409), and records every PaymentIntent. Payment method `pm_card_declined`
is declined (402 `card_declined`); every other one succeeds.

Control endpoints (not Stripe's):
  GET  /_fake/intents                 every PaymentIntent ever created, oldest first
  GET  /_fake/creates                 every PaymentIntent create request: its idempotency key and the answer's status
  GET  /_fake/stats                   requests, creates, rate-limited answers, idempotent replays, most in flight,
                                      the fake's own CPU seconds so far
  POST /_fake/config                  latency_ms=…, rate_limit_seconds=… (answer 429 `rate_limit` to every
                                      PaymentIntent create for that long from now), rate_limit_creates=N (the next N)
  POST /_fake/reset                   forget everything (config stays)

Run: python bench/fake_stripe.py --port 8470 --latency-ms 250
"""
from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse

DECLINED_METHOD = "pm_card_declined"


def _nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`metadata[attempt_key]=…`, `payment_method_types[0]=card`) → nested dicts."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class State:
    def __init__(self, latency_ms: float = 0.0):
        self.lock = threading.Lock()
        self.latency = latency_ms / 1000.0
        self.rate_limit_until = 0.0
        self.rate_limit_creates = 0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.intents: dict[str, dict] = {}
            self.order: list[str] = []
            self.customers: dict[str, dict] = {}
            self.idempotent: dict[str, tuple[str, int, dict]] = {}  # key -> (request fingerprint, status, body)
            self.running: set[str] = set()
            self.creates: list[tuple[str | None, int]] = []  # (idempotency key, HTTP status) of every create
            self.stats = {"requests": 0, "creates": 0, "rate_limited": 0, "replayed": 0, "conflicts": 0,
                          "in_flight": 0, "max_in_flight": 0}

    def rate_limited(self) -> bool:
        with self.lock:
            if self.rate_limit_creates > 0:
                self.rate_limit_creates -= 1
                return True
            return time.monotonic() < self.rate_limit_until


def _error(status: int, kind: str, message: str, **extra: Any) -> tuple[int, dict]:
    return status, {"error": {"type": kind, "message": message, **extra}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the headers and the body go out as two writes; with Nagle's algorithm the body waited for the
    # client's delayed ACK of the headers (~40 ms a request at "0 ms latency"). Stripe answers in one go.
    disable_nagle_algorithm = True
    server: FakeStripe

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (quiet)
        pass

    # --- plumbing -------------------------------------------------------------------------------------------

    def _params(self) -> dict[str, Any] | None:
        """The request's parameters; None when the client went away before sending its whole body (a process
        killed mid-request): Stripe acts on no such request, and neither does the fake."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            return None
        body = raw.decode()
        query = urlparse(self.path).query
        return _nested(parse_qsl(query, keep_blank_values=True) + parse_qsl(body, keep_blank_values=True))

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", "req_" + secrets.token_hex(7))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        state = self.server.state
        path = urlparse(self.path).path.rstrip("/")
        params = self._params()
        if params is None:
            self.close_connection = True
            return
        if path.startswith("/_fake/"):
            self._send(*self._control(method, path, params))
            return
        with state.lock:
            state.stats["requests"] += 1
            state.stats["in_flight"] += 1
            state.stats["max_in_flight"] = max(state.stats["max_in_flight"], state.stats["in_flight"])
        try:
            status, body, headers = self._api(method, path, params)
            if state.latency:
                time.sleep(state.latency)
        finally:
            with state.lock:
                state.stats["in_flight"] -= 1
        self._send(status, body, headers)

    def _control(self, method: str, path: str, params: dict) -> tuple[int, Any]:
        state = self.server.state
        if path == "/_fake/intents":
            with state.lock:
                return 200, [state.intents[i] for i in state.order]
        if path == "/_fake/creates":
            with state.lock:
                return 200, [{"idempotency_key": key, "status": status} for key, status in state.creates]
        if path == "/_fake/stats":
            with state.lock:
                return 200, {**state.stats, "cpu_seconds": time.process_time()}  # what serving cost this machine
        if path == "/_fake/config" and method == "POST":
            with state.lock:
                if "latency_ms" in params:
                    state.latency = float(params["latency_ms"]) / 1000.0
                if "rate_limit_seconds" in params:
                    state.rate_limit_until = time.monotonic() + float(params["rate_limit_seconds"])
                if "rate_limit_creates" in params:
                    state.rate_limit_creates = int(params["rate_limit_creates"])
            return 200, {"ok": True}
        if path == "/_fake/reset" and method == "POST":
            state.reset()
            return 200, {"ok": True}
        return _error(404, "invalid_request_error", "Unknown control endpoint")

    # --- Stripe's API ---------------------------------------------------------------------------------------

    def _api(self, method: str, path: str, params: dict) -> tuple[int, dict, dict[str, str]]:
        state = self.server.state
        parts = path.split("/")[2:]  # after /v1
        if parts[:1] == ["payment_intents"]:
            if method == "POST" and len(parts) == 1:
                answer = self._create_intent(params)
                with state.lock:
                    state.creates.append((self.headers.get("Idempotency-Key"), answer[0]))
                return answer
            if method == "GET" and len(parts) == 1:
                return (*self._list_intents(params), {})
            if method == "GET" and parts[1:] == ["search"]:
                return (*self._search_intents(params), {})
            with state.lock:
                intent = state.intents.get(parts[1]) if len(parts) > 1 else None
            if intent is None:
                return (*_error(404, "invalid_request_error", f"No such payment_intent: '{parts[-1]}'",
                                code="resource_missing"), {})
            if method == "GET" and len(parts) == 2:
                return 200, intent, {}
            if method == "POST" and parts[2:] == ["cancel"]:
                with state.lock:
                    if intent["status"] == "succeeded":
                        return (*_error(400, "invalid_request_error", "You cannot cancel this PaymentIntent "
                                        "because it has a status of succeeded.",
                                        code="payment_intent_unexpected_state"), {})
                    intent["status"] = "canceled"
                return 200, intent, {}
        if parts[:1] == ["customers"]:
            if method == "POST" and len(parts) == 1:
                customer = {"id": "cus_" + secrets.token_hex(7), "object": "customer", "livemode": False,
                            "name": params.get("name"), "email": params.get("email"),
                            "metadata": params.get("metadata") or {}, "created": int(time.time())}
                with state.lock:
                    state.customers[customer["id"]] = customer
                return 200, customer, {}
            if method == "GET" and len(parts) == 2:
                with state.lock:
                    found = state.customers.get(parts[1])
                return 200, found or {"id": parts[1], "object": "customer", "livemode": False, "metadata": {}}, {}
        if parts[:1] == ["payment_methods"] and len(parts) >= 2:
            pm = {"id": parts[1], "object": "payment_method", "type": "card", "livemode": False,
                  "customer": params.get("customer"),
                  "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034, "country": "US"},
                  "billing_details": {"address": {"postal_code": "94107"}}}
            if parts[2:] == ["detach"]:
                pm["customer"] = None
            return 200, pm, {}
        return (*_error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path})"), {})

    def _create_intent(self, params: dict) -> tuple[int, dict, dict[str, str]]:
        state = self.server.state
        key = self.headers.get("Idempotency-Key")
        fingerprint = json.dumps(params, sort_keys=True)
        if state.rate_limited():  # refused before anything runs: nothing charged, nothing saved for the key
            with state.lock:
                state.stats["rate_limited"] += 1
            return (*_error(429, "invalid_request_error", "Request rate limit exceeded. Learn more about rate "
                            "limits here https://stripe.com/docs/rate-limits.", code="rate_limit"), {})
        with state.lock:
            if key and key in state.idempotent:
                seen, status, body = state.idempotent[key]
                if seen != fingerprint:
                    return (*_error(400, "idempotency_error", "Keys for idempotent requests can only be used "
                                    "with the same parameters they were first used with."), {})
                state.stats["replayed"] += 1
                return status, body, {"Idempotent-Replayed": "true", "Idempotency-Key": key}
            if key and key in state.running:
                state.stats["conflicts"] += 1
                return (*_error(409, "idempotency_error", "There is currently another in-progress request using "
                                "this Stripe API key and idempotency key."), {})
            if key:
                state.running.add(key)
        try:
            status, body = self._confirm(params)
        finally:
            with state.lock:
                if key:
                    state.running.discard(key)
                    state.idempotent[key] = (fingerprint, status, body)
        return status, body, ({"Idempotency-Key": key} if key else {})

    def _confirm(self, params: dict) -> tuple[int, dict]:
        state = self.server.state
        pi_id = "pi_" + secrets.token_hex(12)
        declined = params.get("payment_method") == DECLINED_METHOD
        intent = {"id": pi_id, "object": "payment_intent", "amount": int(params.get("amount") or 0),
                  "amount_received": 0 if declined else int(params.get("amount") or 0),
                  "currency": params.get("currency") or "usd", "customer": params.get("customer"),
                  "payment_method": params.get("payment_method"), "livemode": False,
                  "status": "requires_payment_method" if declined else "succeeded",
                  "client_secret": f"{pi_id}_secret_{secrets.token_hex(8)}", "created": int(time.time()),
                  "latest_charge": "ch_" + secrets.token_hex(12), "metadata": params.get("metadata") or {},
                  "off_session": params.get("off_session") == "true", "last_payment_error": None}
        if declined:
            intent["last_payment_error"] = {"type": "card_error", "code": "card_declined",
                                            "decline_code": "generic_decline", "message": "Your card was declined."}
        with state.lock:
            state.intents[pi_id] = intent
            state.order.append(pi_id)
            state.stats["creates"] += 1
        if declined:
            return _error(402, "card_error", "Your card was declined.", code="card_declined",
                          decline_code="generic_decline", payment_intent=intent)
        return 200, intent

    def _list_intents(self, params: dict) -> tuple[int, dict]:
        state = self.server.state
        limit = min(int(params.get("limit") or 10), 100)
        created = params.get("created") or {}
        with state.lock:
            found = [state.intents[i] for i in reversed(state.order)]  # newest first, like Stripe
        if params.get("customer"):
            found = [pi for pi in found if pi["customer"] == params["customer"]]
        if isinstance(created, dict) and created.get("gte"):
            found = [pi for pi in found if pi["created"] >= int(created["gte"])]
        if params.get("starting_after"):
            ids = [pi["id"] for pi in found]
            after = params["starting_after"]
            found = found[ids.index(after) + 1:] if after in ids else []
        page = found[:limit]
        return 200, {"object": "list", "url": "/v1/payment_intents", "data": page, "has_more": len(found) > limit}

    def _search_intents(self, params: dict) -> tuple[int, dict]:
        state = self.server.state
        query = params.get("query") or ""
        prefix = "metadata['attempt_key']:'"
        wanted = query[len(prefix):-1] if query.startswith(prefix) and query.endswith("'") else None
        with state.lock:
            found = [state.intents[i] for i in state.order
                     if wanted is not None and state.intents[i]["metadata"].get("attempt_key") == wanted]
        return 200, {"object": "search_result", "url": "/v1/payment_intents/search", "data": found[:1],
                     "has_more": False, "next_page": None}


class FakeStripe(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int = 0, latency_ms: float = 0.0):
        super().__init__(("127.0.0.1", port), Handler)
        self.state = State(latency_ms)

    def handle_error(self, request, client_address) -> None:
        """A client that went away (a killed run) is not an error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> FakeStripe:
        """Serve on a background thread (tests)."""
        threading.Thread(target=self.serve_forever, name="fake-stripe", daemon=True).start()
        return self


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8470)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeStripe(args.port, args.latency_ms)
    print(f"fake Stripe on {server.url} (latency {args.latency_ms:g} ms)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
