"""P-5: estimates — approve with a typed name (and the deposit, when one is required) or decline."""
from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from portal.blueprints.actions import run_form
from portal.blueprints.portal_session import current_customer
from portal.blueprints.wallet import (
    authenticate_page,
    back_from_bank,
    card_choices,
    card_entry,
    chosen_card,
    forget_if_done,
)
from portal.extensions import db
from portal.forms.pages import ApproveEstimateForm, DeclineEstimateForm
from portal.models import ChargeAttempt
from portal.services.billing import documents
from portal.services.errors import NotFound, ServiceError, ValidationError
from portal.services.payments import charges
from portal.services.platform import settings
from portal.services.work import estimates

bp = Blueprint("estimates", __name__)


def _estimate(estimate_id: int):
    estimate = estimates.estimate_of(current_customer, estimate_id)
    return estimate


@bp.get("/estimates")
def index():
    page = estimates.for_customer(current_customer, request.args.get("page"))
    return render_template("portal/estimates/list.html", estimates=page.items, page=page,
                           is_expired=estimates.is_expired)


def _page(estimate, approve=None, decline=None, status: int = 200, outcome=None):
    approve = approve or ApproveEstimateForm(formdata=None)
    decline = decline or DeclineEstimateForm(formdata=None)
    entry, saved = {}, []
    answerable = estimates.is_open(estimate)
    if estimate.deposit_cents and answerable:
        saved = card_choices(approve)
        entry = card_entry("payment")
    return render_template("portal/estimates/detail.html", estimate=estimate, approve=approve, decline=decline,
                           answerable=answerable, expired=estimates.is_expired(estimate), entry=entry, cards=saved,
                           busy=estimates.open_deposit_attempt(estimate), outcome=outcome,
                           card_required=settings.get().require_card_for_deposits), status


@bp.get("/estimates/<int:estimate_id>.pdf")
def estimate_pdf(estimate_id: int):
    """Issue 19: the estimate as a PDF, in the page's language."""
    estimate = _estimate(estimate_id)
    return Response(documents.estimate_pdf(estimate, str(get_locale())), mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="estimate-{estimate.number}.pdf"'})


@bp.get("/estimates/<int:estimate_id>")
def detail(estimate_id: int):
    return _page(_estimate(estimate_id))


@bp.post("/estimates/<int:estimate_id>/approve")
def approve(estimate_id: int):
    estimate = _estimate(estimate_id)
    form = ApproveEstimateForm()
    if not form.validate_on_submit():
        form.form_errors.append(_("The form expired. Please try again."))
        return _page(estimate, approve=form, status=400)
    if not estimate.deposit_cents:
        done = run_form(form, lambda: estimates.approve(estimate, form.name.data, request.remote_addr),
                        _name_if_invalid)
        if not done:
            return _page(estimate, approve=form, status=done.status)
        flash(_("Thank you! The estimate is approved. We will be in touch to schedule the work."), "success")
        return redirect(url_for(".detail", estimate_id=estimate.id))
    return _approve_with_deposit(estimate, form)


def _name_if_invalid(exc) -> str | None:
    return "name" if isinstance(exc, ValidationError) else None


def _approve_with_deposit(estimate, form: ApproveEstimateForm):
    keep = settings.get().require_card_for_deposits or bool(form.save_card.data)  # W-6
    new_card = None
    try:
        estimates.clean_name(form.name.data)  # a missing name is refused before any card is saved ...
        estimates.refuse_unless_open(estimate)  # ... and so is an estimate that cannot be approved
        card = chosen_card(form, on_file=keep)
        new_card = card if form.card_id.data == "new" else None
        outcome = estimates.approve_with_deposit(current_customer, estimate, form.name.data, request.remote_addr,
                                                 card, form.token.data)
    except (NotFound, ValidationError) as exc:
        db.session.rollback()
        getattr(form, exc.field if getattr(exc, "field", None) in ("name", "card_id") else "card_id").errors = [
            exc.message]
        form.setup_intent.data = ""
        return _page(estimate, approve=form, status=400)
    except ServiceError as exc:
        db.session.rollback()
        form.form_errors.append(exc.message)
        return _page(estimate, approve=form, status=409)
    finally:
        forget_if_done(new_card)
    return _after_deposit(estimate, form, outcome)


def _after_deposit(estimate, form, outcome: charges.Outcome):
    db.session.refresh(estimate)
    if outcome.status == "succeeded":
        if estimate.status == "approved":
            flash(_("Thank you! Your deposit was received and the estimate is approved."), "success")
        else:
            flash(_("Your payment was received and is kept on your account; we will contact you about this "
                    "estimate."), "success")
        return redirect(url_for(".detail", estimate_id=estimate.id))
    if outcome.status == "requires_action":
        return authenticate_page(outcome, url_for(".confirm", estimate_id=estimate.id,
                                                  attempt_id=outcome.attempt.id))
    form.token.data = charges.new_token()
    form.setup_intent.data = ""
    return _page(estimate, approve=form, outcome=outcome, status=402 if outcome.status == "failed" else 202)


@bp.post("/estimates/<int:estimate_id>/deposit/<int:attempt_id>/confirm")
def confirm(estimate_id: int, attempt_id: int):
    estimate = _estimate(estimate_id)
    _attempt, outcome = back_from_bank(attempt_id, ChargeAttempt.estimate_id == estimate.id)
    form = ApproveEstimateForm(formdata=None)
    form.name.data = estimate.approved_name
    return _after_deposit(estimate, form, outcome)


@bp.post("/estimates/<int:estimate_id>/decline")
def decline(estimate_id: int):
    estimate = _estimate(estimate_id)
    form = DeclineEstimateForm()
    if not form.validate_on_submit():
        form.form_errors.append(_("The form expired. Please try again."))
        return _page(estimate, decline=form, status=400)
    done = run_form(form, lambda: estimates.decline(estimate, form.reason.data),
                    lambda exc: "reason" if isinstance(exc, ValidationError) else None)
    if not done:
        return _page(estimate, decline=form, status=done.status)
    flash(_("The estimate is declined. Thank you for letting us know."), "success")
    return redirect(url_for(".detail", estimate_id=estimate.id))
