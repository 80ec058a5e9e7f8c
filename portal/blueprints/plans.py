"""P-8 (viewing): the customer's service plans."""
from __future__ import annotations

from flask import Blueprint, abort, render_template

from portal.blueprints.portal_session import current_customer
from portal.services import plans

bp = Blueprint("plans", __name__)


@bp.get("/plans")
def index():
    return render_template("portal/plans/list.html", plans=plans.for_customer(current_customer),
                           outstanding=plans.OUTSTANDING)


@bp.get("/plans/<int:plan_id>")
def detail(plan_id: int):
    plan = plans.plan_of(current_customer, plan_id)
    if plan is None:
        abort(404)
    return render_template("portal/plans/detail.html", detail=plans.detail(plan), plan=plan)
