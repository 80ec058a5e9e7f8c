"""Customer portal and staff admin for service businesses."""
from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path

from flask import Flask, g, request

REPO_ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict | None = None) -> Flask:
    """Config layers: defaults → instance/config.py → PORTAL_* env → test_config (docs/architecture.md)."""
    instance_path = os.environ.get("PORTAL_INSTANCE_PATH") or str(REPO_ROOT / "instance")
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    app.config.from_object("portal.config.Defaults")
    app.config.from_pyfile("config.py", silent=True)
    if os.environ.get("DATABASE_URL"):
        app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    from portal import ops

    ops.read_environment(app)  # SECRET_KEY, REDIS_URL, LOG_FORMAT, SENTRY_DSN, NODE_NAME
    app.config.from_prefixed_env("PORTAL")
    if test_config:
        app.config.update(test_config)
    if app.config.get("SERVE_MODE"):  # make serve: refuse what would break several nodes (issue 14)
        problems = ops.refusals(app.config, ops.web_workers())
        if problems:
            raise ops.ConfigRefused(problems)
    _finish_config(app)

    from portal.extensions import babel, csrf, db, limiter, login_manager, mail, migrate

    app.url_map.converters["int"] = _DatabaseInt  # ids past the column's range are 404s, not database errors
    db.init_app(app)
    from portal import prepared

    prepared.init_app(app)  # after db.init_app: its teardown runs before the session's
    migrate.init_app(app, db, directory=str(REPO_ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    mail.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=_select_locale)
    login_manager.init_app(app)
    login_manager.login_view = "admin.login"
    login_manager.login_message = None
    login_manager.session_protection = "basic"

    from portal import models  # noqa: F401  (every table registered on the metadata)
    from portal.services import wiring

    wiring.connect()  # the staff user loader (server-side sessions) is registered by admin.init_app

    from portal import cli, errors, templating
    from portal.blueprints import register as register_portal

    templating.init_app(app)
    errors.init_app(app)
    from portal import card_guard

    card_guard.init_app(app)
    from portal import security_headers

    security_headers.init_app(app)  # CSP, framing, nosniff, referrer, HSTS (issue 18)
    register_portal(app)
    from portal.blueprints.webhooks import bp as webhooks_bp

    app.register_blueprint(webhooks_bp)
    import admin

    admin.init_app(app)
    cli.init_app(app)
    _init_mail_after_request(app)
    _init_log_redaction()
    ops.init_app(app)  # proxy headers, request ids, logs, Sentry, /healthz

    return app


def _finish_config(app: Flask) -> None:
    os.makedirs(app.instance_path, exist_ok=True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "portal.sqlite3")
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgres://"):
        uri = app.config["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://" + uri[len("postgres://"):]
    elif uri.startswith("postgresql://"):
        uri = app.config["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://" + uri[len("postgresql://"):]
    if uri.startswith("sqlite"):
        opts = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        opts.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = opts
    elif uri.startswith("postgresql"):
        # LIFO: a request gets the connection used last, whose statements are prepared (portal/prepared.py); the
        # ones left idle can be closed by the server's idle timeouts (pre-ping notices)
        opts = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        opts.setdefault("pool_use_lifo", True)
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = opts
    if not app.config.get("SECRET_KEY"):
        key_file = Path(app.instance_path) / "secret_key"
        if not key_file.exists():
            key_file.write_text(secrets.token_hex(32))
            key_file.chmod(0o600)
        app.config["SECRET_KEY"] = key_file.read_text().strip()
    # Secure cookies whenever the site is served over https.
    if not str(app.config.get("BASE_URL", "")).startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = False
        app.config["REMEMBER_COOKIE_SECURE"] = False
    from datetime import timedelta

    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=float(app.config["PORTAL_IDLE_TIMEOUT_HOURS"]))


from werkzeug.routing import IntegerConverter  # noqa: E402


class _DatabaseInt(IntegerConverter):
    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def _select_locale():
    from flask import current_app, has_request_context

    languages = current_app.config["LANGUAGES"]
    if not has_request_context():
        return current_app.config["BABEL_DEFAULT_LOCALE"]  # jobs and CLI: messages use force_locale when needed
    if request.blueprint and request.blueprint.startswith("admin"):
        return "en"
    chosen = request.args.get("lang")
    if chosen in languages:
        return chosen
    customer = getattr(g, "customer", None)
    if customer is not None and customer.preferred_language in languages:
        return customer.preferred_language
    from flask import session

    if session.get("lang") in languages:
        return session["lang"]
    return request.accept_languages.best_match(languages) or "en"


def _init_mail_after_request(app: Flask) -> None:
    """Rule 3: emails queued by a request are delivered after it committed."""
    from portal.extensions import db
    from portal.services.platform import mailer

    @app.after_request
    def deliver_queued_email(response):
        ids = g.pop("queued_email_ids", None)
        if ids and app.config["MAIL_DELIVER_AFTER_REQUEST"]:
            db.session.rollback()  # anything the view did not commit is abandoned; only committed mail goes out
            try:
                mailer.deliver(ids)
            except Exception:  # delivery trouble never breaks the response; the job runner retries
                app.logger.exception("email delivery after request failed")
                db.session.rollback()
        return response


class _RedactTokens(logging.Filter):
    """A-7: tokens never appear in logs."""

    pattern = re.compile(r"(/(?:portal/magic|admin/invitation)/)[^\s\"?]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.pattern.sub(r"\1[redacted]", record.msg)
        if record.args:
            record.args = tuple(self.pattern.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


def _init_log_redaction() -> None:
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, _RedactTokens) for f in logger.filters):
        logger.addFilter(_RedactTokens())
