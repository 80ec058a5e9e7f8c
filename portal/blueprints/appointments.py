"""P-4: upcoming and past visits, a calendar file per visit, "Request a different time"."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from portal import clock
from portal.blueprints.messages import message_form, message_limit, post_message
from portal.blueprints.portal_session import current_customer
from portal.services.platform import settings
from portal.services.work import appointments

bp = Blueprint("appointments", __name__)


def _visit(visit_id: int):
    visit = appointments.visit_of(current_customer, visit_id)
    return visit


@bp.get("/appointments")
def index():
    return render_template("portal/appointments.html",
                           appointments=appointments.for_customer(current_customer, request.args.get("page")),
                           address_of=appointments.address_of)


@bp.get("/appointments/<int:visit_id>.ics")
def ics(visit_id: int):
    visit = _visit(visit_id)
    data = appointments.ics(visit, settings.get().name, current_app.config["BASE_URL"])
    return Response(data, mimetype="text/calendar",
                    headers={"Content-Disposition": f'attachment; filename="visit-{visit.id}.ics"'})


@bp.route("/appointments/<int:visit_id>/reschedule", methods=["GET", "POST"])
@message_limit
def reschedule(visit_id: int):
    visit = _visit(visit_id)
    if visit.status in ("completed", "cancelled") or visit.ends_at < clock.now():
        flash(_("This visit can no longer be moved. Send us a message instead."), "error")
        return redirect(url_for(".index"))
    form = message_form()
    if form.is_submitted():
        sent = post_message(form, visit=visit)
        if sent is not None:
            flash(_("Thanks! We received your request and will call you to agree on a new time."), "success")
            return redirect(url_for(".index"))
        status = 400
    else:
        status = 200
    return render_template("portal/reschedule.html", form=form, visit=visit,
                           address=appointments.address_of(visit)), status
