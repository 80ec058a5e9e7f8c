"""Error pages in the look of the part of the site the visitor was in (portal or admin)."""
from __future__ import annotations

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal.extensions import db

MESSAGES = {
    400: ("Bad request", "We could not understand that request."),
    403: ("Not allowed", "Your account does not have access to this page."),
    404: ("Page not found", "The page you asked for does not exist or is not yours to see."),
    405: ("Not allowed", "That action is not available here."),
    429: ("Too many attempts", "Too many attempts. Please wait a minute and try again."),
    500: ("Something went wrong", "An unexpected error happened. Nothing was changed; please try again."),
}


def _render(status: int, title: str, message: str):
    area = "admin" if request.path.startswith("/admin") else "portal"
    try:
        return render_template(f"errors/{area}.html", status=status, title=title, message=message), status
    except Exception:  # never fail while reporting a failure
        return f"{title}\n\n{message}\n", status, {"Content-Type": "text/plain; charset=utf-8"}


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return _render(400, "Your form expired",
                       "This form was open too long or came from somewhere else. Go back, reload the page "
                       "and try again.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        title, message = MESSAGES.get(error.code, (error.name, error.description))
        return _render(error.code or 500, title, message)

    @app.errorhandler(Exception)
    def server_error(error):
        app.logger.exception("unhandled error")
        db.session.rollback()
        title, message = MESSAGES[500]
        return _render(500, title, message)
