"""Defaults. No secrets live here: instance/config.py or PORTAL_* environment variables override."""
from datetime import timedelta


class Defaults:
    SECRET_KEY = None  # filled from instance/secret_key when not configured
    SQLALCHEMY_DATABASE_URI = None  # instance/portal.sqlite3 unless DATABASE_URL / PORTAL_SQLALCHEMY_DATABASE_URI
    # (PostgreSQL also gets pool_use_lifo, see portal/__init__.py)
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}

    # Sessions
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = True  # relaxed to False in development/testing by create_app
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    PORTAL_IDLE_TIMEOUT_HOURS = 12
    STAFF_IDLE_TIMEOUT_HOURS = 12
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)

    # Magic links
    MAGIC_LINK_MAX_AGE_DAYS = 7
    MAGIC_LINK_AUTO_RESEND_MINUTES = 10

    # Rate limits (A-5, S-2)
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_HEADERS_ENABLED = False
    STAFF_LOGIN_LIMIT = "5 per minute"
    STAFF_2FA_LIMIT = "5 per 5 minutes; 30 per day"  # wrong two-factor codes, per staff account
    PORTAL_LINK_LIMIT_PER_ADDRESS = "5 per 15 minutes"
    PORTAL_LINK_LIMIT_PER_IP = "30 per hour"
    PORTAL_MESSAGE_LIMIT = "20 per hour"  # P-6: per customer, each message also emails staff

    # Mail (N-3). Without MAIL_SERVER, emails stay in the outbox and are printed to the console.
    MAIL_SERVER = None
    MAIL_PORT = 25
    MAIL_USE_TLS = False
    MAIL_USE_SSL = False
    MAIL_USERNAME = None
    MAIL_PASSWORD = None
    MAIL_DEFAULT_SENDER = "Portal <no-reply@localhost>"
    MAIL_TIMEOUT = 10
    MAIL_SUPPRESS_SEND = False  # Flask-Mail would suppress under TESTING; our tests read a real SMTP server
    MAIL_DELIVER_AFTER_REQUEST = True
    MAIL_RETRY_MINUTES = 5  # the first retry; each next one waits twice as long, at most MAIL_RETRY_MAX_MINUTES
    MAIL_RETRY_MAX_MINUTES = 240
    MAIL_MAX_ATTEMPTS = 10  # then the email is "failed" (the 10th try comes ~17 h after the first) until staff retry

    # Stripe. With no secret key the sandbox (localstripe) on 127.0.0.1 is used.
    STRIPE_SECRET_KEY = None
    STRIPE_PUBLISHABLE_KEY = None
    STRIPE_WEBHOOK_SECRET = None
    STRIPE_SANDBOX_HOST = "127.0.0.1"
    STRIPE_SANDBOX_PORT = 8420
    STRIPE_MAX_NETWORK_RETRIES = None  # None: 2 against Stripe (idempotency keys make it safe), 0 against the sandbox
    STRIPE_API_BASE = None  # only for contract tests against a local HTTP server
    STRIPE_RECONCILE_AFTER_MINUTES = 5
    STRIPE_TIMEOUT_SECONDS = 30

    # `flask jobs run`: how many card charges (plan bills, dunning retries, AutoPay) are in flight at once, each on
    # its own worker thread and database session (PORTAL_JOBS_CONCURRENCY; 1 on SQLite).
    JOBS_CONCURRENCY = 8
    # ... spread over this many processes on PostgreSQL (PORTAL_JOBS_PROCESSES; None: the CPU count, at most 4).
    JOBS_PROCESSES = None
    # The transactions CSV on PostgreSQL: a range of many rows is written on this many connections at once, each
    # COPYing its part of the rows on the same snapshot (PORTAL_CSV_EXPORT_CONNECTIONS; 1: the request's own).
    CSV_EXPORT_CONNECTIONS = 2
    # Stripe answered 429 `rate_limit` (nothing charged): wait this long, twice as long each time (at most 8 s), and
    # ask again with the same idempotency key, up to this many times; then the run leaves it for its next pass.
    JOBS_RATE_LIMIT_BACKOFF_SECONDS = 0.25
    JOBS_RATE_LIMIT_RETRIES = 8

    # Public base URL used in emails when no request is active (jobs, CLI).
    BASE_URL = "http://127.0.0.1:5000"

    # Business defaults used until /admin/settings is saved.
    BUSINESS_NAME = "Your Service Business"
    BUSINESS_TIMEZONE = "America/Los_Angeles"
    BUSINESS_CURRENCY = "USD"

    BABEL_DEFAULT_LOCALE = "en"
    BABEL_DEFAULT_TIMEZONE = "UTC"
    LANGUAGES = ("en", "es", "ru")

    WTF_CSRF_TIME_LIMIT = None  # the session bounds the token's life
    CUSTOMERS_PER_PAGE = 25

    # Production (issue 14; docs/production.md). SERVE_MODE is set by `make serve` (PORTAL_SERVE_MODE=1).
    SERVE_MODE = False
    TRUSTED_PROXIES = 0  # PORTAL_TRUSTED_PROXIES=N: X-Forwarded-For/-Proto/-Host from N proxies (ProxyFix)
    LOG_FORMAT = "text"  # LOG_FORMAT=json: one JSON object per line
    SENTRY_DSN = None  # errors are reported to Sentry only when set
    NODE_NAME = None  # this machine's name in scheduler_runs; the host name when unset
    WEBHOOK_MAX_BYTES = 1024 * 1024  # a Stripe event is a few kB; a larger body is refused (413)
