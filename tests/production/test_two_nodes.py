"""Issue 14: two real `make serve` nodes side by side — one PostgreSQL database, one SECRET_KEY, one Redis.

Each node is `make -s serve` in a process group of its own (gunicorn with 2 workers + the scheduler loop, a pass
every 2 s through SCHEDULER_EVERY so the test stays short), on its own port, with PORTAL_TRUSTED_PROXIES=1 as
behind nginx. Proven through HTTP, the database and the Stripe sandbox:

- a staff session made on node A works on node B;
- failed logins on A and B add up to the limit (the counters live in Redis, under this run's key prefix);
- the per-IP limit follows X-Forwarded-For (one forwarded address limited, the next one not);
- /healthz on both nodes shows a scheduler run within 90 s; node A's JSON log carries the incoming request id;
- both schedulers over the same due plan payments charge each exactly once, and queued emails go out once (and
  both schedulers did run);
- SIGTERM to node A's `make serve` stops its gunicorn and scheduler within 15 s while node B keeps serving.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from flask_migrate import stamp
from sqlalchemy import select

from portal.extensions import db
from portal.models import PlanPayment, SchedulerRun
from portal.services.platform import mailer
from tests.conftest import REPO, free_port
from tests.factories import PASSWORD, make_staff
from tests.helpers import csrf_token_from
from tests.plans.test_jobs_concurrency import assert_charged_exactly_once, customers_with_cards, seed_due_payments

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/4")
DUE_PAYMENTS = 8
NODES_STARTED_IN = [0.0]


class Node:
    def __init__(self, name: str, env: dict, logs: Path, extra_make_args: tuple[str, ...] = ()):
        self.name, self.port = name, int(env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = open(logs / f"{name}.out", "w+")  # noqa: SIM115 — closed in stop()
        self.err = open(logs / f"{name}.err", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(["make", "-s", "serve", *extra_make_args], cwd=REPO, env=env,
                                     stdout=self.out, stderr=self.err, start_new_session=True)

    def log(self) -> str:
        self.err.flush()
        return Path(self.err.name).read_text()

    def group_alive(self) -> bool:
        """Any process of the node left (make, portal.serve, gunicorn and its workers, the scheduler)."""
        self.proc.poll()  # reap `make` itself: a zombie still counts as a member of the group
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def kill(self) -> None:
        if self.group_alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.out.close()
        self.err.close()


def _env(app, sandbox, smtp, name: str, prefix: str, instance: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PORTAL_", "MAKEFLAGS", "MFLAGS")) and k not in ("DATABASE_URL", "SECRET_KEY")}
    instance.mkdir(parents=True, exist_ok=True)
    env.update({
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "SECRET_KEY": app.config["SECRET_KEY"],
        "REDIS_URL": REDIS_URL, "PORTAL_RATELIMIT_KEY_PREFIX": prefix, "WEB_CONCURRENCY": "2",
        "HOST": "127.0.0.1", "PORT": str(free_port()), "SCHEDULER_EVERY": "2", "NODE_NAME": name,
        "PORTAL_TRUSTED_PROXIES": "1", "PORTAL_INSTANCE_PATH": str(instance),
        "PORTAL_STRIPE_SANDBOX_PORT": str(sandbox["port"]), "PORTAL_MAIL_SERVER": "127.0.0.1",
        "PORTAL_MAIL_PORT": str(smtp.port), "PORTAL_BASE_URL": app.config["BASE_URL"],
    })
    return env


@pytest.fixture
def nodes(app, stripe_sandbox, smtp, tmp_path):
    """Two nodes over the test database (stamped at the migrations' head: the schema is already the models')."""
    with app.app_context():
        stamp()
        db.session.remove()
    prefix = f"two-nodes-{secrets.token_hex(4)}"
    started: list[Node] = []
    try:
        # Started together. `-o translations`: `make test` compiled the catalogs already, and two nodes compiling
        # the same files at once in one checkout would race (on separate machines each compiles its own).
        a = Node("node-a", {**_env(app, stripe_sandbox, smtp, "node-a", prefix, tmp_path / "a"), "LOG_FORMAT": "json"},
                 tmp_path, ("-o", "translations"))
        started.append(a)
        b = Node("node-b", _env(app, stripe_sandbox, smtp, "node-b", prefix, tmp_path / "b"), tmp_path,
                 ("-o", "translations"))
        started.append(b)
        t0 = time.monotonic()
        for node in (a, b):
            _wait_until_serving(node)
        NODES_STARTED_IN[:] = [time.monotonic() - t0]
        yield a, b
    finally:
        for node in started:
            node.kill()
        with app.app_context():
            db.session.remove()


def _wait_until_serving(node: Node, timeout: float = 90) -> None:
    """The port opens when gunicorn binds; a worker answers once it has built the app."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{node.url}/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or node.proc.poll() is not None:
            pytest.fail(f"{node.name} did not start:\n{node.log()[-3000:]}")
        time.sleep(0.2)


def _login_page(session: requests.Session, node: Node, ip: str) -> str:
    r = session.get(f"{node.url}/admin/login", headers={"X-Forwarded-For": ip}, timeout=10)
    assert r.status_code == 200, r.status_code
    return csrf_token_from(r.text)


def _log_in(session: requests.Session, node: Node, email: str, password: str, ip: str) -> int:
    token = _login_page(session, node, ip)
    r = session.post(f"{node.url}/admin/login", data={"email": email, "password": password, "csrf_token": token},
                     headers={"X-Forwarded-For": ip}, allow_redirects=False, timeout=10)
    return r.status_code


def test_two_make_serve_nodes_share_sessions_limits_and_the_work(app, nodes, stripe_sandbox, smtp, ctx):
    a, b = nodes
    started = time.monotonic()
    with_staff = make_staff("admin", email="owner@brightair.test")
    ids = seed_due_payments(customers_with_cards(4), DUE_PAYMENTS)  # both schedulers go after these at once
    for i in range(3):  # and after these emails (queued, as an SMTP outage leaves them)
        mailer.queue_email("portal_login_link", f"twonodes{i}@example.com", {"link": "http://portal.test/x"})
    db.session.commit()

    # A staff session made on node A is valid on node B.
    browser = requests.Session()
    assert _log_in(browser, a, with_staff.email, PASSWORD, "192.0.2.10") == 302
    dashboard = browser.get(f"{b.url}/admin/", allow_redirects=False, timeout=10)
    assert dashboard.status_code == 200 and "Good day" in dashboard.text

    # Failed logins on A and B add up to the limit of 5 per minute (same address, same forwarded IP).
    attacker = requests.Session()
    codes = [_log_in(attacker, node, "owner@brightair.test", "wrong password", "192.0.2.66")
             for node in (a, b, a, b, a, b)]
    assert codes == [401, 401, 401, 401, 401, 429], codes

    # The per-IP limit follows X-Forwarded-For: 5 failures from one forwarded address (different accounts, so
    # only the IP counter fills) limit that address on both nodes, not the next one (all come from 127.0.0.1).
    codes = [_log_in(attacker, node, f"nobody{i}@example.com", "x", "198.51.100.7")
             for i, node in enumerate((a, b, a, b, a, b))]
    assert codes == [401, 401, 401, 401, 401, 429], codes
    assert _log_in(attacker, a, "someone@example.com", "x", "198.51.100.8") == 401

    # Both schedulers ran (within 90 s), and over the same due payments they charged each exactly once.
    deadline = time.monotonic() + 90
    while True:
        db.session.rollback()
        ran = {r.node for r in db.session.scalars(select(SchedulerRun))}
        paid = db.session.scalars(select(PlanPayment.status)).all()
        if ran >= {"node-a", "node-b"} and paid.count("paid") == DUE_PAYMENTS:
            break
        assert time.monotonic() < deadline, (ran, paid, a.log()[-2000:], b.log()[-2000:])
        time.sleep(0.5)
    for node in (a, b):
        health = requests.get(f"{node.url}/healthz", headers={"X-Request-ID": f"probe-{node.name}"}, timeout=10)
        body = health.json()
        assert health.status_code == 200 and body["database"] == "ok", body
        assert body["scheduler"]["seconds_ago"] <= 90, body
        assert health.headers["X-Request-ID"] == f"probe-{node.name}"
    assert_charged_exactly_once(stripe_sandbox, ids, "two make serve nodes")
    deadline = time.monotonic() + 30
    while sum(len(smtp.to(f"twonodes{i}@example.com")) for i in range(3)) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # a second delivery would have arrived by now
    assert [len(smtp.to(f"twonodes{i}@example.com")) for i in range(3)] == [1, 1, 1]  # emailed once each
    access = [json.loads(line) for line in a.log().splitlines() if line.startswith("{")]
    assert any(e.get("request_id") == "probe-node-a" and e.get("logger") == "portal.access" for e in access)
    assert any(e.get("remote_addr") == "198.51.100.7" for e in access)  # the forwarded client, not the proxy

    # SIGTERM to node A's `make serve`: its gunicorn and scheduler are gone within 15 s; B keeps serving.
    stopped_at = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    while a.group_alive():
        assert time.monotonic() - stopped_at < 15, f"node A still running:\n{a.log()[-3000:]}"
        assert requests.get(f"{b.url}/healthz", timeout=10).status_code == 200
        time.sleep(0.2)
    assert "make serve: stopped (SIGTERM)" in a.log()
    assert requests.get(f"{b.url}/healthz", timeout=10).status_code == 200
    assert browser.get(f"{b.url}/admin/", allow_redirects=False, timeout=10).status_code == 200
    print(f"two nodes: started in {NODES_STARTED_IN[0]:.1f} s, test {time.monotonic() - started:.1f} s")
