"""Gunicorn settings for `make serve` (issue 14; docs/production.md).

HOST/PORT (default 127.0.0.1:8000), WEB_CONCURRENCY workers (default 2). The access log is written by the app
itself (logger `portal.access`: one line per request with its request id, login tokens redacted, LOG_FORMAT=json
for JSON), so gunicorn's own access log is off. Proxy headers are trusted only through PORTAL_TRUSTED_PROXIES
(Werkzeug's ProxyFix in the app), never by gunicorn.
"""
import logging
import os

from portal import ops

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = ops.web_workers()
worker_class = "sync"
timeout = 60  # a worker silent this long is restarted (Stripe calls time out after 30 s)
graceful_timeout = 10  # SIGTERM: requests in flight get this long to finish
keepalive = 5
max_requests = 2000  # recycle workers now and then
max_requests_jitter = 200
preload_app = True  # the app is built once in the master and forked: workers start at once, share memory
accesslog = None
errorlog = "-"
secure_scheme_headers: dict = {}  # X-Forwarded-Proto counts only through PORTAL_TRUSTED_PROXIES
forwarded_allow_ips = "127.0.0.1"
proc_name = "portal"
control_socket_disable = True  # one shared path per user would clash between nodes on one machine


def on_starting(server):
    """Gunicorn's own lines in the same one-line (or JSON) format as the app's."""
    ops.configure_logging(os.environ.get("LOG_FORMAT") or "text")
    for name in ("gunicorn.error",):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


def post_fork(server, worker):
    """A forked worker opens its own database connections (none were opened in the master, but be sure)."""
    from portal.extensions import db
    from wsgi import app

    with app.app_context():
        db.engine.dispose(close=False)


def worker_exit(server, worker):
    """In the worker, after its last request: leave at once. Tearing down the interpreter (every module of the app)
    takes seconds on a busy machine and would only delay SIGTERM; the OS closes the sockets."""
    logging.shutdown()
    os._exit(0)


def on_exit(server):
    logging.shutdown()
    os._exit(0)
