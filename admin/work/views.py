"""INV-1, INV-2, P-5 (staff side): jobs and visits, estimates, invoices created and edited by staff."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from admin import TECHNICIAN_JOB_STATUSES, bp, form_id
from admin.customers import _customer_or_404
from admin.forms import ConfirmForm, EstimateForm, InvoiceForm, JobForm, StatusForm, VisitForm, VoidForm
from portal import clock
from portal.extensions import db
from portal.models import Estimate, Invoice, Job, Visit
from portal.money import MoneyError, parse_amount
from portal.services.payments import charges
from portal.services.billing import documents
from portal.services.plans import reports as plan_reports
from portal.services.work import estimates
from portal.services.billing import invoices
from portal.services.work import line_items
from portal.services.platform import once
from portal.services.work import work_orders
from portal.services.platform import staff as staff_service
from portal.services.errors import ServiceError, ValidationError

BLANK_ROWS = 3


def _staff_choices(field, empty: str = "— unassigned —") -> None:
    field.choices = [("", empty)] + [(str(s.id), s.name) for s in staff_service.active_staff()]


_int_or_none = form_id


def _lines_in_form(rows) -> list:
    """What the line table shows after a failed submit: the typed rows."""
    return [{"description": d or "", "quantity": q or "1", "price": p or ""} for d, q, p in rows]


def _lines_of(items) -> list:
    return [{"description": li.description, "quantity": str(li.quantity), "price": f"{li.unit_price_cents / 100:.2f}"}
            for li in items]


def _error(form, exc: ValidationError, errors: dict) -> None:
    field = getattr(form, exc.field or "", None)
    if field is not None and hasattr(field, "errors"):
        field.errors = list(field.errors) + [exc.message]
    else:
        errors[exc.field or "form"] = exc.message


def _attempt(form, errors: dict, action):
    """Validate the form, run the service action and commit; on a refusal roll back and put the reason on the
    form (`errors["form"]` / `errors["lines"]` for what has no field). Returns the action's result or None."""
    if not form.validate_on_submit():
        return None
    try:
        result = action()
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        _error(form, exc, errors)
        return None
    except ServiceError as exc:
        db.session.rollback()
        errors["form"] = exc.message
        return None
    except IntegrityError:  # the same form, submitted twice at once: the other submission created it
        db.session.rollback()
        errors["form"] = "This form was just submitted."
        return None
    return result if result is not None else True


def _new_form_key(form) -> None:
    if not form.form_key.data:
        form.form_key.data = charges.new_token()


def _create_once(form, kind: str, view: str, arg: str, make, success: str, rerender):
    """A create form: validate, create once per form key (a resubmission leads to what the first made),
    or show the form again with the reason and the typed lines."""
    if (done := _already(form, kind, view, arg)) is not None:
        return done
    errors: dict = {}
    rows = line_items.from_form(request.form)
    created = _attempt(form, errors, lambda: once.remember(form.form_key.data, kind, make(rows)))
    if created is None and (done := _already(form, kind, view, arg)) is not None:
        return done
    if created:
        flash(success.format(number=created.number), "success")
        return redirect(url_for(view, **{arg: created.id}))
    return rerender(_lines_in_form(rows), errors)


def _act(action, back: str, success, target=None):
    """Run a service action from a button: commit and say so (then go to `target(result)`, or back), or roll back
    and say why (and go back)."""
    try:
        result = action()
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(back)
    db.session.commit()
    flash(success(result), "success")
    return redirect(target(result) if target else back)


def _get_or_404(model, object_id: int):
    found = db.session.get(model, object_id)
    if found is None:
        abort(404)
    return found


def _already(form, kind: str, endpoint: str, arg: str):
    """The page for what an earlier submission of this very form created, if any."""
    target = once.earlier(form.form_key.data, kind)
    if target is None:
        return None
    flash("That form was already submitted; here is what it created.", "success")
    return redirect(url_for(endpoint, **{arg: target}))


def _own_job(job: Job) -> bool:
    """A technician sees the jobs they are on (as the job's or a visit's technician)."""
    if current_user.role != "technician":
        return True
    return job.technician_id == current_user.id or any(v.technician_id == current_user.id for v in job.visits)


def _job_or_404(job_id: int) -> Job:
    job = db.session.get(Job, job_id)
    if job is None or not _own_job(job):
        abort(404)
    return job


# --- Jobs and visits -----------------------------------------------------------------------------------

def _job_form_page(form: JobForm, customer, job, rows, errors, status=200):
    return render_template("admin/work/job_form.html", form=form, customer=customer, job=job, rows=rows,
                           blank=BLANK_ROWS, errors=errors), status


@bp.route("/customers/<int:customer_id>/jobs/new", methods=["GET", "POST"])
def job_new(customer_id: int):
    customer = _customer_or_404(customer_id)
    form = JobForm()
    _staff_choices(form.technician_id)
    errors: dict = {}
    if request.method == "GET":
        addr = customer.address_of("service")
        form.address.data = addr.one_line() if addr else ""
        _new_form_key(form)
        return _job_form_page(form, customer, None, [], errors)
    return _create_once(
        form, "job", "admin.job_view", "job_id",
        lambda rows: work_orders.create_job(customer, current_user, title=form.title.data, description=form.description.data,
                                     address=form.address.data, technician_id=_int_or_none(form.technician_id.data),
                                     lines=line_items.parse(rows, required=False)),
        "Job {number} created. Schedule its visits below.",
        lambda rows, errs: _job_form_page(form, customer, None, rows, errs, 400))


@bp.route("/jobs/<int:job_id>/edit", methods=["GET", "POST"])
def job_edit(job_id: int):
    job = _job_or_404(job_id)
    form = JobForm(obj=job if request.method == "GET" else None)
    _staff_choices(form.technician_id)
    errors: dict = {}
    if request.method == "GET":
        form.technician_id.data = str(job.technician_id or "")
        return _job_form_page(form, job.customer, job, _lines_of(job.line_items), errors)
    rows = line_items.from_form(request.form)
    if _attempt(form, errors, lambda: work_orders.update_job(
            job, current_user, title=form.title.data, description=form.description.data, address=form.address.data,
            technician_id=_int_or_none(form.technician_id.data), lines=line_items.parse(rows, required=False))):
        flash("Job saved.", "success")
        return redirect(url_for("admin.job_view", job_id=job.id))
    return _job_form_page(form, job.customer, job, _lines_in_form(rows), errors, 400)


def _job_page(job: Job, visit_form: VisitForm | None = None, status: int = 200):
    job = db.session.scalars(select(Job).where(Job.id == job.id)
                             .options(selectinload(Job.visits).selectinload(Visit.technician))).one()
    visit_form = visit_form or VisitForm(formdata=None)
    _staff_choices(visit_form.technician_id, "— the job's technician —")
    invoice_rows = db.session.execute(
        select(Invoice).join(Invoice.jobs).where(Job.id == job.id).order_by(Invoice.id)).scalars().all()
    return render_template("admin/work/job.html", job=job, customer=job.customer, visit_form=visit_form,
                           status_form=StatusForm(), confirm=ConfirmForm(), transitions=work_orders.TRANSITIONS,
                           invoices=invoice_rows, show_money=current_user.role != "technician",
                           plan_tiles=plan_reports.tiles(job.customer_id, job.plan_id)
                           if current_user.role != "technician" else []), status


@bp.get("/jobs/<int:job_id>")
def job_view(job_id: int):
    return _job_page(_job_or_404(job_id))


@bp.post("/jobs/<int:job_id>/status")
def job_status(job_id: int):
    job = _job_or_404(job_id)
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
    job = _job_or_404(job_id)
    form = VisitForm()
    _staff_choices(form.technician_id)
    if not form.validate_on_submit():
        form.day.errors = list(form.day.errors) or ["Check the date."]
        return _job_page(job, form, 400)
    try:
        work_orders.add_visit(job, current_user, day=form.day.data, start=form.start.data, end=form.end.data,
                       technician_id=_int_or_none(form.technician_id.data))
    except ValidationError as exc:
        db.session.rollback()
        getattr(form, exc.field if exc.field in ("day", "start", "end", "technician_id") else "day").errors = [
            exc.message]
        return _job_page(job, form, 400)
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("admin.job_view", job_id=job.id))
    db.session.commit()
    flash("Visit scheduled.", "success")
    return redirect(url_for("admin.job_view", job_id=job.id))


@bp.post("/visits/<int:visit_id>/status")
def visit_status(visit_id: int):
    visit = db.session.get(Visit, visit_id)
    if visit is None:
        abort(404)
    job = _job_or_404(visit.job_id)
    if current_user.role == "technician" and visit.technician_id not in (None, current_user.id):
        abort(404)  # another technician's visit
    form = StatusForm()
    back = url_for("admin.job_view", job_id=job.id)
    if not form.validate_on_submit():
        return redirect(back)
    return _act(lambda: work_orders.set_visit_status(visit, current_user, form.status.data or ""), back,
                lambda _: "Visit updated.")


@bp.post("/jobs/<int:job_id>/invoice")
def job_invoice(job_id: int):
    job = _job_or_404(job_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    return _act(lambda: invoices.from_job(job, current_user), url_for("admin.job_view", job_id=job.id),
                lambda invoice: f"Invoice {invoice.number} created from job {job.number}. Review it and send it.",
                lambda invoice: url_for("admin.invoice_view", invoice_id=invoice.id))


# --- Estimates ------------------------------------------------------------------------------------------

def _deposit(form: EstimateForm) -> int:
    text = (form.deposit.data or "").strip()
    if text in ("", "0", "0.00"):
        return 0
    try:
        return parse_amount(text)
    except MoneyError as exc:
        raise ValidationError("deposit", str(exc)) from None


def _estimate_form_page(form, customer, estimate, rows, errors, status=200):
    return render_template("admin/work/estimate_form.html", form=form, customer=customer, estimate=estimate,
                           rows=rows, blank=BLANK_ROWS, errors=errors), status


@bp.route("/customers/<int:customer_id>/estimates/new", methods=["GET", "POST"])
def estimate_new(customer_id: int):
    customer = _customer_or_404(customer_id)
    form = EstimateForm()
    errors: dict = {}
    if request.method == "GET":
        _new_form_key(form)
        return _estimate_form_page(form, customer, None, [], errors)
    return _create_once(
        form, "estimate", "admin.estimate_view", "estimate_id",
        lambda rows: estimates.create(customer, current_user, title=form.title.data, message=form.message.data,
                                      lines=line_items.parse(rows), deposit_cents=_deposit(form),
                                      valid_until=form.valid_until.data),
        "Estimate {number} created as a draft. Send it when it is ready.",
        lambda rows, errs: _estimate_form_page(form, customer, None, rows, errs, 400))


def _estimate_or_404(estimate_id: int) -> Estimate:
    return _get_or_404(Estimate, estimate_id)


@bp.route("/estimates/<int:estimate_id>/edit", methods=["GET", "POST"])
def estimate_edit(estimate_id: int):
    estimate = _estimate_or_404(estimate_id)
    form = EstimateForm(obj=estimate if request.method == "GET" else None)
    errors: dict = {}
    if request.method == "GET":
        form.deposit.data = f"{estimate.deposit_cents / 100:.2f}"
        return _estimate_form_page(form, estimate.customer, estimate, _lines_of(estimate.line_items), errors)
    rows = line_items.from_form(request.form)
    if _attempt(form, errors, lambda: estimates.edit(
            estimate, current_user, title=form.title.data, message=form.message.data, lines=line_items.parse(rows),
            deposit_cents=_deposit(form), valid_until=form.valid_until.data)):
        flash("Estimate saved." + (" It is a draft again: send it so the customer sees the change."
                                   if estimate.status == "draft" and estimate.sent_at else ""), "success")
        return redirect(url_for("admin.estimate_view", estimate_id=estimate.id))
    return _estimate_form_page(form, estimate.customer, estimate, _lines_in_form(rows), errors, 400)


@bp.get("/estimates/<int:estimate_id>")
def estimate_view(estimate_id: int):
    estimate = _estimate_or_404(estimate_id)
    return render_template("admin/work/estimate.html", estimate=estimate, customer=estimate.customer,
                           confirm=ConfirmForm(), expired=estimates.is_expired(estimate),
                           job=db.session.get(Job, estimate.job_id) if estimate.job_id else None)


@bp.post("/estimates/<int:estimate_id>/send")
def estimate_send(estimate_id: int):
    estimate = _estimate_or_404(estimate_id)
    back = url_for("admin.estimate_view", estimate_id=estimate.id)
    if not ConfirmForm().validate_on_submit():
        return redirect(back)
    return _act(lambda: estimates.send(estimate, current_user), back,
                lambda _: f"Estimate {estimate.number} emailed to {estimate.customer.primary_email}.")


@bp.post("/estimates/<int:estimate_id>/convert")
def estimate_convert(estimate_id: int):
    estimate = _estimate_or_404(estimate_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    return _act(lambda: estimates.convert_to_job(estimate, current_user),
                url_for("admin.estimate_view", estimate_id=estimate.id),
                lambda job: f"Job {job.number} created from estimate {estimate.number}.",
                lambda job: url_for("admin.job_view", job_id=job.id))


# --- Invoices --------------------------------------------------------------------------------------------

def _percent_bp(text: str | None, field: str) -> int:
    text = (text or "0").strip().rstrip("%").strip() or "0"
    try:
        value = Decimal(text.replace(",", "."))
    except InvalidOperation:
        raise ValidationError(field, "Enter a percentage, like 10 or 7.25.") from None
    if not value.is_finite() or abs(value) > 1000:
        raise ValidationError(field, "Enter a percentage, like 10 or 7.25.")
    if value != value.quantize(Decimal("0.01")):
        raise ValidationError(field, "Use at most two decimals, like 7.25.")
    return int(value * 100)  # the range (0–100 % discount, 0–50 % tax) is the service's rule


def _invoice_form_page(form, customer, invoice, rows, errors, status=200):
    return render_template("admin/work/invoice_form.html", form=form, customer=customer, invoice=invoice, rows=rows,
                           blank=BLANK_ROWS, errors=errors), status


@bp.get("/invoices")
def invoice_list():
    result = invoices.search(status=request.args.get("status") or None, q=request.args.get("q"),
                             page=request.args.get("page", 1, type=int) or 1)
    return render_template("admin/work/invoices.html", result=result, args=request.args, today=clock.today())


@bp.route("/customers/<int:customer_id>/invoices/new", methods=["GET", "POST"])
def invoice_new(customer_id: int):
    customer = _customer_or_404(customer_id)
    form = InvoiceForm()
    errors: dict = {}
    if request.method == "GET":
        from portal.services.platform import settings

        form.issue_date.data = clock.today()
        form.discount_percent.data = f"{customer.discount_bp / 100:g}"
        form.tax_percent.data = f"{settings.get().default_tax_bp / 100:g}"
        _new_form_key(form)
        return _invoice_form_page(form, customer, None, [], errors)
    return _create_once(
        form, "invoice", "admin.invoice_view", "invoice_id",
        lambda rows: invoices.create(customer, current_user, lines=line_items.parse(rows),
                                     discount_bp=_percent_bp(form.discount_percent.data, "discount_percent"),
                                     tax_bp=_percent_bp(form.tax_percent.data, "tax_percent"),
                                     issue_date=form.issue_date.data or clock.today(), due_date=form.due_date.data,
                                     notes=form.notes.data),
        "Invoice {number} created as a draft. Send it when it is ready.",
        lambda rows, errs: _invoice_form_page(form, customer, None, rows, errs, 400))


def _invoice_or_404(invoice_id: int) -> Invoice:
    return _get_or_404(Invoice, invoice_id)


@bp.route("/invoices/<int:invoice_id>/edit", methods=["GET", "POST"])
def invoice_edit(invoice_id: int):
    invoice = _invoice_or_404(invoice_id)
    form = InvoiceForm(obj=invoice if request.method == "GET" else None)
    errors: dict = {}
    if request.method == "GET":
        form.discount_percent.data = f"{invoice.discount_bp / 100:g}"
        form.tax_percent.data = f"{invoice.tax_bp / 100:g}"
        return _invoice_form_page(form, invoice.customer, invoice, _lines_of(invoice.line_items), errors)
    rows = line_items.from_form(request.form)
    if _attempt(form, errors, lambda: invoices.update(
            invoice, current_user, lines=line_items.parse(rows),
            discount_bp=_percent_bp(form.discount_percent.data, "discount_percent"),
            tax_bp=_percent_bp(form.tax_percent.data, "tax_percent"), issue_date=form.issue_date.data,
            due_date=form.due_date.data, notes=form.notes.data)):
        flash("Invoice saved.", "success")
        return redirect(url_for("admin.invoice_view", invoice_id=invoice.id))
    return _invoice_form_page(form, invoice.customer, invoice, _lines_in_form(rows), errors, 400)


@bp.post("/invoices/<int:invoice_id>/void")
def invoice_void(invoice_id: int):
    invoice = _invoice_or_404(invoice_id)
    form = VoidForm()
    back = url_for("admin.invoice_view", invoice_id=invoice.id)
    if not form.validate_on_submit():
        return redirect(back)
    return _act(lambda: invoices.void(invoice, current_user, form.reason.data), back,
                lambda _: f"Invoice {invoice.number} voided.")


@bp.get("/invoices/<int:invoice_id>.pdf")
def invoice_pdf(invoice_id: int):
    invoice = _invoice_or_404(invoice_id)
    return Response(documents.invoice_pdf(invoice), mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="invoice-{invoice.number}.pdf"'})
