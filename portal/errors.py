"""Error pages in the look of the part of the site the visitor was in (portal or admin)."""
from __future__ import annotations

from flask import Flask, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal.extensions import db
from portal.services.errors import NotFound

MESSAGES = {
    400: (_l("Bad request"), _l("We could not understand that request.")),
    403: (_l("Not allowed"), _l("Your account does not have access to this page.")),
    404: (_l("Page not found"), _l("The page you asked for does not exist or is not yours to see.")),
    405: (_l("Not allowed"), _l("That action is not available here.")),
    429: (_l("Too many attempts"), _l("Too many attempts. Please wait a minute and try again.")),
    500: (_l("Something went wrong"), _l("An unexpected error happened. Nothing was changed; please try again.")),
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
        return _render(400, _l("Your form expired"),
                       _l("This form was open too long or came from somewhere else. Go back, reload the page "
                          "and try again."))

    @app.errorhandler(NotFound)
    def not_found(error: NotFound):
        """A service loader found no such row (or none of this customer's): the normal 404 page."""
        db.session.rollback()
        title, message = MESSAGES[404]
        return _render(404, title, message)

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
