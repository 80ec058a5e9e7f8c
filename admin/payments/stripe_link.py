"""DATA-3: Settings › Payments › Link existing Stripe customers (admin only: the endpoint starts with
admin.settings). The rules are in portal.services.payments.stripe_link; `flask stripe-import` does the same."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField

from admin import bp
from portal.extensions import db
from portal.services.payments import gateway, stripe_link


class StripeLinkForm(FlaskForm):
    create_unmatched = BooleanField("Also create a customer for each Stripe customer we cannot match")


def _unreachable(exc: Exception) -> str:
    return f"Stripe did not answer ({gateway.classify(exc).message}). Nothing was changed; try again."


@bp.route("/settings/stripe-import", methods=["GET", "POST"])
def settings_stripe_import():
    form = StripeLinkForm()
    if request.method == "GET":
        form.create_unmatched.data = request.args.get("create") == "1"
    elif form.validate_on_submit():
        try:
            result = stripe_link.link(current_user, create_unmatched=bool(form.create_unmatched.data))
            db.session.commit()
        except gateway.StripeError as exc:
            db.session.rollback()
            flash(_unreachable(exc), "error")
        else:
            flash(f"Linked {result.linked} customers, created {result.created}, imported {result.cards_added} "
                  f"cards. {len(result.left)} Stripe customers were left as they are. Nothing was charged.",
                  "success")
        return redirect(url_for("admin.settings_stripe_import"))
    preview, error = None, None
    try:
        preview = stripe_link.preview(bool(form.create_unmatched.data))
    except gateway.StripeError as exc:
        error = _unreachable(exc)
    return render_template("admin/payments/stripe_link.html", form=form, preview=preview, error=error,
                           sandbox=gateway.using_sandbox()), 200 if error is None else 502
