"""INV-1, INV-2 (staff side): invoices created, edited, voided and sent by staff; the invoice page (R-*)."""
from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from admin import bp
from admin.billing.forms import InvoiceForm, VoidForm
from admin.common import BLANK_ROWS, create_once, lines_in_form, lines_of, new_form_key, submit
from admin.forms import ConfirmForm
from portal import clock
from portal.blueprints.actions import parsed, run_action
from portal.money import parse_percent_bp, percent_to_input
from portal.services.billing import documents, invoices, reminders
from portal.services.crm import customers as customer_service
from portal.services.payments import charges, ledger
from portal.services.platform import settings
from portal.services.work import line_items


def _percent_bp(form, name: str) -> int:
    """The range (0–100 % discount, 0–50 % tax) is the service's rule."""
    return parsed(name, parse_percent_bp, getattr(form, name).data)


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
    customer = customer_service.load(customer_id)
    form = InvoiceForm()
    if request.method == "GET":
        form.issue_date.data = clock.today()
        form.discount_percent.data = percent_to_input(customer.discount_bp)
        form.tax_percent.data = percent_to_input(settings.get().default_tax_bp)
        new_form_key(form)
        return _invoice_form_page(form, customer, None, [], {})
    return create_once(
        form, "invoice", "admin.invoice_view", "invoice_id",
        lambda rows: invoices.create(customer, current_user, lines=line_items.parse(rows),
                                     discount_bp=_percent_bp(form, "discount_percent"),
                                     tax_bp=_percent_bp(form, "tax_percent"),
                                     issue_date=form.issue_date.data or clock.today(), due_date=form.due_date.data,
                                     notes=form.notes.data),
        "Invoice {number} created as a draft. Send it when it is ready.",
        lambda rows, errs: _invoice_form_page(form, customer, None, rows, errs, 400))


@bp.route("/invoices/<int:invoice_id>/edit", methods=["GET", "POST"])
def invoice_edit(invoice_id: int):
    invoice = invoices.load(invoice_id)
    form = InvoiceForm(obj=invoice if request.method == "GET" else None)
    errors: dict = {}
    if request.method == "GET":
        form.discount_percent.data = percent_to_input(invoice.discount_bp)
        form.tax_percent.data = percent_to_input(invoice.tax_bp)
        return _invoice_form_page(form, invoice.customer, invoice, lines_of(invoice.line_items, invoice.currency),
                                  errors)
    rows = line_items.from_form(request.form)
    if submit(form, errors, lambda: invoices.update(
            invoice, current_user, lines=line_items.parse(rows), discount_bp=_percent_bp(form, "discount_percent"),
            tax_bp=_percent_bp(form, "tax_percent"), issue_date=form.issue_date.data, due_date=form.due_date.data,
            notes=form.notes.data)):
        flash("Invoice saved.", "success")
        return redirect(url_for("admin.invoice_view", invoice_id=invoice.id))
    return _invoice_form_page(form, invoice.customer, invoice, lines_in_form(rows), errors, 400)


@bp.get("/invoices/<int:invoice_id>")
def invoice_view(invoice_id: int):
    invoice = invoices.load(invoice_id)
    return render_template("admin/payments/invoice.html", invoice=invoice, history=ledger.invoice_history(invoice),
                           customer=invoice.customer, automation=reminders.status(invoice),
                           busy=charges.open_attempt_for(invoice),
                           confirm=ConfirmForm())  # void posts reason with this CSRF token


@bp.post("/invoices/<int:invoice_id>/send")
def invoice_send(invoice_id: int):
    invoice = invoices.load(invoice_id)
    if ConfirmForm().validate_on_submit():
        resend = invoice.sent_at is not None
        run_action(lambda: invoices.send(invoice, current_user),
                   lambda _: f"Invoice {invoice.number} {'resent' if resend else 'sent'} to "
                             f"{invoice.customer.primary_email}.")
    return redirect(url_for("admin.invoice_view", invoice_id=invoice.id))


@bp.post("/invoices/<int:invoice_id>/void")
def invoice_void(invoice_id: int):
    invoice = invoices.load(invoice_id)
    form = VoidForm()
    if form.validate_on_submit():
        run_action(lambda: invoices.void(invoice, current_user, form.reason.data), f"Invoice {invoice.number} voided.")
    return redirect(url_for("admin.invoice_view", invoice_id=invoice.id))


@bp.get("/invoices/<int:invoice_id>.pdf")
def invoice_pdf(invoice_id: int):
    invoice = invoices.load(invoice_id)
    return Response(documents.invoice_pdf(invoice), mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="invoice-{invoice.number}.pdf"'})


@bp.post("/customers/<int:customer_id>/invoice-unpaid-work")
def customer_invoice_all(customer_id: int):
    """C-8: one invoice for all the customer's finished, un-invoiced work."""
    customer = customer_service.load(customer_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    invoice = run_action(lambda: invoices.invoice_all_unpaid_work(customer, current_user),
                         lambda invoice: f"Invoice {invoice.number} created for all finished, un-invoiced work. "
                                         "Review it and send it.")
    if invoice is None:
        return redirect(url_for("admin.customer_view", customer_id=customer.id) + "#financial")
    return redirect(url_for("admin.invoice_view", invoice_id=invoice.id))
