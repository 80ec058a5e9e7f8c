"""C-2 … C-10 on the client card: notes, contact log, next-contact task, custom fields, manager, archive,
delete, "Invoice all unpaid work", and the full activity feed. Each action redirects back to its section."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from admin import bp, form_id
from admin.customers import _customer_or_404
from admin.forms import (ConfirmForm, ContactForm, CustomFieldEditForm, CustomFieldForm, DeleteCustomerForm, NoteForm,
                         ReassignForm, TaskForm)
from portal import clock
from portal.extensions import db
from portal.models.activity import ACTIVITY_TYPES
from portal.services.crm import records
from portal.services.crm import custom_fields
from portal.services.overview import client_card
from portal.services.billing import invoices
from portal.services.errors import ServiceError


def _back(customer, anchor: str):
    return redirect(url_for("admin.customer_view", customer_id=customer.id) + f"#{anchor}")


def _run(action, success: str, anchor: str, customer):
    """Run a service action: commit and say so, or roll back and put the reason in a flash."""
    try:
        action()
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash(success, "success")
    return _back(customer, anchor)


@bp.post("/customers/<int:customer_id>/notes")
def customer_note(customer_id: int):
    customer = _customer_or_404(customer_id)
    form = NoteForm()
    if not form.validate_on_submit():
        flash("The note is too long or the form expired.", "error")
        return _back(customer, "notes")
    return _run(lambda: records.add_note(customer, current_user, form.body.data), "Note added.", "notes", customer)


@bp.post("/customers/<int:customer_id>/contacts")
def customer_contact(customer_id: int):
    customer = _customer_or_404(customer_id)
    form = ContactForm()
    if not form.validate_on_submit():
        flash("Check the contact's date and channel.", "error")
        return _back(customer, "contacts")
    return _run(lambda: records.log_contact(customer, current_user, channel=form.channel.data,
                                        outcome=form.outcome.data, contacted_at=clock.from_local(form.contacted_at.data)),
                "Contact logged.", "contacts", customer)


@bp.post("/customers/<int:customer_id>/task")
def customer_task(customer_id: int):
    customer = _customer_or_404(customer_id)
    form = TaskForm()
    if not form.validate_on_submit():
        flash("Enter the next contact's date and time as shown.", "error")
        return _back(customer, "task")
    assignee = form_id(form.assignee_id.data)
    return _run(lambda: records.set_task(customer, current_user, due_at=clock.from_local(form.due_at.data),
                                     note=form.note.data, assignee_id=assignee),
                "Next contact scheduled.", "task", customer)


@bp.post("/customers/<int:customer_id>/task/<int:task_id>/done")
def customer_task_done(customer_id: int, task_id: int):
    customer = _customer_or_404(customer_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    return _run(lambda: records.complete_task(customer, current_user, task_id), "Task done.", "task", customer)


@bp.post("/customers/<int:customer_id>/fields")
def customer_fields(customer_id: int):
    customer = _customer_or_404(customer_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    raw = {}
    for definition in custom_fields.definitions():
        key = f"cf_{definition.id}"
        raw[definition.id] = request.form.getlist(key) if definition.field_type == "multi_list" \
            else request.form.get(key)
    changed = []
    try:
        changed = custom_fields.save_values(customer, raw, current_user)
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _back(customer, "fields")
    db.session.commit()
    flash("Fields saved." if changed else "Nothing changed.", "success")
    return _back(customer, "fields")


@bp.post("/customers/<int:customer_id>/manager")
def customer_reassign(customer_id: int):
    customer = _customer_or_404(customer_id)
    form = ReassignForm()
    if not form.validate_on_submit():
        abort(400)
    manager = form_id(form.manager_id.data)
    return _run(lambda: records.reassign(customer, current_user, manager), "Manager changed.", "general", customer)


@bp.post("/customers/<int:customer_id>/archive")
def customer_archive(customer_id: int):
    customer = _customer_or_404(customer_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if request.form.get("restore"):
        return _run(lambda: records.restore(customer, current_user), "Customer restored.", "general", customer)
    return _run(lambda: records.archive(customer, current_user),
                "Customer archived: hidden from lists, history kept.", "general", customer)


@bp.post("/customers/<int:customer_id>/delete")
def customer_delete(customer_id: int):
    customer = _customer_or_404(customer_id)
    form = DeleteCustomerForm()
    if not form.validate_on_submit():
        abort(400)
    if " ".join((form.confirm_name.data or "").split()).lower() != customer.display_name.lower():
        flash(f"Type “{customer.display_name}” to confirm the deletion.", "error")
        return _back(customer, "danger")
    name = customer.display_name
    try:
        records.hard_delete(customer, current_user)
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _back(customer, "danger")
    db.session.commit()
    flash(f"{name} deleted.", "success")
    return redirect(url_for("admin.customer_list"))


@bp.post("/customers/<int:customer_id>/invoice-unpaid-work")
def customer_invoice_all(customer_id: int):
    customer = _customer_or_404(customer_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        invoice = invoices.invoice_all_unpaid_work(customer, current_user)
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _back(customer, "financial")
    db.session.commit()
    flash(f"Invoice {invoice.number} created for all finished, un-invoiced work. Review it and send it.", "success")
    return redirect(url_for("admin.invoice_view", invoice_id=invoice.id))


@bp.get("/customers/<int:customer_id>/activity")
def customer_activity(customer_id: int):
    customer = _customer_or_404(customer_id)
    result = client_card.feed(customer, event_type=request.args.get("type") or None,
                                page=request.args.get("page", 1, type=int) or 1)
    return render_template("admin/customers/activity.html", customer=customer, feed=result, types=ACTIVITY_TYPES)


@bp.route("/settings/fields", methods=["GET", "POST"])
def settings_fields():
    form = CustomFieldForm()
    if form.validate_on_submit():
        try:
            definition = custom_fields.define(label=form.label.data, field_type=form.field_type.data,
                                              required=form.required.data, options=form.options.data,
                                              staff=current_user)
        except ServiceError as exc:
            db.session.rollback()
            getattr(form, getattr(exc, "field", None) or "label").errors = [exc.message]
        else:
            db.session.commit()
            flash(f"Field “{definition.label}” added to every client card.", "success")
            return redirect(url_for("admin.settings_fields"))
    status = 400 if form.is_submitted() else 200
    return render_template("admin/settings_fields.html", form=form, fields=custom_fields.definitions(False),
                           type_labels=custom_fields.TYPE_LABELS), status


@bp.route("/settings/fields/<int:field_id>", methods=["GET", "POST"])
def settings_field_edit(field_id: int):
    try:
        definition = custom_fields.get_definition(field_id)
    except ServiceError:
        abort(404)
    form = CustomFieldEditForm(obj=None if request.method == "POST" else definition)
    if request.method == "GET":
        form.active.data = definition.is_active
    elif form.validate_on_submit():
        try:
            custom_fields.update_definition(definition, label=form.label.data, required=form.required.data,
                                            options=form.options.data, active=form.active.data)
        except ServiceError as exc:
            db.session.rollback()
            getattr(form, getattr(exc, "field", None) or "label").errors = [exc.message]
        else:
            db.session.commit()
            flash("Field saved; values on client cards are kept.", "success")
            return redirect(url_for("admin.settings_fields"))
    status = 400 if form.is_submitted() else 200
    return render_template("admin/settings_field_edit.html", form=form, field=definition,
                           type_labels=custom_fields.TYPE_LABELS), status
