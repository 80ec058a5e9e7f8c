"""C-2 … C-10 on the client card: notes, contact log, next-contact task, custom fields, manager, archive,
delete and the full activity feed. Each action redirects back to its section."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from admin import bp, form_id
from admin.common import back_to_card
from admin.crm.forms import ContactForm, DeleteCustomerForm, NoteForm, ReassignForm, TaskForm
from admin.forms import ConfirmForm
from portal import clock
from portal.blueprints.actions import run_action
from portal.models.activity import ACTIVITY_TYPES
from portal.services.crm import custom_fields, records
from portal.services.crm import customers as customer_service
from portal.services.overview import client_card


def _run(customer, anchor: str, action, success: str):
    run_action(action, success)
    return back_to_card(customer, anchor)


@bp.post("/customers/<int:customer_id>/notes")
def customer_note(customer_id: int):
    customer = customer_service.load(customer_id)
    form = NoteForm()
    if not form.validate_on_submit():
        flash("The note is too long or the form expired.", "error")
        return back_to_card(customer, "notes")
    return _run(customer, "notes", lambda: records.add_note(customer, current_user, form.body.data), "Note added.")


@bp.post("/customers/<int:customer_id>/contacts")
def customer_contact(customer_id: int):
    customer = customer_service.load(customer_id)
    form = ContactForm()
    if not form.validate_on_submit():
        flash("Check the contact's date and channel.", "error")
        return back_to_card(customer, "contacts")
    return _run(customer, "contacts", lambda: records.log_contact(
        customer, current_user, channel=form.channel.data, outcome=form.outcome.data,
        contacted_at=clock.from_local(form.contacted_at.data)), "Contact logged.")


@bp.post("/customers/<int:customer_id>/task")
def customer_task(customer_id: int):
    customer = customer_service.load(customer_id)
    form = TaskForm()
    if not form.validate_on_submit():
        flash("Enter the next contact's date and time as shown.", "error")
        return back_to_card(customer, "task")
    assignee = form_id(form.assignee_id.data)
    return _run(customer, "task", lambda: records.set_task(customer, current_user,
                                                           due_at=clock.from_local(form.due_at.data),
                                                           note=form.note.data, assignee_id=assignee),
                "Next contact scheduled.")


@bp.post("/customers/<int:customer_id>/task/<int:task_id>/done")
def customer_task_done(customer_id: int, task_id: int):
    customer = customer_service.load(customer_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    return _run(customer, "task", lambda: records.complete_task(customer, current_user, task_id), "Task done.")


@bp.post("/customers/<int:customer_id>/fields")
def customer_fields(customer_id: int):
    customer = customer_service.load(customer_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    raw = {}
    for definition in custom_fields.definitions():
        key = f"cf_{definition.id}"
        raw[definition.id] = request.form.getlist(key) if definition.field_type == "multi_list" \
            else request.form.get(key)
    run_action(lambda: custom_fields.save_values(customer, raw, current_user),
               lambda changed: "Fields saved." if changed else "Nothing changed.")
    return back_to_card(customer, "fields")


@bp.post("/customers/<int:customer_id>/manager")
def customer_reassign(customer_id: int):
    customer = customer_service.load(customer_id)
    form = ReassignForm()
    if not form.validate_on_submit():
        abort(400)
    manager = form_id(form.manager_id.data)
    return _run(customer, "general", lambda: records.reassign(customer, current_user, manager), "Manager changed.")


@bp.post("/customers/<int:customer_id>/archive")
def customer_archive(customer_id: int):
    customer = customer_service.load(customer_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if request.form.get("restore"):
        return _run(customer, "general", lambda: records.restore(customer, current_user), "Customer restored.")
    return _run(customer, "general", lambda: records.archive(customer, current_user),
                "Customer archived: hidden from lists, history kept.")


@bp.post("/customers/<int:customer_id>/delete")
def customer_delete(customer_id: int):
    customer = customer_service.load(customer_id)
    form = DeleteCustomerForm()
    if not form.validate_on_submit():
        abort(400)
    if " ".join((form.confirm_name.data or "").split()).lower() != customer.display_name.lower():
        flash(f"Type “{customer.display_name}” to confirm the deletion.", "error")
        return back_to_card(customer, "danger")
    name = customer.display_name
    if run_action(lambda: records.hard_delete(customer, current_user) or True, f"{name} deleted.") is None:
        return back_to_card(customer, "danger")
    return redirect(url_for("admin.customer_list"))


@bp.get("/customers/<int:customer_id>/activity")
def customer_activity(customer_id: int):
    customer = customer_service.load(customer_id)
    result = client_card.feed(customer, event_type=request.args.get("type") or None,
                              page=request.args.get("page", 1, type=int) or 1)
    return render_template("admin/customers/activity.html", customer=customer, feed=result, types=ACTIVITY_TYPES)
