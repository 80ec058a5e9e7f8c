"""Issue 14: running in production — what works on one node and any backend.

- `make serve` (python -m portal.serve) refuses a config that would break, one line naming each setting;
- /healthz: 200 with the database and the scheduler's last completed run, 503 when the database is unreachable;
- request ids (an incoming X-Request-ID honoured), one-line JSON logs without tokens or card numbers;
- PORTAL_TRUSTED_PROXIES → ProxyFix (X-Forwarded-For counts only then);
- the scheduler loop survives a failing rule and records each pass;
- failing emails back off exponentially, become "failed" after 10 tries (outbox, dashboard) and staff retry them;
- magic links signed up to 5 minutes "in the future" by another node's clock work.

The two-node test (two real `make serve` nodes, PostgreSQL and Redis) is tests/test_two_nodes.py.
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal import clock, create_app, ops
from portal.extensions import db
from portal.models import Customer, QueuedEmail, SchedulerRun
from portal.services.platform import magic_links, mailer, scheduler
from tests.conftest import REPO
from tests.factories import make_customer, make_staff
from tests.helpers import csrf_token_from

# --- make serve refuses, one line per setting ----------------------------------------------------------------


def _serve_env(tmp_path, **overrides) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PORTAL_") and k not in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL", "WEB_CONCURRENCY")}
    env["PORTAL_INSTANCE_PATH"] = str(tmp_path)  # no instance/config.py there
    env.update({k: v for k, v in overrides.items() if v is not None})
    return env


def test_serve_mode_refuses_each_unsafe_setting_with_one_line_naming_it(tmp_path):
    pg = "postgresql://postgres@127.0.0.1:1/never_contacted"  # refused before any connection
    cases = {
        "SECRET_KEY": _serve_env(tmp_path, DATABASE_URL=pg, REDIS_URL="redis://127.0.0.1:6379/4"),
        "DATABASE_URL": _serve_env(tmp_path, SECRET_KEY="k" * 32, REDIS_URL="redis://127.0.0.1:6379/4"),
        "REDIS_URL": _serve_env(tmp_path, SECRET_KEY="k" * 32, DATABASE_URL=pg, WEB_CONCURRENCY="3"),
    }
    procs = {name: subprocess.Popen([sys.executable, "-m", "portal.serve"], cwd=REPO, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, env in cases.items()}
    errors = {}
    for name, proc in procs.items():
        _, err = errors[name] = proc.communicate(timeout=60)
        assert proc.returncode == 2, (name, proc.returncode, err[-2000:])
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, (name, lines)  # only the setting that is wrong, on one line
        assert lines[0].startswith(f"make serve: refusing to start: {name} "), lines[0]
        assert "Traceback" not in err
    assert "3 workers (WEB_CONCURRENCY)" in errors["REDIS_URL"][1]

    # One worker needs no Redis; every setting right → no refusal.
    good = {"SECRET_KEY": "k" * 32, "SQLALCHEMY_DATABASE_URI": pg, "RATELIMIT_STORAGE_URI": "memory://"}
    assert ops.refusals(good, workers=1) == []
    assert [line.split(" ")[0] for line in ops.refusals({}, workers=2)] == ["SECRET_KEY", "DATABASE_URL", "REDIS_URL"]


# --- /healthz ---------------------------------------------------------------------------------------------------

def test_healthz_shows_the_database_and_the_schedulers_last_run(app, client, runner):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok", "database": "ok", "scheduler": None}

    result = runner.invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["scheduler"]["failed_rules"] == []
    assert 0 <= body["scheduler"]["seconds_ago"] < 60 and body["scheduler"]["node"]


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path))
    broken = create_app({"TESTING": True, "SECRET_KEY": "x",
                         "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/missing-dir/db.sqlite3"})
    r = broken.test_client().get("/healthz")
    assert r.status_code == 503
    assert r.get_json() == {"status": "unavailable", "database": "unreachable", "scheduler": None}


# --- request ids, logs, proxies -----------------------------------------------------------------------------------

def _capture(fmt: str):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ops._JsonLine() if fmt == "json" else ops._OneLine())
    handler.addFilter(ops._RequestIdFilter())
    return stream, handler


def test_request_ids_and_one_line_json_logs_without_tokens_or_card_numbers(app, client):
    stream, handler = _capture("json")
    logger = logging.getLogger("portal")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        r = client.get("/portal/magic/SeCrEtToKeN.abc.def", headers={"X-Request-ID": "req-4711"})
        assert r.headers["X-Request-ID"] == "req-4711"
        generated = client.get("/healthz", headers={"X-Request-ID": "bad id; with spaces"}).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)  # a fresh id, not the refused one (which has spaces)
        with app.test_request_context(headers={"X-Request-ID": "req-card"}):
            app.preprocess_request()
            logging.getLogger("portal.test").error("form had 4242 4242 4242 4242 and /portal/magic/tok123?x=1")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is one JSON object
    access = [e for e in lines if e["logger"] == "portal.access"]
    assert {"request_id": "req-4711", "status": r.status_code} == {k: access[0][k] for k in ("request_id", "status")}
    assert access[0]["message"].startswith("GET /portal/magic/[redacted] ")
    assert any(e["request_id"] == generated for e in access)
    [card_line] = [e for e in lines if e["logger"] == "portal.test"]
    assert card_line["request_id"] == "req-card"
    assert card_line["message"] == "form had [redacted-number] and /portal/magic/[redacted]?x=1"
    assert "SeCrEtToKeN" not in stream.getvalue() and "4242" not in stream.getvalue()


def test_forwarded_for_counts_only_behind_trusted_proxies(tmp_path, monkeypatch, app):
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path))
    seen = {}
    for trusted in (0, 1):
        application = create_app({"TESTING": True, "SECRET_KEY": "x", "TRUSTED_PROXIES": trusted,
                                  "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})
        stream, handler = _capture("json")
        logging.getLogger("portal.access").addHandler(handler)
        logging.getLogger("portal.access").setLevel(logging.INFO)
        try:
            r = application.test_client().get("/healthz", headers={"X-Forwarded-For": "203.0.113.9",
                                                                   "X-Forwarded-Proto": "https"},
                                              environ_base={"REMOTE_ADDR": "10.0.0.2"})
            assert r.status_code == 200
        finally:
            logging.getLogger("portal.access").removeHandler(handler)
        seen[trusted] = json.loads(stream.getvalue().splitlines()[-1])["remote_addr"]
        with application.app_context():
            db.engine.dispose()
    assert seen == {0: "10.0.0.2", 1: "203.0.113.9"}


# --- the scheduler loop -------------------------------------------------------------------------------------------

def test_the_scheduler_loop_survives_a_failing_rule_and_records_each_pass(app, smtp):
    def broken_rule():
        raise RuntimeError("the rule broke")

    passes: list[dict] = []
    stop = threading.Event()

    def on_pass(results):
        passes.append(results)
        if len(passes) == 2:
            stop.set()

    def loop():
        with app.app_context():  # the loop's own, like the `flask jobs run --every` process
            scheduler.run_every(0.5, "node-test", stop, on_pass)

    with app.app_context():
        customer = make_customer("Ana", email="ana@example.com")
        mailer.queue_email("portal_login_link", "ana@example.com", {"link": "http://x/"},
                           customer=db.session.get(Customer, customer.id))
        db.session.commit()
    scheduler.register("broken_for_test", broken_rule)
    try:
        thread = threading.Thread(target=loop)
        thread.start()
        thread.join(30)
        assert not thread.is_alive()
    finally:
        scheduler._rules.pop("broken_for_test", None)
    assert len(passes) == 2
    for results in passes:
        assert results["broken_for_test"] == {"error": "RuntimeError: the rule broke"}
        assert "emails" in results and "plans" in results  # the rules after it still ran
    assert passes[0]["emails"]["sent"] == 1 and len(smtp.to("ana@example.com")) == 1
    with app.app_context():
        [row] = db.session.scalars(select(SchedulerRun)).all()
        assert (row.node, row.runs, row.failed_rules) == ("node-test", 2, "broken_for_test")
        assert "the rule broke" in row.last_error


# --- emails that keep failing ----------------------------------------------------------------------------------------

def test_a_failing_email_backs_off_then_fails_and_staff_retry_it(app, client, smtp, login_staff, frozen_clock):
    with app.app_context():
        customer = make_customer("Ana", email="ana@example.com")
        staff = make_staff("admin")
        mailer.queue_email("portal_login_link", "ana@example.com", {"link": "http://x/"},
                           customer=db.session.get(Customer, customer.id))
        db.session.commit()
        smtp.stop()
        waits = []
        for _ in range(12):  # more runs than tries: the cap holds
            mailer.deliver_pending()
            email = db.session.scalars(select(QueuedEmail)).one()
            if email.status == "failed":
                break
            waits.append(round((email.next_attempt_at - clock.now()).total_seconds() / 60))
            frozen_clock.set(email.next_attempt_at + timedelta(seconds=1))
            db.session.remove()
        email = db.session.scalars(select(QueuedEmail)).one()
        assert email.status == "failed" and email.attempts == 10 and email.next_attempt_at is None
        assert "Connection refused" in email.last_error or "Errno" in email.last_error
        assert waits == [5, 10, 20, 40, 80, 160, 240, 240, 240]  # the 10th try is ~17 h after the first
        email_id = email.id
        db.session.remove()

    login_staff(staff)
    outbox = client.get("/admin/outbox?status=failed").get_data(True)
    assert "ana@example.com" in outbox and "failed" in outbox and ("Connection refused" in outbox or "Errno" in outbox)
    dashboard = client.get("/admin/").get_data(True)
    assert 'id="failed-emails"' in dashboard and "1 email failed" in dashboard
    page = client.get(f"/admin/outbox/{email_id}").get_data(True)
    assert "given up after 10 tries" in page and ">Retry</button>" in page

    smtp.start()
    r = client.post(f"/admin/outbox/{email_id}/retry", data={"csrf_token": csrf_token_from(page)})
    assert r.status_code == 302
    assert len(smtp.to("ana@example.com")) == 1
    with app.app_context():
        email = db.session.get(QueuedEmail, email_id)
        assert email.status == "sent" and email.attempts == 1
    assert 'id="failed-emails"' not in client.get("/admin/").get_data(True)


# --- magic links across nodes' clocks ----------------------------------------------------------------------------

def test_a_magic_link_signed_by_a_node_whose_clock_is_ahead_still_logs_in(app, frozen_clock):
    with app.app_context():
        customer = db.session.get(Customer, make_customer("Ana", email="ana@example.com").id)
        now = frozen_clock.now()
        tokens = {}
        for minutes in (4, 6):
            frozen_clock.set(now + timedelta(minutes=minutes))  # the other node's clock
            tokens[minutes] = magic_links.issue_token(customer)
        frozen_clock.set(now)
        assert magic_links.redeem(tokens[4]).outcome == "ok"
        assert magic_links.redeem(tokens[6]).outcome != "ok"  # beyond the 5 minutes of tolerance
        # the 7-day expiry is unchanged
        frozen_clock.set(now + timedelta(minutes=4, days=7, seconds=-5))
        assert magic_links.redeem(tokens[4]).outcome == "ok"
        frozen_clock.set(now + timedelta(minutes=4, days=7, seconds=5))
        assert magic_links.redeem(tokens[4]).outcome == "expired"
        db.session.rollback()


# --- Sentry -----------------------------------------------------------------------------------------------------

def test_errors_go_to_sentry_only_when_a_dsn_is_set(tmp_path, monkeypatch, app, httpserver):
    import sentry_sdk

    received = []
    token, cookie = secrets.token_hex(8), secrets.token_hex(8)
    httpserver.expect_request("/api/1/envelope/", method="POST").respond_with_handler(
        lambda request: (received.append(request.get_data()), __import__("werkzeug").Response("{}"))[1])
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path))
    try:
        for dsn in (None, f"http://publickey@{httpserver.host}:{httpserver.port}/1"):
            application = create_app({"SECRET_KEY": "x", "SENTRY_DSN": dsn, "PROPAGATE_EXCEPTIONS": False,
                                      "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})

            @application.get("/boom-for-test")
            def boom():
                raise RuntimeError("kaboom in a view")

            r = application.test_client().get(f"/boom-for-test?token={token}", headers={"Cookie": f"session={cookie}"})
            assert r.status_code == 500
            sentry_sdk.flush(timeout=5)
            if dsn is None:
                assert received == []  # nothing is sent without a DSN
            with application.app_context():
                db.engine.dispose()
    finally:
        sentry_sdk.init()  # no DSN: off again for the rest of the session
    import gzip

    bodies = [(gzip.decompress(b) if b[:2] == b"\x1f\x8b" else b).decode("utf-8", "replace") for b in received]
    assert any("kaboom in a view" in body for body in bodies), bodies
    assert not any(token in body or cookie in body for body in bodies)  # made at run time: not in the source


@pytest.mark.parametrize("written", ["4242.4242.4242.4242", "4242/4242/4242/4242", "4242_4242_4242_4242",
                                     "4242\u200b4242\u200b4242\u200b4242", "４２４２４２４２４２４２４２４２",
                                     "4242\n4242\n4242\n4242"])
def test_log_lines_lose_a_card_number_however_it_is_written(written):
    line = ops.scrub(f"note said {written} today")
    assert not re.search(r"4242|４２４２", line), line
    assert ops.scrub("invoice INV-1001 for 42.00 on 2026-11-29, call 555-123-4567") == (
        "invoice INV-1001 for 42.00 on 2026-11-29, call 555-123-4567")
