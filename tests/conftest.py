"""Test harness with real parts (docs/architecture.md).

- The database is SQLite (a file) by default, PostgreSQL when PORTAL_TEST_DB=postgres and
  TEST_DATABASE_URL is set. The schema is created once; every test starts from empty tables.
- `smtp`: a real SMTP server (aiosmtpd) on 127.0.0.1; tests read what it received.
- `stripe_sandbox`: localstripe on 127.0.0.1, started once, emptied before each test.
- `live_server`: the app served over HTTP on 127.0.0.1 for the browser.
- `page`: Playwright driving /usr/bin/chromium headless.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from portal import clock, create_app
from portal.extensions import db as _db
from portal.extensions import limiter
from tests.helpers import close_checking_csp, log_in_customer, log_in_staff, watch_csp

REPO = Path(__file__).resolve().parent.parent
BACKEND = os.environ.get("PORTAL_TEST_DB", "sqlite")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def database_url(tmp_root: Path) -> str:
    if BACKEND == "postgres":
        url = os.environ.get("TEST_DATABASE_URL")
        if not url:
            raise RuntimeError("PORTAL_TEST_DB=postgres needs TEST_DATABASE_URL")
        return url
    return f"sqlite:///{tmp_root / 'test.sqlite3'}"


def engine_options() -> dict:
    """pool_pre_ping; on PostgreSQL, commits that do not wait for the WAL flush (synchronous_commit=off). A committed
    transaction is visible to every other session at once either way: only a crash of the database server itself
    could lose the last commits, and the test database is thrown away."""
    options: dict = {"pool_pre_ping": True}
    if BACKEND == "postgres":
        options["connect_args"] = {"options": "-c synchronous_commit=off"}
    return options


# --- SMTP ------------------------------------------------------------------------------------------

class SMTPServer:
    """aiosmtpd on 127.0.0.1; `messages` holds parsed emails as they arrive."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.messages: list = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
                outer.messages.append(msg)
                return "250 OK"

        self._controller_cls = Controller
        self._handler = Handler()
        self.controller = None

    def start(self):
        self.controller = self._controller_cls(self._handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def clear(self):
        self.messages.clear()

    def to(self, address: str) -> list:
        return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    @staticmethod
    def text(msg) -> str:
        return msg.get_body(preferencelist=("plain",)).get_content()

    @staticmethod
    def html(msg) -> str:
        return msg.get_body(preferencelist=("html",)).get_content()


@pytest.fixture(scope="session")
def smtp_server():
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server):
    if smtp_server.controller is None:
        smtp_server.start()
    smtp_server.clear()
    yield smtp_server
    if smtp_server.controller is None:
        smtp_server.start()


# --- Stripe sandbox ----------------------------------------------------------------------------------

@contextlib.contextmanager
def running_sandbox(data: Path | None = None):
    """A localstripe process on 127.0.0.1 (its store pickled to `data`, or kept in memory); yields port and url."""
    port = free_port()
    args = [sys.executable, "-m", "portal.stripe_sandbox", "--port", str(port), "--quiet"]
    if data is not None:
        args += ["--data", str(data)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port)
    except RuntimeError as exc:
        proc.kill()
        raise RuntimeError("the Stripe sandbox did not start: " + proc.stderr.read().decode()[-2000:]) from exc
    try:
        yield {"port": port, "url": f"http://127.0.0.1:{port}"}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def stripe_sandbox_process(tmp_path_factory):
    with running_sandbox(tmp_path_factory.mktemp("stripe") / "sandbox.pickle") as sandbox:
        yield sandbox


@pytest.fixture
def stripe_sandbox(stripe_sandbox_process):
    requests.delete(stripe_sandbox_process["url"] + "/_config/data", timeout=5).raise_for_status()
    return stripe_sandbox_process


# --- App and database --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def app(tmp_path_factory, smtp_server, stripe_sandbox_process):
    root = tmp_path_factory.mktemp("instance")
    application = create_app({
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "SQLALCHEMY_DATABASE_URI": database_url(root),
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(),
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": smtp_server.port,
        "MAIL_DEFAULT_SENDER": "Bright Air <office@brightair.test>",
        "MAIL_TIMEOUT": 5,
        "STRIPE_SANDBOX_PORT": stripe_sandbox_process["port"],
        "BASE_URL": "http://portal.test",
        "RATELIMIT_STORAGE_URI": "memory://",
        "BUSINESS_NAME": "Bright Air",
        # runs inside pytest stay in its process (threads); `flask jobs run` processes started by the tests fork
        # their worker processes as in production
        "JOBS_PROCESSES": 1,
    })
    application.instance_path = str(root)
    with application.app_context():
        if BACKEND == "postgres":
            _db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            _db.session.commit()
        else:
            _db.drop_all()
        _db.create_all()
    yield application
    with application.app_context():
        _db.session.remove()
        _db.engine.dispose()


def _empty_tables(application) -> None:
    with application.app_context():
        tables = [t.name for t in reversed(_db.metadata.sorted_tables)]
        if BACKEND == "postgres":
            # TRUNCATE costs per table (new files for each): empty only the tables with rows, in one statement,
            # and restart every sequence that has handed out a value (rows rolled back or deleted included).
            probe = " UNION ALL ".join(f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM \"{t}\")" for t in tables)
            used = _db.session.scalars(text(probe)).all()
            if used:
                _db.session.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in used) + " RESTART IDENTITY CASCADE"))
            sequences = _db.session.scalars(text(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) FROM pg_sequences "
                "WHERE schemaname = current_schema() AND last_value IS NOT NULL")).all()
            for sequence in sequences:
                _db.session.execute(text(f"ALTER SEQUENCE {sequence} RESTART"))
        else:
            for t in tables:
                _db.session.execute(text(f'DELETE FROM "{t}"'))
        _db.session.commit()
        _db.session.remove()


@pytest.fixture(autouse=True)
def _isolation(request):
    """Every test starts with empty tables, real time, fresh rate limits."""
    clock.set_now(None)
    yield
    clock.set_now(None)
    if "app" in request.fixturenames:
        application = request.getfixturevalue("app")
        _empty_tables(application)
        with application.app_context():
            limiter.reset()

        application.config["MAIL_DELIVER_AFTER_REQUEST"] = True


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def ctx(app):
    """An application context for service-level code in a test."""
    with app.app_context():
        yield _db.session
        _db.session.remove()


class Clock:
    """Moves the one clock (G-2)."""

    def set(self, when: datetime) -> datetime:
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        clock.set_now(when)
        return when

    def advance(self, **kwargs) -> datetime:
        return self.set(clock.now() + timedelta(**kwargs))

    def now(self) -> datetime:
        return clock.now()


@pytest.fixture
def frozen_clock():
    c = Clock()
    c.set(datetime(2026, 3, 2, 17, 0, tzinfo=UTC))
    return c


# --- Logins -----------------------------------------------------------------------------------------

@pytest.fixture
def login_staff(client):
    def _login(user, password="correct horse battery", c=None):
        return log_in_staff(c or client, user, password)
    return _login


@pytest.fixture
def login_customer(app, client):
    def _login(customer, c=None):
        return log_in_customer(app, c or client, customer)
    return _login


# --- Live server and browser ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def live_server_process(app):
    from werkzeug.serving import make_server

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


@pytest.fixture
def live_server(app, live_server_process):
    previous = app.config["BASE_URL"]
    app.config["BASE_URL"] = live_server_process
    yield live_server_process
    app.config["BASE_URL"] = previous


CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    chromium = pw.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                  args=CHROMIUM_ARGS, headless=True)
    yield chromium
    chromium.close()
    pw.stop()


@pytest.fixture
def page(browser):
    """A fresh browser context's page; the test fails on any Content-Security-Policy violation (helpers.watch_csp)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watch_csp(context)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    close_checking_csp(context)
