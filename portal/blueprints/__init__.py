"""Customer-facing blueprints under /portal. Access is checked once, in `portal_session.guard`."""
from __future__ import annotations

from flask import Blueprint, Flask

from portal.blueprints import appointments, auth, estimates, home, invoices, messages, plans, portal_session, wallet

bp = Blueprint("portal", __name__, url_prefix="/portal")
bp.before_request(portal_session.guard)
bp.after_request(portal_session.after)
for child in (auth.bp, home.bp, invoices.bp, wallet.bp, appointments.bp, estimates.bp, messages.bp, plans.bp):
    bp.register_blueprint(child)


def register(app: Flask) -> None:
    app.register_blueprint(bp)
