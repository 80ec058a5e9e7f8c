"""P-1: the portal home."""
from __future__ import annotations

from flask import Blueprint, render_template

from portal.blueprints.portal_session import current_customer
from portal.services.overview import portal_home

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    response = render_template("portal/home.html", customer=current_customer,
                               home=portal_home.summary(current_customer))
    return response, 200, {"Referrer-Policy": "no-referrer"}
