"""Running in production (issue 14): serve-mode refusals, proxy headers, request ids, one-line logs, /healthz,
optional Sentry. `create_app` calls `read_environment` before the config is finished and `init_app` after the
blueprints; `portal.serve` (make serve) and `gunicorn.conf.py` use `refusals` and `web_workers`.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid

from flask import Flask, g, has_request_context, jsonify, request
from werkzeug.middleware.proxy_fix import ProxyFix

from portal.card_guard import contains_card_number

# Plain (unprefixed) environment variables the production guide names, and the config key each one sets.
ENVIRONMENT = {
    "SECRET_KEY": "SECRET_KEY",
    "REDIS_URL": "RATELIMIT_STORAGE_URI",
    "LOG_FORMAT": "LOG_FORMAT",
    "SENTRY_DSN": "SENTRY_DSN",
    "NODE_NAME": "NODE_NAME",
}
DEFAULT_WORKERS = 2
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# What never reaches a log line: login tokens in URLs, and anything shaped like a card number.
_TOKEN_PATH = re.compile(r"(/(?:portal/magic|admin/invitation)/)[^\s\"?/]+")
_CARD_NUMBER = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


class ConfigRefused(RuntimeError):
    """Serve mode refuses to start; each line of the message names one setting."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def read_environment(app: Flask) -> None:
    """SECRET_KEY, REDIS_URL, LOG_FORMAT, SENTRY_DSN, NODE_NAME from the environment (after instance/config.py,
    before the PORTAL_* variables, like DATABASE_URL)."""
    for name, key in ENVIRONMENT.items():
        value = os.environ.get(name)
        if value:
            app.config[key] = value


def web_workers() -> int:
    """Gunicorn workers: WEB_CONCURRENCY, default 2."""
    try:
        return max(int(os.environ.get("WEB_CONCURRENCY") or DEFAULT_WORKERS), 1)
    except ValueError:
        return DEFAULT_WORKERS


def refusals(config, workers: int) -> list[str]:
    """Why serve mode must not start with this config: one line per setting, empty when it may."""
    problems = []
    if not config.get("SECRET_KEY"):
        problems.append("SECRET_KEY is not set: put it in the environment or instance/config.py "
                        "(one key shared by every node; `python -c 'import secrets; print(secrets.token_hex(32))'`).")
    uri = str(config.get("SQLALCHEMY_DATABASE_URI") or "")
    if not uri.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        scheme = uri.split(":", 1)[0] or "the SQLite default"
        problems.append(f"DATABASE_URL must be a PostgreSQL URL (postgresql://user@host/db) in serve mode, "
                        f"not {scheme}.")
    storage = str(config.get("RATELIMIT_STORAGE_URI") or "memory://")
    if workers > 1 and storage.startswith("memory://"):
        problems.append(f"REDIS_URL is not set: {workers} workers (WEB_CONCURRENCY) need shared rate limits "
                        f"(redis://host:6379/0), not memory://.")
    return problems


def init_app(app: Flask) -> None:
    trusted = int(app.config.get("TRUSTED_PROXIES") or 0)
    if trusted > 0:  # X-Forwarded-For/-Proto/-Host from exactly that many proxies in front of us
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted, x_proto=trusted, x_host=trusted)  # type: ignore[method-assign]
    _init_request_ids(app)
    if app.config.get("SERVE_MODE"):
        configure_logging(str(app.config.get("LOG_FORMAT") or "text"))
        from flask.logging import default_handler

        app.logger.removeHandler(default_handler)  # one handler (the root's): no second, multi-line copy
    if app.config.get("SENTRY_DSN"):
        _init_sentry(str(app.config["SENTRY_DSN"]))
    app.add_url_rule("/healthz", "healthz", healthz)


# --- Request ids and the access log ----------------------------------------------------------------------

access_log = logging.getLogger("portal.access")


def _init_request_ids(app: Flask) -> None:
    @app.before_request
    def _request_id():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.request_started = time.monotonic()

    @app.after_request
    def _log_request(response):
        rid = g.get("request_id")
        if rid:
            response.headers["X-Request-ID"] = rid
            took = (time.monotonic() - g.get("request_started", time.monotonic())) * 1000
            access_log.info("%s %s %s %.0fms", request.method, request.path, response.status_code, took,
                            extra={"remote_addr": request.remote_addr, "status": response.status_code})
        return response


def request_id() -> str:
    return (g.get("request_id") if has_request_context() else None) or "-"


def scrub(text: str) -> str:
    """A log line without login tokens or card-number-like digits."""
    line = _CARD_NUMBER.sub("[redacted-number]", _TOKEN_PATH.sub(r"\1[redacted]", text))
    if contains_card_number(line):
        # Written in a way the plain pattern misses (dots, slashes, invisible or full-width characters): the form
        # guard's reading finds it, and the line loses every digit rather than risk a readable card number.
        line = re.sub(r"\d", "#", line)
    return line


class _OneLine(logging.Formatter):
    """`time level logger [request id] message`, an exception folded onto the same line."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += " | " + self.formatException(record.exc_info).replace("\n", " | ")
        line = (f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname} {record.name} "
                f"[{getattr(record, 'request_id', '-')}] {message}")
        return scrub(line.replace("\n", " | "))


class _JsonLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                 "logger": record.name, "request_id": getattr(record, "request_id", "-"),
                 "message": scrub(record.getMessage())}
        for key in ("remote_addr", "status"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id()
        return True


def configure_logging(fmt: str = "text") -> None:
    """One line per event on stderr (LOG_FORMAT=json: one JSON object per line), with the request id."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_portal", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._portal = True  # type: ignore[attr-defined]
    handler.setFormatter(_JsonLine() if fmt.lower() == "json" else _OneLine())
    handler.addFilter(_RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)


# --- Sentry ----------------------------------------------------------------------------------------------

def _init_sentry(dsn: str) -> None:
    """Errors go to Sentry only when SENTRY_DSN is set; no personal data, request bodies, cookies, query strings
    or local variables."""
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration

    def _before_send(event, _hint):
        req = event.get("request") or {}
        for key in ("data", "cookies", "query_string"):
            req.pop(key, None)
        if "url" in req:
            req["url"] = scrub(req["url"])
        return event

    sentry_sdk.init(dsn=dsn, integrations=[FlaskIntegration()], send_default_pii=False,
                    max_request_body_size="never", include_local_variables=False,  # locals hold tokens, customers
                    before_send=_before_send, traces_sample_rate=0)


# --- /healthz --------------------------------------------------------------------------------------------

def healthz():
    """200 with the database status and the scheduler's last completed run; 503 when the database is down."""
    from sqlalchemy import text

    from portal import clock
    from portal.extensions import db
    from portal.services.platform import scheduler

    try:
        db.session.execute(text("SELECT 1"))
        last = scheduler.last_run()
    except Exception as exc:
        db.session.rollback()
        logging.getLogger("portal.health").warning("health check: database unreachable: %s", type(exc).__name__)
        return jsonify(status="unavailable", database="unreachable", scheduler=None), 503
    run = None
    if last is not None:
        run = {"node": last.node, "finished_at": last.finished_at.isoformat(timespec="seconds"),
               "seconds_ago": int((clock.now() - last.finished_at).total_seconds()),
               "failed_rules": last.failed_rules.split(", ") if last.failed_rules else []}
    return jsonify(status="ok", database="ok", scheduler=run), 200
