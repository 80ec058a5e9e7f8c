"""INV-1, P-5 (staff side): jobs and visits, estimates created and edited by staff."""
from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from admin import TECHNICIAN_JOB_STATUSES, bp, form_id
from admin.common import BLANK_ROWS, create_once, lines_in_form, lines_of, new_form_key, staff_choices, submit
from admin.forms import ConfirmForm
from admin.work.forms import EstimateForm, JobForm, StatusForm, VisitForm
from portal.blueprints.actions import parsed, run_action, run_form
from portal.models import Job
from portal.money import parse_amount, to_input
from portal.services.billing import documents, invoices
from portal.services.crm import customers as customer_service
from portal.services.errors import NotFound, ValidationError
from portal.services.plans import reports as plan_reports
from portal.services.platform import settings
from portal.services.work import estimates, line_items, work_orders


def _act(action, back: str, success, target=None):
    """A button: commit and say so (then go to `target(result)`, or back), or roll back, say why and go back."""
    result = run_action(action, success)
    return redirect(target(result) if target and result is not None else back)


def _own_job(job: Job) -> bool:
    """A technician sees the jobs they are on (as the job's or a visit's technician)."""
    if current_user.role != "technician":
        return True
    return job.technician_id == current_user.id or any(v.technician_id == current_user.id for v in job.visits)


def _job(job_id: int) -> Job:
    job = work_orders.load_job(job_id)
    if not _own_job(job):
        raise NotFound("Job not found.")
    return job


# --- Jobs and visits -----------------------------------------------------------------------------------

def _job_form_page(form: JobForm, customer, job, rows, errors, status=200):
    return render_template("admin/work/job_form.html", form=form, customer=customer, job=job, rows=rows,
                           blank=BLANK_ROWS, errors=errors), status


@bp.route("/customers/<int:customer_id>/jobs/new", methods=["GET", "POST"])
def job_new(customer_id: int):
    customer = customer_service.load(customer_id)
    form = JobForm()
    staff_choices(form.technician_id)
    if request.method == "GET":
        addr = customer.address_of("service")
        form.address.data = addr.one_line() if addr else ""
        new_form_key(form)
        return _job_form_page(form, customer, None, [], {})
    return create_once(
        form, "job", "admin.job_view", "job_id",
        lambda rows: work_orders.create_job(customer, current_user, title=form.title.data,
                                            description=form.description.data, address=form.address.data,
                                            technician_id=form_id(form.technician_id.data),
                                            lines=line_items.parse(rows, required=False)),
        "Job {number} created. Schedule its visits below.",
        lambda rows, errs: _job_form_page(form, customer, None, rows, errs, 400))


@bp.route("/jobs/<int:job_id>/edit", methods=["GET", "POST"])
def job_edit(job_id: int):
    job = _job(job_id)
    form = JobForm(obj=job if request.method == "GET" else None)
    staff_choices(form.technician_id)
    errors: dict = {}
    if request.method == "GET":
        form.technician_id.data = str(job.technician_id or "")
        return _job_form_page(form, job.customer, job, lines_of(job.line_items, settings.currency()), errors)
    rows = line_items.from_form(request.form)
    if submit(form, errors, lambda: work_orders.update_job(
            job, current_user, title=form.title.data, description=form.description.data, address=form.address.data,
            technician_id=form_id(form.technician_id.data), lines=line_items.parse(rows, required=False))):
        flash("Job saved.", "success")
        return redirect(url_for("admin.job_view", job_id=job.id))
    return _job_form_page(form, job.customer, job, lines_in_form(rows), errors, 400)


def _job_page(job: Job, visit_form: VisitForm | None = None, status: int = 200):
    job = work_orders.load_job(job.id)
    visit_form = visit_form or VisitForm(formdata=None)
    staff_choices(visit_form.technician_id, "— the job's technician —")
    show_money = current_user.role != "technician"
    return render_template("admin/work/job.html", job=job, customer=job.customer, visit_form=visit_form,
                           status_form=StatusForm(), confirm=ConfirmForm(), transitions=work_orders.TRANSITIONS,
                           invoices=work_orders.invoices_of(job), show_money=show_money,
                           plan_tiles=plan_reports.tiles(job.customer_id, job.plan_id) if show_money else []), status


@bp.get("/jobs/<int:job_id>")
def job_view(job_id: int):
    return _job_page(_job(job_id))


@bp.post("/jobs/<int:job_id>/status")
def job_status(job_id: int):
    job = _job(job_id)
    form = StatusForm()
    if current_user.role == "technician" and form.status.data not in TECHNICIAN_JOB_STATUSES:
        abort(403)
    back = url_for("admin.job_view", job_id=job.id)
    if not form.validate_on_submit():
        return redirect(back)
    return _act(lambda: work_orders.set_status(job, current_user, form.status.data or ""), back,
                lambda _: f"Job {job.number} is now {work_orders.STATUS_WORDS[job.status]}.")


@bp.post("/jobs/<int:job_id>/visits")
def job_visit_add(job_id: int):
    job = _job(job_id)
    form = VisitForm()
    staff_choices(form.technician_id)
    if not form.validate_on_submit():
        form.day.errors = list(form.day.errors) or ["Check the date."]
        return _job_page(job, form, 400)
    done = run_form(form, lambda: work_orders.add_visit(job, current_user, day=form.day.data, start=form.start.data,
                                                        end=form.end.data,
                                                        technician_id=form_id(form.technician_id.data)), "day")
    if done:
        flash("Visit scheduled.", "success")
    elif isinstance(done.error, ValidationError):
        return _job_page(job, form, 400)
    else:  # a rule of the job's state, not of the form: said on the job page
        flash(done.error.message, "error")
    return redirect(url_for("admin.job_view", job_id=job.id))


@bp.post("/visits/<int:visit_id>/status")
def visit_status(visit_id: int):
    visit = work_orders.load_visit(visit_id)
    job = _job(visit.job_id)
    if current_user.role == "technician" and visit.technician_id not in (None, current_user.id):
        raise NotFound("Visit not found.")  # another technician's visit
    form = StatusForm()
    back = url_for("admin.job_view", job_id=job.id)
    if not form.validate_on_submit():
        return redirect(back)
    return _act(lambda: work_orders.set_visit_status(visit, current_user, form.status.data or ""), back,
                "Visit updated.")


@bp.post("/jobs/<int:job_id>/invoice")
def job_invoice(job_id: int):
    job = _job(job_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    return _act(lambda: invoices.from_job(job, current_user), url_for("admin.job_view", job_id=job.id),
                lambda invoice: f"Invoice {invoice.number} created from job {job.number}. Review it and send it.",
                lambda invoice: url_for("admin.invoice_view", invoice_id=invoice.id))


# --- Estimates ------------------------------------------------------------------------------------------

def _deposit(form: EstimateForm, currency: str) -> int:
    text = (form.deposit.data or "").strip()
    if text in ("", "0", "0.00"):
        return 0
    return parsed("deposit", parse_amount, text, currency)


def _estimate_form_page(form, customer, estimate, rows, errors, status=200):
    return render_template("admin/work/estimate_form.html", form=form, customer=customer, estimate=estimate,
                           rows=rows, blank=BLANK_ROWS, errors=errors), status


@bp.route("/customers/<int:customer_id>/estimates/new", methods=["GET", "POST"])
def estimate_new(customer_id: int):
    customer = customer_service.load(customer_id)
    form = EstimateForm()
    if request.method == "GET":
        new_form_key(form)
        return _estimate_form_page(form, customer, None, [], {})
    return create_once(
        form, "estimate", "admin.estimate_view", "estimate_id",
        lambda rows: estimates.create(customer, current_user, title=form.title.data, message=form.message.data,
                                      lines=line_items.parse(rows), deposit_cents=_deposit(form, settings.currency()),
                                      valid_until=form.valid_until.data),
        "Estimate {number} created as a draft. Send it when it is ready.",
        lambda rows, errs: _estimate_form_page(form, customer, None, rows, errs, 400))


@bp.route("/estimates/<int:estimate_id>/edit", methods=["GET", "POST"])
def estimate_edit(estimate_id: int):
    estimate = estimates.load(estimate_id)
    form = EstimateForm(obj=estimate if request.method == "GET" else None)
    errors: dict = {}
    if request.method == "GET":
        form.deposit.data = to_input(estimate.deposit_cents, estimate.currency)
        return _estimate_form_page(form, estimate.customer, estimate,
                                   lines_of(estimate.line_items, estimate.currency), errors)
    rows = line_items.from_form(request.form)
    if submit(form, errors, lambda: estimates.edit(
            estimate, current_user, title=form.title.data, message=form.message.data, lines=line_items.parse(rows),
            deposit_cents=_deposit(form, estimate.currency), valid_until=form.valid_until.data)):
        flash("Estimate saved." + (" It is a draft again: send it so the customer sees the change."
                                   if estimate.status == "draft" and estimate.sent_at else ""), "success")
        return redirect(url_for("admin.estimate_view", estimate_id=estimate.id))
    return _estimate_form_page(form, estimate.customer, estimate, lines_in_form(rows), errors, 400)


@bp.get("/estimates/<int:estimate_id>")
def estimate_view(estimate_id: int):
    estimate = estimates.load(estimate_id)
    return render_template("admin/work/estimate.html", estimate=estimate, customer=estimate.customer,
                           confirm=ConfirmForm(), expired=estimates.is_expired(estimate),
                           job=work_orders.load_job(estimate.job_id) if estimate.job_id else None)


@bp.get("/estimates/<int:estimate_id>.pdf")
def estimate_pdf(estimate_id: int):
    """Issue 19: the estimate as the customer gets it, as a PDF."""
    estimate = estimates.load(estimate_id)
    return Response(documents.estimate_pdf(estimate), mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="estimate-{estimate.number}.pdf"'})


@bp.post("/estimates/<int:estimate_id>/send")
def estimate_send(estimate_id: int):
    estimate = estimates.load(estimate_id)
    back = url_for("admin.estimate_view", estimate_id=estimate.id)
    if not ConfirmForm().validate_on_submit():
        return redirect(back)
    return _act(lambda: estimates.send(estimate, current_user), back,
                lambda _: f"Estimate {estimate.number} emailed to {estimate.customer.primary_email}.")


@bp.post("/estimates/<int:estimate_id>/convert")
def estimate_convert(estimate_id: int):
    estimate = estimates.load(estimate_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    return _act(lambda: estimates.convert_to_job(estimate, current_user),
                url_for("admin.estimate_view", estimate_id=estimate.id),
                lambda job: f"Job {job.number} created from estimate {estimate.number}.",
                lambda job: url_for("admin.job_view", job_id=job.id))
