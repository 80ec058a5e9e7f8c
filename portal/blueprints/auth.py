"""A-1 … A-8: the portal door."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from portal.blueprints import portal_session
from portal.extensions import db, limiter
from portal.forms.auth import RequestLinkForm
from portal.services.platform import magic_links

bp = Blueprint("auth", __name__)


def _email_key() -> str:
    return "portal-link:" + (request.form.get("email") or "").strip().lower()[:254]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["PORTAL_LINK_LIMIT_PER_IP"], methods=["POST"], scope="portal-link-ip")
@limiter.limit(lambda: current_app.config["PORTAL_LINK_LIMIT_PER_ADDRESS"], methods=["POST"],
               key_func=_email_key, scope="portal-link-address")
def login():
    form = RequestLinkForm()
    if form.validate_on_submit():
        magic_links.request_link(form.email.data)
        db.session.commit()
        # The same answer whether or not the address is on file.
        return redirect(url_for("portal.auth.sent"))
    return render_template("portal/auth/login.html", form=form, expired=request.args.get("expired"),
                           status=400 if form.errors else 200), 400 if form.errors else 200


@bp.get("/login/sent")
def sent():
    return render_template("portal/auth/sent.html")


@bp.get("/magic/<token>")
def magic(token: str):
    result = magic_links.redeem(token)
    db.session.commit()
    if result.outcome == "ok":
        portal_session.log_in(result.customer)
        response = redirect(result.next_path or url_for("portal.home.index"))
    elif result.outcome == "expired":
        response = current_app.make_response(
            (render_template("portal/auth/expired.html", resent=result.resent), 410))
    else:
        response = current_app.make_response(
            (render_template("portal/auth/invalid.html", form=RequestLinkForm()), 400))
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.post("/logout")
def logout():
    portal_session.log_out()
    return redirect(url_for("portal.auth.login"))
