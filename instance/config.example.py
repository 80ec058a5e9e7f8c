# Copy to instance/config.py (git-ignored) to override defaults. PORTAL_* environment variables win over this file.
# SECRET_KEY = "..."                       # generated into instance/secret_key when unset (make run);
#                                          # make serve refuses to start without it (or SECRET_KEY in the environment)
# SQLALCHEMY_DATABASE_URI = "postgresql://user@127.0.0.1:5432/portal"   # or DATABASE_URL
# BASE_URL = "https://portal.example.com"  # links in emails; https turns on Secure cookies
# MAIL_SERVER = "smtp.example.com"; MAIL_PORT = 587; MAIL_USE_TLS = True
# MAIL_USERNAME = "..."; MAIL_PASSWORD = "..."; MAIL_DEFAULT_SENDER = "Bright Air <office@example.com>"
# STRIPE_SECRET_KEY = "sk_live_..."; STRIPE_PUBLISHABLE_KEY = "pk_live_..."; STRIPE_WEBHOOK_SECRET = "whsec_..."
# RATELIMIT_STORAGE_URI = "redis://127.0.0.1:6379/0"   # or REDIS_URL; make serve needs it with >1 worker
# TRUSTED_PROXIES = 1                      # behind one proxy (nginx); or PORTAL_TRUSTED_PROXIES
# LOG_FORMAT = "json"; SENTRY_DSN = "https://...@sentry.io/1"   # see docs/production.md
# PORTAL_IDLE_TIMEOUT_HOURS = 12
